"""Hand-built platform data and table snapshots for the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from rollout.clock import utcnow
from rollout.engine.history import new_run_id
from rollout.engine.runner import Runner
from rollout.engine.selection import sweep_owners, wave_owners
from rollout.engine.states import RunMode
from rollout.engine.summary import RunSummary
from rollout.engine.waveplan import RolloutSettings, Wave
from rollout.store import queries
from rollout.store.dialect import as_datetime
from rollout.store.engine import make_engine
from rollout.store.schema import PLATFORM_TABLES

T0 = datetime(2020, 1, 1, tzinfo=UTC)
EVERYONE = Wave(name="everyone", percent=100)


class Platform:
    """Inserts platform rows one by one, with defaults that keep the tests short."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._env_id = 1000
        self._billing_id = 500

    def _insert(self, table: str, **values: Any) -> None:
        columns = ", ".join(values)
        params = ", ".join(f":{k}" for k in values)
        self.conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({params})"), values)

    def user(
        self, id: int, username: str | None = None, *, display_name: str | None = "", deleted: bool = False
    ) -> int:
        self._insert(
            "users",
            id=id,
            username=username or f"user{id}",
            email=f"u{id}@example.com",
            display_name=(display_name if display_name != "" else f"User {id}"),
            created_at=T0,
            deleted_at=T0 if deleted else None,
        )
        return id

    def named_owners(self, names: Mapping[int, str]) -> None:
        """Owners by id and username, each with one legacy project `p<id>` and no grant."""
        for owner, username in names.items():
            self.user(owner, username)
            self.project(f"p{owner}", owner)

    def shared_owners(
        self, owner_ids: range, *, collaborator: int = 100, deleted: tuple[int, ...] = ()
    ) -> None:
        """Owners with a project each (`p<id>`), shared with one collaborator as viewer, who is
        admin of its production environment; the owners in `deleted` are deleted users."""
        self.user(collaborator)
        for owner in owner_ids:
            self.user(owner, deleted=owner in deleted)
            self.project(
                f"p{owner}",
                owner,
                access={collaborator: "viewer"},
                environments={"production": {collaborator: "admin"}},
            )

    def organization(
        self, name: str, owner_id: int, *, members: dict[int, tuple[str, ...]] | None = None
    ) -> int:
        self._insert("organizations", name=name, label=name.title(), owner_id=owner_id, created_at=T0)
        org_id = int(
            self.conn.execute(text("SELECT id FROM organizations WHERE name = :n"), {"n": name}).scalar_one()
        )
        for user_id, permissions in (members or {}).items():
            self._insert("organization_members", organization_id=org_id, user_id=user_id, created_at=T0)
            for permission in permissions:
                self._insert(
                    "organization_member_permissions",
                    organization_id=org_id,
                    user_id=user_id,
                    permission=permission,
                )
        return org_id

    def project(
        self,
        id: str,
        owner_id: int,
        *,
        status: str = "active",
        region: str = "eu-1",
        organization_id: int | None = None,
        access: dict[int, str] | None = None,
        environments: dict[str, dict[int, str]] | None = None,
    ) -> str:
        self._insert(
            "projects",
            id=id,
            title=f"Project {id}",
            region=region,
            owner_id=owner_id,
            organization_id=organization_id,
            status=status,
            created_at=T0,
        )
        for user_id, role in (access or {}).items():
            self._insert("project_access", project_id=id, user_id=user_id, role=role)
        for name, grants in (environments or {}).items():
            self._env_id += 1
            kind = name if name in ("production", "staging") else "development"
            self._insert("environments", id=self._env_id, project_id=id, name=name, type=kind)
            for user_id, role in grants.items():
                self._insert("environment_access", environment_id=self._env_id, user_id=user_id, role=role)
        return id

    def billing(
        self,
        *,
        user_id: int | None = None,
        organization_id: int | None = None,
        projects: tuple[str, ...] = (),
        invoices: int = 2,
        vouchers: int = 1,
        id: int | None = None,
    ) -> int:
        self._billing_id += 1
        bid = id or self._billing_id
        self._insert(
            "billing_accounts",
            id=bid,
            user_id=user_id,
            organization_id=organization_id,
            payment_method="card:visa:4242",
            billing_address="1 Main St",
        )
        for project_id in projects:
            self._insert(
                "subscriptions",
                project_id=project_id,
                billing_account_id=bid,
                plan="pro",
                storage_gb=10,
                development_environments=2,
                user_licenses=5,
            )
        for i in range(invoices):
            self._insert(
                "invoices", id=bid * 100 + i, billing_account_id=bid, issued_at=T0, amount_cents=1000 + i
            )
        for i in range(vouchers):
            self._insert("vouchers", code=f"V-{bid}-{i}", billing_account_id=bid, amount_cents=500)
        return bid


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_datetime(value).isoformat()  # type: ignore[union-attr]
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in " T":
        try:
            return as_datetime(value).isoformat()  # type: ignore[union-attr]
        except ValueError:
            return value
    if isinstance(value, bool):
        return int(value)
    return value


