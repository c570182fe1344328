"""The job's own records (SPEC 6): runs and their heartbeats, owner states, the pause switch."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from rollout import db
from rollout.clock import utcnow
from rollout.dialect import as_datetime
from rollout.errors import Halted
from rollout.sql import query

# A live run heartbeats after every batch; one silent for this long has died.
STALE_AFTER = timedelta(minutes=10)


@dataclass
class RunCounts:
    attempted: int = 0
    migrated: int = 0
    failed: int = 0
    blocked: int = 0
    drifted: int = 0
    batches: int = 0

    def as_params(self) -> dict[str, int]:
        return {
            "attempted": self.attempted,
            "migrated": self.migrated,
            "failed": self.failed,
            "blocked": self.blocked,
            "drifted": self.drifted,
            "batches": self.batches,
        }


@dataclass(frozen=True)
class Control:
    paused: bool
    reason: str | None
    changed_at: datetime | None
    changed_by: str | None


def _execute(conn: Connection, name: str, params: Any = None) -> Any:
    return conn.execute(query(name, conn.dialect.name), params or {})


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def start_run(engine: Engine, run_id: str, *, mode: str, wave: str | None) -> None:
    """Records a new run, after marking runs whose heartbeat went stale as abandoned."""

    def work(conn: Connection) -> None:
        now = utcnow()
        _execute(conn, "abandon_stale_runs", {"stale_before": now - STALE_AFTER})
        _execute(
            conn,
            "insert_run",
            {
                "id": run_id,
                "mode": mode,
                "wave": wave,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "now": now,
            },
        )

    db.transaction(engine, work)


def heartbeat(conn: Connection, run_id: str, counts: RunCounts) -> None:
    """Refreshes the run's heartbeat and counts, inside the batch's own transaction."""
    _execute(conn, "heartbeat_run", {"id": run_id, "now": utcnow(), **counts.as_params()})


def finish_run(
    engine: Engine, run_id: str, outcome: str, counts: RunCounts, message: str | None = None
) -> None:
    db.transaction(
        engine,
        lambda conn: _execute(
            conn,
            "finish_run",
            {"id": run_id, "now": utcnow(), "outcome": outcome, "message": message, **counts.as_params()},
        ),
    )


def record_failure(conn: Connection, *, owner_id: int, wave: str | None, run_id: str, error: str) -> None:
    _execute(
        conn,
        "record_failed_owner",
        {"owner_id": owner_id, "wave": wave, "run_id": run_id, "error": error[:2000], "now": utcnow()},
    )


def control(conn: Connection) -> Control:
    row = _execute(conn, "get_control").first()
    if row is None:
        return Control(False, None, None, None)
    return Control(bool(row.paused), row.reason, as_datetime(row.changed_at), row.changed_by)


def refuse_if_paused(engine: Engine) -> None:
    """`Halted` (exit 4) while the rollout is paused: no run starts then."""
    switch = db.transaction(engine, control)
    if switch.paused:
        raise Halted(f"the rollout is paused ({switch.reason or 'no reason given'}); `rollout resume` first")


def set_paused(engine: Engine, paused: bool, reason: str | None) -> None:
    who = f"{os.environ.get('USER', 'unknown')}@{socket.gethostname()}"
    db.transaction(
        engine,
        lambda conn: _execute(
            conn, "set_control", {"paused": paused, "reason": reason, "now": utcnow(), "changed_by": who}
        ),
    )


def recent_runs(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
    runs = []
    for row in _execute(conn, "recent_runs", {"limit": limit}):
        run = dict(row._mapping)
        for key in ("started_at", "heartbeat_at", "finished_at"):
            value = as_datetime(run[key])
            run[key] = value.isoformat() if value else None
        runs.append(run)
    return runs
