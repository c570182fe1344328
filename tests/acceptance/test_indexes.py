"""The platform's indexes are not the job's: `plan` and `run` warn, with the exact statement, for
each lookup of the job that no index serves, and `rollout db indexes` builds the missing ones
(CONCURRENTLY on PostgreSQL, run as the tables' owner)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text

from rollout.store import indexes
from rollout.store.schema import PLATFORM_TABLES
from tests.support import Platform, errors, events, grant_role, rollout, scalar, write_plan

PLAN = '[rollout]\nbatch_size = 2\n\n[[waves]]\nname = "everyone"\npercent = 100\n'
DROPPED = ("organizations_owner_id_idx", "projects_owner_id_idx")  # the platform's
BUILT = ("rollout_organizations_owner_id_idx", "rollout_projects_owner_id_idx")  # the job's


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    return write_plan(tmp_path, PLAN)


@pytest.fixture
def bare(engine: Engine) -> Engine:
    """A platform with three owners whose schema has no index on organizations or projects by owner."""
    with engine.begin() as conn:
        Platform(conn).shared_owners(range(1, 4))
        for name in DROPPED:
            conn.execute(text(f"DROP INDEX {name}"))
    return engine


def statement(engine: Engine, table: str, column: str) -> str:
    verb = "CREATE INDEX CONCURRENTLY" if engine.dialect.name == "postgresql" else "CREATE INDEX"
    return f"{verb} IF NOT EXISTS rollout_{table}_{column}_idx ON {table} ({column});"


def missing_events(stderr: str) -> list[dict[str, object]]:
    return [e for e in events(stderr) if e["event"] == "indexes.missing"]


def test_every_lookup_of_the_file_names_a_platform_table_and_a_complete_schema_lacks_none(
    engine: Engine,
) -> None:
    wanted = indexes.needed(engine.dialect.name)
    assert {index.table for index in wanted} <= set(PLATFORM_TABLES)
    assert ("organizations", ("owner_id",)) in {(index.table, index.columns) for index in wanted}
    with engine.connect() as conn:
        assert indexes.missing(conn) == []


def test_plan_and_run_warn_with_the_statement_of_each_missing_index(
    bare: Engine, db_url: str, plan: Path
) -> None:
    expected = [statement(bare, "organizations", "owner_id"), statement(bare, "projects", "owner_id")]
    dry = rollout("plan", "--wave", "everyone", "--format", "json", db_url=db_url, plan=plan)
    assert dry.returncode == 0, dry.stderr
    assert [e["statement"] for e in missing_events(dry.stderr)] == expected
    assert [e["table"] for e in missing_events(dry.stderr)] == ["organizations", "projects"]
    assert any(e["event"] == "indexes.hint" and e["missing"] == 2 for e in events(dry.stderr))
    done = rollout("run", "--wave", "everyone", db_url=db_url, plan=plan)
    assert done.returncode == 0, done.stderr
    assert [e["statement"] for e in missing_events(done.stderr)] == expected
    # The warning does not stop the work.
    assert scalar(bare, "SELECT COUNT(*) FROM projects WHERE organization_id IS NOT NULL") == 3


def test_db_indexes_builds_the_missing_ones_and_then_nothing_is_missing(
    bare: Engine, db_url: str, plan: Path
) -> None:
    printed = rollout("db", "indexes", "--print", db_url=db_url, plan=plan, check=True)
    assert printed.stdout.splitlines() == [
        statement(bare, "organizations", "owner_id"),
        statement(bare, "projects", "owner_id"),
    ]
    with bare.connect() as conn:
        assert [index.name for index in indexes.missing(conn)] == list(BUILT)
    built = rollout("db", "indexes", db_url=db_url, plan=plan)
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip().startswith("built 2 indexes in ")
    assert [e["index"] for e in events(built.stderr) if e["event"] == "indexes.building"] == list(BUILT)
    with bare.connect() as conn:
        assert indexes.missing(conn) == []
    again = rollout("db", "indexes", db_url=db_url, plan=plan, check=True)
    assert again.stdout.strip() == "every index the job relies on is present; nothing built"
    assert rollout("db", "indexes", "--print", db_url=db_url, check=True).stdout.strip() == (
        "-- every index the job relies on is present"
    )
    quiet = rollout("plan", "--wave", "everyone", "--format", "json", db_url=db_url, plan=plan, check=True)
    assert missing_events(quiet.stderr) == []


def test_any_index_leading_with_the_columns_serves_but_a_partial_one_does_not(bare: Engine) -> None:
    with bare.begin() as conn:
        conn.execute(text("CREATE INDEX platform_orgs_by_owner ON organizations (owner_id, created_at)"))
        conn.execute(
            text("CREATE INDEX platform_live_projects ON projects (owner_id) WHERE status <> 'deleted'")
        )
        conn.execute(text("CREATE INDEX platform_projects_by_region ON projects (region, owner_id)"))
    with bare.connect() as conn:
        assert [index.lookup for index in indexes.missing(conn)] == ["projects (owner_id)"]


def test_an_invalid_index_of_the_jobs_is_one_line_naming_the_fix(bare: Engine, db_url: str) -> None:
    """A concurrent build that failed left the job's index invalid: `IF NOT EXISTS` skips it, the
    lookup is still not served, and `db indexes` says which index to drop (exit 1)."""
    if bare.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL leaves an invalid index behind a failed concurrent build")
    with bare.begin() as conn:
        conn.execute(text("CREATE INDEX rollout_organizations_owner_id_idx ON organizations (owner_id)"))
        conn.execute(
            text(
                "UPDATE pg_index SET indisvalid = false"
                " WHERE indexrelid = 'rollout_organizations_owner_id_idx'::regclass"
            )
        )
    failed = rollout("db", "indexes", db_url=db_url)
    assert failed.returncode == 1
    (line,) = errors(failed.stderr)
    assert "rollout_organizations_owner_id_idx exists but does not serve organizations (owner_id)" in line
    assert "DROP INDEX CONCURRENTLY rollout_organizations_owner_id_idx" in line
    with bare.begin() as conn:
        conn.execute(text("DROP INDEX rollout_organizations_owner_id_idx"))
    assert rollout("db", "indexes", db_url=db_url, check=True).stdout.startswith("built 2 indexes")
    with bare.connect() as conn:
        assert indexes.missing(conn) == []


def test_a_platform_index_of_a_name_the_job_would_use_is_left_alone(bare: Engine, db_url: str) -> None:
    """The job's index names are its own: a platform index named like the platform's conventions
    (here a partial one, which serves no lookup) is neither skipped nor touched."""
    with bare.begin() as conn:
        conn.execute(
            text("CREATE INDEX organizations_owner_id_idx ON organizations (owner_id) WHERE owner_id > 2")
        )
    rollout("db", "indexes", db_url=db_url, check=True)
    with bare.connect() as conn:
        assert indexes.missing(conn) == []
    names = {index["name"] for index in inspect(bare).get_indexes("organizations")}
    assert {"organizations_owner_id_idx", "rollout_organizations_owner_id_idx"} <= names


def test_a_role_that_does_not_own_the_tables_is_told_who_can(
    bare: Engine, db_url: str, role: tuple[str, str]
) -> None:
    name, as_role = role
    grant_role(bare, db_url, name)
    # The job's role sees what is missing (the catalog is readable by all) ...
    shown = rollout("db", "indexes", "--print", db_url=as_role, check=True)
    assert len(shown.stdout.splitlines()) == 2
    # ... and cannot build it: one line, exit 2.
    refused = rollout("db", "indexes", db_url=as_role)
    assert refused.returncode == 2, refused.stderr
    (line,) = errors(refused.stderr)
    assert "only the tables' owner may create indexes" in line
    with bare.connect() as conn:
        assert len(indexes.missing(conn)) == 2
