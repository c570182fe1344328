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
    schema_version.VERSION_TABLE,
)


def init_schema(engine: Engine, *, platform: bool) -> tuple[str | None, str]:
    """Brings the job's tables to the newest revision (creating them on an empty database), and with
    `platform` creates the platform tables. Idempotent. Returns the revisions (before, after)."""

    def create(conn: Connection) -> tuple[str | None, str]:
        if platform:
            for statement in queries.script("platform.sql", conn.dialect.name):
                conn.exec_driver_sql(statement)
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
