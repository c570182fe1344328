"""Which revision of the job's schema a database is at, and moving it to the newest (Alembic).

A rollout lasts weeks and the tool is upgraded in the middle of it: `rollout db upgrade` (and
`db init`, which is the same on an empty database) runs the revisions the database lacks, in one
transaction, without touching the ledger's rows. A database made before revisions were recorded
(the first release) has the tables of revision 0001 and no version table: it is stamped 0001 first.
"""

from __future__ import annotations

from importlib import resources

from alembic import command, op
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from rollout.store import queries

VERSION_TABLE = "rollout_schema_version"
FIRST = "0001"


def _config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("rollout.store") / "migrations"))
    if conn is not None:
        config.attributes["connection"] = conn
    return config


def head() -> str:
    """The newest revision this release knows."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def known() -> frozenset[str]:
    """Every revision this release knows."""
    return frozenset(r.revision for r in ScriptDirectory.from_config(_config()).walk_revisions())


def current(conn: Connection) -> str | None:
    """The database's revision; None when it has none of the job's tables."""
    tables = set(inspect(conn).get_table_names())
    if VERSION_TABLE not in tables:
        return FIRST if "rollout_runs" in tables else None
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(conn: Connection) -> tuple[str | None, str]:
    """Runs the missing revisions on the caller's transaction; returns (before, after)."""
    before = current(conn)
    config = _config(conn)
    if before == FIRST and VERSION_TABLE not in set(inspect(conn).get_table_names()):
        command.stamp(config, FIRST)
    command.upgrade(config, "head")
    return before, head()


def run_file(name: str) -> None:
    """A revision's body: the statements of `sql/schema/migrations/NAME` for this database."""
    conn = op.get_bind()
    for statement in queries.script(f"migrations/{name}", conn.dialect.name):
        conn.exec_driver_sql(statement)
