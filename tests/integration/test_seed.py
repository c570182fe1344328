"""`rollout seed`: realistic synthetic legacy data, the same for the same seed, with every edge
case the migration must handle, on SQLite and (with TEST_DATABASE_URL) on PostgreSQL."""

from __future__ import annotations

import hashlib
import re
import statistics
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from unidecode import unidecode

from rollout.cli import exits
from rollout.engine.naming import NAME_PATTERN
from rollout.errors import UsageError
from rollout.seed import SeedSummary, seed
from rollout.store.dialect import as_datetime
from rollout.store.engine import make_engine
from rollout.store.schema import PLATFORM_TABLES, init_schema
from tests.conftest import drop_pg_database, new_pg_database

OWNERS = 2000
SEED = 7
BACKENDS = ("sqlite", "postgresql")
TIMESTAMPS = {"created_at", "deleted_at", "issued_at"}
LEGACY_OWNERS = """
    SELECT DISTINCT u.id, u.username FROM users u JOIN projects p ON p.owner_id = u.id
    WHERE u.deleted_at IS NULL AND p.organization_id IS NULL AND p.status <> 'deleted'
"""


class Databases:
    """Empty databases with the platform schema on one backend (PostgreSQL ones cloned from the suite's
    migrated template), dropped at the end."""

    def __init__(self, backend: str, directory: Path, request: pytest.FixtureRequest) -> None:
        self.backend = backend
        self.directory = directory
        self.engines: list[Engine] = []
        self.urls: list[str] = []
        if backend == "postgresql":
            self.server = request.getfixturevalue("pg_server")
            self.admin = request.getfixturevalue("pg_admin")
            self.template = request.getfixturevalue("pg_template")

    def new(self) -> Engine:
        if self.backend == "sqlite":
            engine = make_engine(f"sqlite:///{self.directory / f's{len(self.engines)}.db'}", create=True)
            init_schema(engine, platform=True)
        else:
            url = new_pg_database(self.server, self.admin, self.template)
            self.urls.append(url)
            engine = make_engine(url)
        self.engines.append(engine)
        return engine

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()
        for url in self.urls:
            drop_pg_database(self.admin, url)


@pytest.fixture(scope="module", params=BACKENDS)
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Databases]:
    databases = Databases(request.param, tmp_path_factory.mktemp(f"seed-{request.param}"), request)
    yield databases
    databases.close()


@pytest.fixture(scope="module")
def seeded(databases: Databases) -> tuple[Engine, SeedSummary]:
    """One database seeded with 2000 owners, shared by the tests that only read it."""
    engine = databases.new()
    return engine, seed(engine, OWNERS, SEED)


def fetch(engine: Engine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), params)]


def ids(engine: Engine, sql: str, **params: Any) -> set[int]:
    return {int(row[0]) for row in fetch(engine, sql, **params)}


def table_rows(engine: Engine, table: str) -> list[tuple[Any, ...]]:
    """A table's rows in primary-key order, timestamps as UTC ISO strings, whatever the backend."""
    with engine.connect() as conn:
        result = conn.execute(text(f"SELECT * FROM {table}"))
        columns = list(result.keys())
        rows = [
            tuple(
                as_datetime(v).isoformat() if c in TIMESTAMPS and v is not None else v  # type: ignore[union-attr]
                for c, v in zip(columns, row, strict=True)
            )
            for row in result
        ]
    key = [columns.index(c) for c in PLATFORM_TABLES[table]]
    # Sorted here rather than by ORDER BY: text collations differ between servers, Python's does not.
    return sorted(rows, key=lambda row: tuple(row[i] for i in key))


def digest(engine: Engine) -> str:
    sha = hashlib.sha256()
    for table in PLATFORM_TABLES:
        for row in table_rows(engine, table):
            sha.update(repr((table, row)).encode())
    return sha.hexdigest()


def fold(username: str) -> str:
    """The slug of the naming rules before its cut and fallbacks: Unidecode, lower case, separator runs as `-`."""
    return re.sub(r"[^a-z0-9]+", "-", unidecode(username).lower()).strip("-")


