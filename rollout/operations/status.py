"""`rollout status`: where the rollout stands. Read-only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from rollout.engine import history, ledger
from rollout.engine.claims import jobs_under_way
from rollout.engine.selection import unknown_owners
from rollout.engine.tally import WaveStatus, wave_counts
from rollout.engine.waveplan import WavePlan
from rollout.store.engine import transaction


@dataclass(frozen=True)
class Status:
    waves: tuple[WaveStatus, ...]
    control: ledger.Control
    runs: tuple[dict[str, Any], ...]
    failed_owners: tuple[dict[str, Any], ...]
    unknown_owners: dict[str, tuple[int, ...]]  # per wave, listed owners that are not users
    rate: float | None = None  # owners per second of the newest run, for the time left
    jobs: tuple[dict[str, Any], ...] = ()  # waves' jobs under way, each with its workers


def current_waves(engine: Engine, plan: WavePlan) -> list[WaveStatus]:
    """Every wave's counts now, with the date each was first found complete."""
    completed = transaction(engine, ledger.completed_waves)
    return wave_counts(engine, plan, {name: c.completed_at for name, c in completed.items()})


def read_status(engine: Engine, plan: WavePlan, runs: int = 10) -> Status:
    """Per wave counts, the pause switch, the last `runs` runs, and the failed owners."""

    def read(
        conn: Connection,
    ) -> tuple[
        ledger.Control,
        list[dict[str, Any]],
        list[dict[str, Any]],
        dict[str, tuple[int, ...]],
        float | None,
        list[dict[str, Any]],
    ]:
        unknown = {w.name: found for w in plan.waves if (found := unknown_owners(conn, w))}
        return (
            ledger.control(conn),
            history.recent_runs(conn, runs),
            ledger.failed_owners(conn),
            unknown,
            history.recent_rate(conn),
            jobs_under_way(conn),
        )

    control, recent, failed, unknown, rate, jobs = transaction(engine, read)
    return Status(
        tuple(current_waves(engine, plan)), control, tuple(recent), tuple(failed), unknown, rate, tuple(jobs)
    )


def run_history(engine: Engine, limit: int) -> list[dict[str, Any]]:
    """`rollout runs`: the last `limit` invocations, newest first."""
    return transaction(engine, lambda conn: history.recent_runs(conn, limit))
