"""The tables: the platform's (which the job only reads and writes rows of) and the job's own."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.exc import DBAPIError

from rollout.errors import SchemaNotInitialised, UsageError
from rollout.store import dialect, queries, schema_version
from rollout.store.engine import transaction

# The platform tables, in foreign-key order, each with its primary key (the order of its rows).
PLATFORM_TABLES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "users": ("id",),
        "organizations": ("id",),
        "organization_members": ("organization_id", "user_id"),
        "organization_member_permissions": ("organization_id", "user_id", "permission"),
        "projects": ("id",),
        "project_access": ("project_id", "user_id"),
        "environments": ("id",),
        "environment_access": ("environment_id", "user_id"),
        "billing_accounts": ("id",),
        "subscriptions": ("project_id",),
        "invoices": ("id",),
        "vouchers": ("code",),
    }
)
JOB_TABLES = (
    "rollout_meta",
    "rollout_runs",
    "rollout_owners",
    "rollout_moved_projects",
    "rollout_added_members",
    "rollout_added_permissions",
    "rollout_control",
    "rollout_waves",
    "rollout_batches",
    "rollout_leases",
    "rollout_rollbacks",
    schema_version.VERSION_TABLE,
)


def init_schema(engine: Engine, *, platform: bool, upgrade_only: bool = False) -> tuple[str | None, str]:
    """Brings the job's tables to the newest revision (creating them when there are none), and with
    `platform` creates the platform tables. Idempotent. Returns the revisions (before, after).

    Without `platform`, a database that has not the platform's tables is refused (it is someone
    else's); with `upgrade_only`, one that has not the job's tables yet too.
    """

    def create(conn: Connection) -> tuple[str | None, str]:
        if platform:
            for statement in queries.script("platform.sql", conn.dialect.name):
                conn.exec_driver_sql(statement)
        else:
            missing = [t for t in PLATFORM_TABLES if t not in table_names(conn)]
            if missing:
                raise SchemaNotInitialised(
                    f"platform tables missing ({', '.join(missing)}): this is not the platform's database"
                    " (`rollout db init --platform-schema` makes a rehearsal one)"
                )
        if upgrade_only and schema_version.current(conn) is None:
            raise SchemaNotInitialised(
                "the job's tables are not here to upgrade; `rollout db init` creates them"
            )
        return schema_version.upgrade(conn)

    return transaction(engine, create)


def table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def check_schema(engine: Engine) -> None:
    """Refuses to work on a database without the platform tables or the job's own (exit 2)."""
    try:
        present, revision = transaction(
            engine, lambda conn: (table_names(conn), schema_version.current(conn))
        )
    except DBAPIError as exc:
        if engine.dialect.name == dialect.SQLITE and "not a database" in str(exc):
            raise UsageError(f"{engine.url.database} is not a SQLite database") from exc
        raise
    missing_platform = [t for t in PLATFORM_TABLES if t not in present]
    if missing_platform:
        raise SchemaNotInitialised(
            f"platform tables missing ({', '.join(missing_platform)}); this is not the platform's database,"
            " or run `rollout db init --platform-schema` for a rehearsal"
        )
    if revision is None:
        raise SchemaNotInitialised("the job's tables are missing; run `rollout db init`")
    if revision not in schema_version.known():
        raise SchemaNotInitialised(
            f"the job's tables are at revision {revision}, newer than this release knows"
            f" ({schema_version.head()}): run a newer rollout"
        )
    if revision != schema_version.head():
        raise SchemaNotInitialised(
            f"the job's tables are at revision {revision}, this release needs {schema_version.head()}: "
            "run `rollout db upgrade` (the ledger is kept)"
        )


def grants(role: str, *, read_only: bool) -> list[str]:
    """The GRANT statements for `role` (`sql/schema/grants.sql`): what `plan`, `status` and `verify`
    need with `read_only`, else what every command but `db init` needs."""
    text = (queries.sql_root() / "schema" / "grants.sql").read_text(encoding="utf-8")
    wanted = "read-only" if read_only else "run"
    statements, section = [], None
    for block in text.split(";"):
        lines = []
        for line in block.splitlines():
            if line.startswith("-- section:"):
                section = line.split(":", 1)[1].strip()
            elif not line.lstrip().startswith("--") and line.strip():
                lines.append(line.strip())
        if lines and section == wanted:
            statements.append(" ".join(lines).replace("{role}", quote_identifier(role)) + ";")
    return statements


def quote_identifier(name: str) -> str:
    """A PostgreSQL identifier, quoted: the role name is an operator's input, never SQL."""
    return '"' + name.replace('"', '""') + '"'
