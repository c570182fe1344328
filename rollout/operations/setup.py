"""Databases the job makes itself: the demo's, made afresh, never someone else's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from rollout.engine import ledger
from rollout.errors import UsageError
from rollout.store import dialect
from rollout.store.engine import make_engine, transaction
from rollout.store.schema import init_schema, table_names

DEMO_MARKER = "demo"


def _is_previous_demo(engine: Engine) -> bool:
    def check(conn: Connection) -> bool:
        return "rollout_meta" in table_names(conn) and ledger.get_meta(conn, DEMO_MARKER) == "1"

    try:
        return transaction(engine, check)
    except DBAPIError:  # not a SQLite database at all
        return False


def prepare_demo_database(url: str, say: Callable[[str], None]) -> Engine:
    """A fresh database for the demo, with the platform and job tables: a previous demo's is made
    afresh, any other non-empty one refused."""
    parsed = make_url(url)
    if parsed.get_backend_name() != dialect.SQLITE:
        engine = make_engine(url)
        if transaction(engine, table_names):
            raise UsageError(
                f"refusing to run the demo in {parsed.render_as_string(hide_password=True)}: it is not empty"
            )
    else:
        path = Path(parsed.database or "rollout.db")
        if path.exists() and path.stat().st_size > 0:
            if not _is_previous_demo(make_engine(url)):
                raise UsageError(f"refusing to run the demo in {path}: it exists and is not a demo database")
            say(f"Removing the previous demo database {path}.")
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        engine = make_engine(url, create=True)
    init_schema(engine, platform=True)
    transaction(engine, lambda conn: ledger.set_meta(conn, DEMO_MARKER, "1"))
    return engine