def test_the_same_seed_gives_the_same_rows_and_another_seed_other_rows(databases: Databases) -> None:
    """Seeding twice with the same seed and owner count fills every table with identical rows; another
    seed gives other rows."""
    first, second, other = databases.new(), databases.new(), databases.new()
    summary = seed(first, OWNERS, SEED)
    again = seed(second, OWNERS, SEED)
    seed(other, OWNERS, SEED + 1)

    assert again == summary and dict(again.edge_cases) == dict(summary.edge_cases)
    assert digest(second) == digest(first)
    assert digest(other) != digest(first)


def test_sqlite_and_postgresql_receive_the_same_rows(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The data depends on the seed only, not on the backend: SQLite, which enforces every foreign key
    row by row, and PostgreSQL get the same rows."""
    on_postgresql = Databases("postgresql", tmp_path, request)
    on_sqlite = Databases("sqlite", tmp_path, request)
    try:
        pg, lite = on_postgresql.new(), on_sqlite.new()
        seed(pg, 300, SEED)
        seed(lite, 300, SEED)
        assert digest(pg) == digest(lite)
    finally:
        on_postgresql.close()
        on_sqlite.close()


def test_the_summary_counts_what_is_in_the_tables(seeded: tuple[Engine, SeedSummary]) -> None:
    """The summary's row counts are the tables' row counts, and its text names them."""
    engine, summary = seeded
    for table, count in summary.counts().items():
        assert fetch(engine, f"SELECT COUNT(*) FROM {table}")[0][0] == count, table
    assert summary.users >= OWNERS * 1.2
    assert f"{summary.projects} projects" in str(summary)
    assert "\n" not in str(summary)


def test_every_blocked_reason_is_present(seeded: tuple[Engine, SeedSummary]) -> None:
    """Owners for each blocked reason of the naming rules exist, exactly those the summary lists."""
    engine, summary = seeded
    deleted_owners = ids(
        engine,
        """SELECT DISTINCT u.id FROM users u JOIN projects p ON p.owner_id = u.id
           WHERE u.deleted_at IS NOT NULL AND p.status <> 'deleted' AND p.organization_id IS NULL""",
    )
    several = ids(engine, "SELECT owner_id FROM organizations GROUP BY owner_id HAVING COUNT(*) >= 2")
    conflicts = ids(
        engine,
        """SELECT o.owner_id FROM organizations o
           JOIN billing_accounts org_side ON org_side.organization_id = o.id
           JOIN billing_accounts user_side ON user_side.user_id = o.owner_id""",
    )
    legacy = ids(engine, LEGACY_OWNERS)

    assert deleted_owners and deleted_owners == set(summary.edge_cases["owner-deleted"])
    assert several and several == set(summary.edge_cases["owns-several-organizations"])
    assert several <= legacy
    assert conflicts and conflicts == set(summary.edge_cases["billing-conflict"])
    assert conflicts <= legacy


def test_existing_organizations_are_reused_or_partly_filled(seeded: tuple[Engine, SeedSummary]) -> None:
    """Some legacy owners already own exactly one organization, some with projects already in it; every
    existing organization has its owner as a member with all four permissions, and nobody else holds
    any."""
    engine, summary = seeded
    owns_one = ids(engine, "SELECT owner_id FROM organizations GROUP BY owner_id HAVING COUNT(*) = 1")
    partial = ids(
        engine,
        """SELECT p.owner_id FROM projects p JOIN organizations o ON o.id = p.organization_id
           WHERE o.owner_id = p.owner_id AND p.owner_id IN (
               SELECT owner_id FROM projects WHERE organization_id IS NULL AND status <> 'deleted')""",
    )
    legacy = ids(engine, LEGACY_OWNERS)
    cases = summary.edge_cases

    assert set(cases["owns-one-organization"]) <= owns_one & legacy
    assert partial and partial == set(cases["partially-migrated"])
    permissions = fetch(
        engine,
        """SELECT o.id, o.owner_id, m.user_id, COUNT(p.permission) FROM organizations o
           JOIN organization_members m ON m.organization_id = o.id
           LEFT JOIN organization_member_permissions p
             ON p.organization_id = m.organization_id AND p.user_id = m.user_id
           GROUP BY o.id, o.owner_id, m.user_id""",
    )
    assert {(org, owner, 4) for org, owner, member, count in permissions if member == owner} == {
        (org, owner, 4) for org, owner in fetch(engine, "SELECT id, owner_id FROM organizations")
    }
    assert all(count == 0 for _, owner, member, count in permissions if member != owner)
    assert any(member != owner for _, owner, member, _ in permissions)
    for (name,) in fetch(engine, "SELECT name FROM organizations"):
        assert NAME_PATTERN.fullmatch(name) and "--" not in name, name


def test_usernames_exercise_organization_naming(seeded: tuple[Engine, SeedSummary]) -> None:
    """Legacy owners include Unicode, over-long, one- or two-character and slug-less usernames,
    usernames that fold to the same slug, and usernames whose slug an existing organization of someone
    else already holds."""
    engine, summary = seeded
    owners = {int(i): u for i, u in fetch(engine, LEGACY_OWNERS)}
    usernames = list(owners.values())
    by_slug: dict[str, list[str]] = defaultdict(list)
    for username in usernames:
        by_slug[fold(username)].append(username)

    assert any(not u.isascii() and fold(u) for u in usernames)
    assert any(re.search("[\u0400-\u04ff\u4e00-\u9fff]", u) for u in usernames)
    assert any(len(u) > 39 for u in usernames)
    assert any(len(u) <= 2 for u in usernames)
    assert any(fold(u) == "" for u in usernames)
    assert sum(len(group) >= 2 for slug, group in by_slug.items() if slug) >= OWNERS * 3 // 1000
    families: dict[str, set[str]] = defaultdict(set)
    for owner_id in summary.edge_cases["name-collision"]:
        families[fold(owners[owner_id])].add(owners[owner_id])
    assert families and all(len(family) >= 2 for family in families.values())
    holders = dict(fetch(engine, "SELECT name, owner_id FROM organizations"))
    taken_by_other = {i for i, u in owners.items() if fold(u) in holders and holders[fold(u)] != i}
    assert taken_by_other and set(summary.edge_cases["org-name-taken"]) <= taken_by_other
    for case in ("unicode", "long-username", "short-username", "empty-slug"):
        assert summary.edge_cases[case], case
    display = fetch(engine, "SELECT display_name FROM users")
    assert any(d is None for (d,) in display) and any(d is not None and not d.strip() for (d,) in display)


def test_access_grants_cover_collaborators_and_outsiders(seeded: tuple[Engine, SeedSummary]) -> None:
    """Collaborators are shared between owners; some are deleted yet keep their grants; some users hold
    an environment grant without a project grant; owners sometimes hold a grant on their own project;
    every project has two to four environments."""
    engine, summary = seeded
    shared = fetch(
        engine,
        """SELECT a.user_id FROM project_access a JOIN projects p ON p.id = a.project_id
           WHERE a.user_id <> p.owner_id GROUP BY a.user_id HAVING COUNT(DISTINCT p.owner_id) >= 2""",
    )
    deleted_with_access = ids(
        engine,
        """SELECT a.user_id FROM project_access a JOIN users u ON u.id = a.user_id
           JOIN projects p ON p.id = a.project_id
           WHERE u.deleted_at IS NOT NULL AND p.owner_id <> a.user_id""",
    )
    environment_only = ids(
        engine,
        """SELECT ea.user_id FROM environment_access ea JOIN environments e ON e.id = ea.environment_id
           WHERE NOT EXISTS (SELECT 1 FROM project_access a
                             WHERE a.project_id = e.project_id AND a.user_id = ea.user_id)""",
    )
    self_access = fetch(
        engine,
        "SELECT COUNT(*) FROM project_access a JOIN projects p ON p.id = a.project_id"
        " WHERE a.user_id = p.owner_id",
    )[0][0]
    environments = [n for (n,) in fetch(engine, "SELECT COUNT(*) FROM environments GROUP BY project_id")]

    assert shared
    assert deleted_with_access
    assert set(summary.edge_cases["deleted-collaborator"]) <= deleted_with_access | environment_only
    assert environment_only and set(summary.edge_cases["environment-only-access"]) == environment_only
    assert self_access > 0
    assert min(environments) == 2 and max(environments) == 4
    assert len(environments) == summary.projects
    kinds = fetch(engine, "SELECT DISTINCT name, type FROM environments")
    assert all(kind == (name if name in ("production", "staging") else "development") for name, kind in kinds)


def test_project_counts_are_skewed(seeded: tuple[Engine, SeedSummary]) -> None:
    """Most owners have one or two projects, a long tail has dozens; a few percent are deleted."""
    engine, summary = seeded
    counts = [n for (n,) in fetch(engine, "SELECT COUNT(*) FROM projects GROUP BY owner_id")]
    statuses = dict(fetch(engine, "SELECT status, COUNT(*) FROM projects GROUP BY status"))

    assert len(counts) == OWNERS
    assert statistics.median(counts) <= 2
    assert 20 <= max(counts) <= 60
    assert 0.01 < statuses["deleted"] / summary.projects < 0.06
    assert statuses["suspended"] > 0
    regions = {r for (r,) in fetch(engine, "SELECT DISTINCT region FROM projects")}
    assert regions == {"eu-1", "eu-2", "eu-3", "us-1", "us-2", "ap-1"}


def test_owners_with_only_deleted_projects_are_not_legacy_owners(seeded: tuple[Engine, SeedSummary]) -> None:
    """Some owners' projects are all deleted: they own projects but no legacy project."""
    engine, summary = seeded
    only_deleted = ids(
        engine,
        "SELECT owner_id FROM projects GROUP BY owner_id HAVING MIN(status) = 'deleted'"
        " AND MAX(status) = 'deleted'",
    )
    assert only_deleted and set(summary.edge_cases["only-deleted-projects"]) <= only_deleted
    assert not only_deleted & ids(engine, LEGACY_OWNERS)


def test_billing_follows_owners(seeded: tuple[Engine, SeedSummary]) -> None:
    """About 70 % of owners have a billing account of their own; subscriptions are for active projects
    of the account's owner; accounts have up to twelve invoices and sometimes vouchers."""
    engine, summary = seeded
    user_accounts = fetch(engine, "SELECT COUNT(*) FROM billing_accounts WHERE user_id IS NOT NULL")[0][0]
    wrong_subscriptions = fetch(
        engine,
        """SELECT COUNT(*) FROM subscriptions s JOIN projects p ON p.id = s.project_id
           JOIN billing_accounts b ON b.id = s.billing_account_id
           WHERE p.status <> 'active' OR b.user_id <> p.owner_id""",
    )[0][0]
    invoices = [n for (n,) in fetch(engine, "SELECT COUNT(*) FROM invoices GROUP BY billing_account_id")]

    assert 0.6 < user_accounts / OWNERS < 0.8
    assert summary.subscriptions > 0 and wrong_subscriptions == 0
    assert max(invoices) == 12
    assert summary.vouchers > 0
    methods = {m for (m,) in fetch(engine, "SELECT DISTINCT payment_method FROM billing_accounts")}
    assert "card:visa:4242" in methods and None in methods


def test_foreign_keys_hold(seeded: tuple[Engine, SeedSummary]) -> None:
    """No row references a missing row (PostgreSQL's check at load time, SQLite's own check here)."""
    engine, _ = seeded
    if engine.dialect.name == "sqlite":
        assert fetch(engine, "PRAGMA foreign_key_check") == []
    orphans = fetch(
        engine,
        """SELECT COUNT(*) FROM environment_access ea
           LEFT JOIN environments e ON e.id = ea.environment_id
           LEFT JOIN users u ON u.id = ea.user_id WHERE e.id IS NULL OR u.id IS NULL""",
    )
    assert orphans == [(0,)]


def test_refuses_a_database_that_already_has_users(databases: Databases) -> None:
    """Seeding a database whose users table has rows fails with one line and changes nothing."""
    engine = databases.new()
    seed(engine, 60, SEED)
    before = digest(engine)

    with pytest.raises(UsageError) as refused:
        seed(engine, 60, SEED + 1)

    assert "\n" not in str(refused.value) and "users" in str(refused.value)
    assert exits.for_error(refused.value) == exits.USAGE
    assert digest(engine) == before


def test_small_seeds_still_load(databases: Databases) -> None:
    """A handful of owners loads too (without edge cases below 50 owners), so a demo can start tiny."""
    engine = databases.new()
    summary = seed(engine, 3, SEED)
    assert summary.owners == 3
    assert fetch(engine, "SELECT COUNT(DISTINCT owner_id) FROM projects") == [(3,)]
    assert isinstance(as_datetime(fetch(engine, "SELECT MIN(created_at) FROM users")[0][0]), datetime)
