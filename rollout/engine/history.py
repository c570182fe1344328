"""The run history, the `rollout_runs` and `rollout_batches` tables: every invocation with who ran
it, with what and against which plan, its heartbeat and counts, its batches, and what the metrics
read back from them.

Every function takes the caller's `Connection`: a run's heartbeat commits with its batch.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from rollout.clock import utcnow
from rollout.engine.states import RunMode, RunOutcome
from rollout.store import queries
from rollout.store.dialect import as_datetime

# A live run heartbeats after every batch; one silent for this long has died.
STALE_AFTER = timedelta(minutes=10)


@dataclass
class RunCounts:
    attempted: int = 0  # owners concluded: migrated, blocked or failed
    migrated: int = 0
    failed: int = 0
    blocked: int = 0
    drifted: int = 0
    batches: int = 0
    deferred: int = 0  # owners still deferred (another transaction held their rows)
    swept: int = 0  # owners migrated before whose late platform writes this run applied the rules to
    throttled_seconds: float = 0.0


@dataclass(frozen=True)
class BatchRecord:
    """One batch of a run, as `rollout_batches` keeps it."""

    run_id: str
    seq: int
    started_at: datetime
    size: int
    duration_seconds: float
    lock_seconds: float
    migrated: int
    deferred: int
    failed: int
    blocked: int
    throttled_seconds: float
    waiting_sessions: int


@dataclass(frozen=True)
class Invocation:
    """Who started a run and with what, as the run history keeps it."""

    operator: str | None = None
    parameters: str | None = None  # JSON of the command's options
    plan_fingerprint: str | None = None  # sha256 of the plan file's bytes


UNRECORDED = Invocation()


@dataclass(frozen=True)
class LastInvocations:
    attempted_at: datetime | None
    healthy_at: datetime | None
    succeeded_at: datetime | None


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


# -- runs


def start_run(
    conn: Connection, run_id: str, *, mode: RunMode, wave: str | None, invocation: Invocation = UNRECORDED
) -> None:
    """Records a new run, after marking runs whose heartbeat went stale as abandoned."""
    now = utcnow()
    queries.execute(conn, "abandon_stale_runs", stale_before=now - STALE_AFTER)
    queries.execute(conn, "insert_run", now=now, **_invocation_row(run_id, mode, wave, invocation))


def record_invocation(
    conn: Connection,
    run_id: str,
    *,
    mode: RunMode,
    wave: str | None,
    outcome: RunOutcome,
    message: str | None,
    invocation: Invocation,
) -> None:
    """Records an invocation that ended before any batch (nothing to do, or refused)."""
    queries.execute(
        conn,
        "insert_finished_run",
        now=utcnow(),
        outcome=str(outcome),
        message=message,
        **_invocation_row(run_id, mode, wave, invocation),
    )


def _invocation_row(run_id: str, mode: RunMode, wave: str | None, invocation: Invocation) -> dict[str, Any]:
    """What every row of the run history says of its invocation: which, where, who, with what."""
    where = {"host": socket.gethostname(), "pid": os.getpid()}
    return {"id": run_id, "mode": str(mode), "wave": wave, **where, **asdict(invocation)}


def heartbeat(conn: Connection, run_id: str, counts: RunCounts) -> None:
    """Refreshes the run's heartbeat and counts, inside the batch's own transaction."""
    queries.execute(conn, "heartbeat_run", id=run_id, now=utcnow(), **asdict(counts))


def finish_run(
    conn: Connection, run_id: str, outcome: RunOutcome, counts: RunCounts, message: str | None
) -> None:
    queries.execute(
        conn, "finish_run", id=run_id, now=utcnow(), outcome=str(outcome), message=message, **asdict(counts)
    )


def record_batch(conn: Connection, batch: BatchRecord) -> None:
    queries.execute(conn, "record_batch", **asdict(batch))


def recent_rate(conn: Connection) -> float | None:
    """Owners per second of the newest run's batches, throttling included; None before any."""
    row = queries.one(conn, "recent_batch_rate")
    if row is None or not row.owners or not row.seconds:
        return None
    return float(row.owners) / float(row.seconds)


def recent_runs(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
    runs = []
    for row in queries.rows(conn, "recent_runs", limit=limit):
        run = dict(row._mapping)
        for key in ("started_at", "heartbeat_at", "finished_at"):
            value = as_datetime(run[key])
            run[key] = value.isoformat() if value else None
        runs.append(run)
    return runs


def last_invocations(conn: Connection) -> LastInvocations:
    """When an invocation last started, last ended healthy, last succeeded (rollbacks aside)."""
    row = queries.one(conn, "last_invocations")
    if row is None:
        return LastInvocations(None, None, None)
    return LastInvocations(
        as_datetime(row.attempted_at), as_datetime(row.healthy_at), as_datetime(row.succeeded_at)
    )