def rows(engine: Engine, table: str, order_by: str | None = None) -> list[tuple[Any, ...]]:
    """Every row of a table, normalised so that SQLite and PostgreSQL compare alike."""
    order = order_by or ", ".join(PLATFORM_TABLES.get(table, ("1",)))
    with engine.connect() as conn:
        result = conn.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))
        return [tuple(_normal(v) for v in row) for row in result]


def snapshot(engine: Engine, tables: tuple[str, ...] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    return {t: rows(engine, t) for t in (tables or tuple(PLATFORM_TABLES))}


def logical_snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """The platform's content with organizations named instead of numbered and creation times left
    out: two runs that did the same thing compare equal even if sequences advanced differently."""
    queries = {
        "organizations": "SELECT name, label, owner_id FROM organizations ORDER BY name",
        "members": "SELECT o.name, m.user_id FROM organization_members m JOIN organizations o ON o.id = m.organization_id"
        " ORDER BY 1, 2",
        "permissions": "SELECT o.name, p.user_id, p.permission FROM organization_member_permissions p"
        " JOIN organizations o ON o.id = p.organization_id ORDER BY 1, 2, 3",
        "projects": "SELECT p.id, p.owner_id, o.name, p.status FROM projects p"
        " LEFT JOIN organizations o ON o.id = p.organization_id ORDER BY 1",
        "billing": "SELECT b.id, b.user_id, o.name FROM billing_accounts b"
        " LEFT JOIN organizations o ON o.id = b.organization_id ORDER BY 1",
        "owner_states": "SELECT owner_id, state, organization_name, organization_created, billing_account_id, reason"
        " FROM rollout_owners ORDER BY 1",
    }
    with engine.connect() as conn:
        return {k: [tuple(_normal(v) for v in r) for r in conn.execute(text(q))] for k, q in queries.items()}


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


@contextmanager
def watching(engine: Engine) -> Iterator[Engine]:
    """An engine to poll a running job's database from. On SQLite it opens the file read-only: the
    job's engine begins every transaction with `BEGIN IMMEDIATE`, and a poll that did so too would
    queue for the write lock behind batch after batch (measured: 1.3 s for one poll, by which time
    a 1 500-owner wave was more than half done), so it could miss the moment it waits for."""
    watcher = make_engine(engine.url.render_as_string(hide_password=False), read_only=True)
    try:
        yield watcher
    finally:
        watcher.dispose()


REPO = Path(__file__).resolve().parent.parent


def rollout_command(url: str, plan: Path | None, *args: str) -> list[str]:
    """The real `rollout` command on a database, with a plan (when given) and JSON logs on stderr."""
    return [
        sys.executable,
        "-m",
        "rollout",
        "--database-url",
        url,
        *(["--plan", str(plan)] if plan is not None else []),
        "--log-format",
        "json",
        *args,
    ]


def rollout(
    *args: str,
    db_url: str,
    plan: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = False,
    timeout: float = 300,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real `rollout` command in a subprocess, with JSON logs on stderr, run in the checkout
    (or in `cwd`)."""
    result = subprocess.run(
        rollout_command(db_url, plan, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or REPO,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"rollout {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


def events(stderr: str) -> list[dict[str, Any]]:
    """The JSON events of a command's stderr (off a terminal every line is one)."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def errors(stderr: str) -> list[str]:
    """A command's error lines: `rollout.error` events in JSON mode, `rollout: error:` lines else."""
    found = [e["error"] for e in events(stderr) if e.get("event") == "rollout.error"]
    return found + [line for line in stderr.splitlines() if line.startswith("rollout: error:")]


def many_owners(engine: Engine, count: int, *, collaborator: int = 10**6) -> None:
    """`count` owners (ids 1..count), a project each shared with one collaborator, loaded in bulk."""
    with engine.begin() as conn:
        users = [(collaborator, "collaborator", "c@example.com", None, T0, None)]
        users += [(i, f"owner{i}", f"o{i}@example.com", f"Owner {i}", T0, None) for i in range(1, count + 1)]
        queries.load(conn, "load_users", users)
        queries.load(
            conn,
            "load_projects",
            [(f"p{i}", f"P{i}", "eu-1", i, None, "active", T0) for i in range(1, count + 1)],
        )
        queries.load(
            conn, "load_project_access", [(f"p{i}", collaborator, "viewer") for i in range(1, count + 1)]
        )


def half_migrated_owners(engine: Engine) -> list[int]:
    """Owners a crash left half-done: recorded migrated with a legacy project left, or with projects
    the job moved while not recorded migrated, or with a moved project outside their organization."""
    sql = """
        SELECT r.owner_id FROM rollout_owners r JOIN projects p ON p.owner_id = r.owner_id
        WHERE r.state = 'migrated' AND p.status <> 'deleted' AND p.organization_id IS NULL
        UNION
        SELECT m.owner_id FROM rollout_moved_projects m LEFT JOIN rollout_owners r ON r.owner_id = m.owner_id
        WHERE r.state IS NULL OR r.state <> 'migrated'
        UNION
        SELECT m.owner_id FROM rollout_moved_projects m JOIN projects p ON p.id = m.project_id
        WHERE p.organization_id IS NULL OR p.organization_id <> m.organization_id
    """
    with engine.connect() as conn:
        return sorted(r[0] for r in conn.execute(text(sql)))


def inject_failure(engine: Engine, condition: str) -> None:
    """A trigger that makes the migration's project update fail where `condition` (on NEW) holds:
    a real database error in the middle of a batch, on either backend."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'injected failure for %', NEW.id; END $$"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER boom BEFORE UPDATE ON projects FOR EACH ROW "
                    f"WHEN ({condition}) EXECUTE FUNCTION boom()"
                )
            )
        else:
            conn.execute(
                text(
                    f"CREATE TRIGGER boom BEFORE UPDATE ON projects WHEN {condition} "
                    "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
                )
            )


def remove_failure(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "DROP TRIGGER boom ON projects" if conn.dialect.name == "postgresql" else "DROP TRIGGER boom"
            )
        )


def write_plan(folder: Path, text: str, name: str = "waves.toml") -> Path:
    """A wave plan file for a test."""
    path = folder / name
    path.write_text(text)
    return path


def run_wave(
    engine: Engine,
    wave: Wave = EVERYONE,
    *,
    batch_size: int = 500,
    retry_failed: bool = False,
    settings: RolloutSettings | None = None,
) -> RunSummary:
    """Migrates a wave in-process, the way `rollout run --wave` does."""
    settings = settings or RolloutSettings(batch_size=batch_size)
    started = utcnow()
    runner = Runner(
        engine,
        settings,
        run_id=new_run_id(),
        mode=RunMode.WAVE,
        wave=wave.name,
        sweep=lambda: sweep_owners(engine, wave, settings.salt, migrated_before=started),
    )
    return runner.run(wave_owners(engine, wave, settings.salt, retry_failed=retry_failed))


def run_owner(engine: Engine, owner_id: int) -> RunSummary:
    """Migrates one owner in-process, the way `rollout run --owner` does."""
    runner = Runner(engine, RolloutSettings(), run_id=new_run_id(), mode=RunMode.OWNER, wave=None)
    return runner.run([owner_id])


def grant_role(engine: Engine, db_url: str, name: str, *extra: str) -> None:
    """Runs, as the tables' owner, the GRANT statements `rollout db grants --role NAME` prints."""
    printed = rollout("db", "grants", "--role", name, *extra, db_url=db_url, check=True).stdout
    with engine.begin() as conn:
        for statement in printed.strip().splitlines():
            conn.execute(text(statement))
