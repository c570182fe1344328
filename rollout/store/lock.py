"""The lease of `run --auto`: one cron run at a time, per database, on every host.

A row in `rollout_leases` rather than a session-level advisory lock: a lock held by an idle
connection is lost silently when a pooler (PgBouncer in transaction mode), an
`idle_session_timeout` or an operator ends that connection, and a second run would start beside
the first. The row is renewed for `TTL` at the start and at the end of every batch, and at every
pause, of the run that holds it; a run that finds it taken over stops (exit 3). A run killed with
SIGKILL leaves its lease until it expires: cron's next run within `TTL` exits 3, the one after
takes it over. The hosts' clocks must agree to well within `TTL`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, Engine

from rollout.clock import utcnow
from rollout.errors import LockHeld
from rollout.store import queries
from rollout.store.dialect import as_datetime
from rollout.store.engine import transaction

NAME = "run --auto"
TTL = timedelta(minutes=5)


class LockLost(LockHeld):
    """The lease expired and another run took it: this run must stop."""


@dataclass(frozen=True)
class Lease:
    engine: Engine
    holder: str

    def renew(self, conn: Connection) -> None:
        """Extends the lease inside the caller's transaction; `LockLost` when it is not ours any more."""
        if not queries.execute(conn, "renew_lease", name=NAME, holder=self.holder, expires=utcnow() + TTL):
            raise LockLost(
                "the `run --auto` lease was taken over by another run; stopping before the next batch"
            )


@contextmanager
def auto_lock(engine: Engine, holder: str) -> Iterator[Lease]:
    """Holds the lease for the block; `LockHeld` (exit 3) when another run has it."""

    def take(conn: Connection) -> tuple[str, str, int, object]:
        now = utcnow()
        queries.execute(
            conn,
            "take_lease",
            name=NAME,
            holder=holder,
            host=socket.gethostname(),
            pid=os.getpid(),
            now=now,
            expires=now + TTL,
        )
        row = queries.one(conn, "lease_holder", name=NAME)
        assert row is not None
        return row.holder, row.host, row.pid, row.expires_at

    owner, host, pid, expires = transaction(engine, take)
    if owner != holder:
        until = as_datetime(expires)
        raise LockHeld(
            f"another `rollout run --auto` holds the lease (run {owner} on {host}, pid {pid},"
            f" until {until.isoformat(timespec='seconds') if until else 'unknown'})"
        )
    try:
        yield Lease(engine, holder)
    finally:
        transaction(engine, lambda conn: queries.execute(conn, "release_lease", name=NAME, holder=holder))
