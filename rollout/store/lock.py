"""The cross-process lock of `run --auto`: one cron run at a time, per database.

PostgreSQL: a session-level advisory lock, taken without waiting on a dedicated connection, held
until the run ends (or its process dies: the server releases it with the session).
SQLite: an exclusive `flock` on a file beside the database, released by the kernel when the process
dies.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

from rollout.errors import LockHeld
from rollout.store import dialect, queries

# A fixed key derived from the product's name, so other users of advisory locks do not collide.
ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"rollout:run --auto").digest()[:8], "big", signed=True)


@contextmanager
def auto_lock(engine: Engine) -> Iterator[None]:
    """Holds the lock for the block; `LockHeld` (exit 3) when another process has it."""
    if engine.dialect.name == dialect.POSTGRESQL:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            if not queries.scalar(conn, "try_auto_lock", key=ADVISORY_KEY):
                raise LockHeld("another `rollout run --auto` holds the lock on this database")
            try:
                yield
            finally:
                queries.scalar(conn, "release_auto_lock", key=ADVISORY_KEY)
        return
    path = Path(f"{engine.url.database}.auto.lock")
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise LockHeld(f"another `rollout run --auto` holds {path}") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
