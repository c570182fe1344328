"""What the metrics report, gathered after every invocation of `run` or `sweep` (a refused one too)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from rollout.engine import history, ledger
from rollout.engine.claims import latest_job_workers
from rollout.engine.summary import RunSummary
from rollout.engine.tally import WaveStatus
from rollout.engine.waveplan import WavePlan
from rollout.operations.run import RunResult
from rollout.operations.status import current_waves
from rollout.store.engine import transaction


@dataclass(frozen=True)
class NextWave:
    """The first incomplete wave in file order (the one `run --auto` works on or waits for)."""

    wave: str
    not_before: datetime | None
    soak_until: datetime | None


@dataclass(frozen=True)
class MetricsSnapshot:
    waves: tuple[WaveStatus, ...]
    paused: bool
    last: history.LastInvocations
    summary: RunSummary | None
    rate: float | None = None  # owners per second of the newest run's batches
    next_wave: NextWave | None = None
    # The workers of the newest wave job, whichever host ran them: (run id, outcome -> owners).
    workers: tuple[tuple[str, dict[str, int]], ...] = ()


def next_wave(
    plan: WavePlan, waves: tuple[WaveStatus, ...], completed: dict[str, ledger.CompletedWave]
) -> NextWave | None:
    """The first incomplete wave, with when it may start: its `not_before`, and the end of its soak
    after the wave before it completed."""
    status = {w.wave: w for w in waves}
    for index, wave in enumerate(plan.waves):
        if wave.name in status and status[wave.name].complete:
            continue
        soak_until = None
        if index > 0 and wave.soak is not None:
            before = completed.get(plan.waves[index - 1].name)
            soak_until = before.completed_at + wave.soak if before is not None else None
        return NextWave(wave.name, wave.not_before, soak_until)
    return None


def snapshot(engine: Engine, plan: WavePlan | None, result: RunResult | None) -> MetricsSnapshot:
    """The waves' counts (those the run already made, else counted now), the pause switch, the last
    invocations, the run's summary if there was one, and the next wave's dates."""
    if result is not None and result.waves is not None:
        waves = result.waves
    else:
        waves = tuple(current_waves(engine, plan)) if plan is not None else ()

    def read(
        conn: Connection,
    ) -> tuple[
        bool,
        history.LastInvocations,
        float | None,
        dict[str, ledger.CompletedWave],
        list[tuple[str, dict[str, int]]],
    ]:
        return (
            ledger.control(conn).paused,
            history.last_invocations(conn),
            history.recent_rate(conn),
            ledger.completed_waves(conn),
            latest_job_workers(conn),
        )

    paused, last, rate, completed, workers = transaction(engine, read)
    return MetricsSnapshot(
        waves,
        paused,
        last,
        result.summary if result is not None else None,
        rate,
        next_wave(plan, waves, completed) if plan is not None else None,
        tuple(workers),
    )
