"""`rollout demo`: the one-command tour on the embedded default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from rollout import db
from rollout.errors import UsageError
from rollout.sql import query

DEMO_MARKER = "demo"


def _is_previous_demo(engine: Engine) -> bool:
    def check(conn: Connection) -> bool:
        if "rollout_meta" not in inspect(conn).get_table_names():
            return False
        return conn.execute(query("get_meta", conn.dialect.name), {"key": DEMO_MARKER}).scalar() == "1"

    try:
        return db.transaction(engine, check)
    except DBAPIError:  # not a SQLite database at all
        return False


def _has_tables(engine: Engine) -> bool:
    return bool(db.transaction(engine, lambda conn: inspect(conn).get_table_names()))


def prepare(url: str, say: Callable[[str], None]) -> Engine:
    """A fresh database for the demo: a previous demo's is made afresh, any other non-empty one refused."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = db.make_engine(url)
        if _has_tables(engine):
            raise UsageError(f"refusing to run the demo in {parsed.render_as_string()}: it is not empty")
    else:
        path = Path(parsed.database or "rollout.db")
        if path.exists() and path.stat().st_size > 0:
            if not _is_previous_demo(db.make_engine(url)):
                raise UsageError(f"refusing to run the demo in {path}: it exists and is not a demo database")
            say(f"Removing the previous demo database {path}.")
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        engine = db.make_engine(url, create=True)
    db.init_schema(engine, platform=True)
    db.transaction(
        engine,
        lambda conn: conn.execute(query("set_meta", conn.dialect.name), {"key": DEMO_MARKER, "value": "1"}),
    )
    return engine
