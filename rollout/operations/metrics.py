"""What the metrics file reports, gathered after a run (or a refused one)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from rollout.engine import ledger
from rollout.engine.runner import RunSummary
from rollout.engine.tally import WaveStatus
from rollout.engine.waveplan import WavePlan
from rollout.operations.run import RunResult
from rollout.operations.status import current_waves
from rollout.store.engine import transaction


@dataclass(frozen=True)
class MetricsSnapshot:
    waves: tuple[WaveStatus, ...]
    paused: bool
    last_success: datetime | None
    summary: RunSummary | None
    rate: float | None = None  # owners per second of the newest run's batches


def snapshot(engine: Engine, plan: WavePlan | None, result: RunResult | None) -> MetricsSnapshot:
    """The waves' counts (those the run already made, else counted now), the pause switch, the last
    successful run, and the run's summary if there was one."""
    if result is not None and result.waves is not None:
        waves = result.waves
    else:
        waves = tuple(current_waves(engine, plan)) if plan is not None else ()

    def read(conn: Connection) -> tuple[bool, datetime | None, float | None]:
        return ledger.control(conn).paused, ledger.last_success(conn), ledger.recent_rate(conn)

    paused, last_success, rate = transaction(engine, read)
    return MetricsSnapshot(waves, paused, last_success, result.summary if result is not None else None, rate)
