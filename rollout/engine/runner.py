"""The migration loop: batches, failure isolation, budgets, signals, heartbeats, progress.

It knows no report format: an approved report plugs in through `ReportGate`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import islice
from pathlib import Path
from typing import Protocol

import structlog
from sqlalchemy import Connection, Engine

from rollout.clock import utcnow
from rollout.engine import ledger
from rollout.engine.batches import chunks, isolate
from rollout.engine.changes import BatchChanges, Drift
from rollout.engine.migration import Applied, apply_batch, compute_batch
from rollout.engine.signals import Aborted, StopSignals
from rollout.engine.states import RunMode, RunOutcome, StopReason, run_outcome
from rollout.engine.waveplan import RolloutSettings
from rollout.errors import DatabaseUnavailable, describe
from rollout.store import queries
from rollout.store.engine import transaction

log = structlog.get_logger("rollout.runner")


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (Linux), for the log: memory must stay flat."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


class Progress(Protocol):
    """What the loop tells a progress display (a bar on a terminal)."""

    def update(self, owners: int) -> None: ...

    def finish(self) -> None: ...


class ReportGate(Protocol):
    """An approved report the run must follow: the names it planned, and which owners of a batch
    still match it (the others are skipped as drifted)."""

    def planned_names(self) -> Mapping[int, str]: ...

    def admit(self, changes: BatchChanges, owner_ids: Sequence[int]) -> tuple[BatchChanges, list[Drift]]: ...


class _BudgetSpent(Exception):
    """Raised out of a failing batch as soon as the error budget is spent: a systematic fault must
    not fail a whole batch of owners before the run halts."""


@dataclass
class Limits:
    """When a run stops before its selection is exhausted."""

    max_owners: int | None = None
    time_budget: timedelta | None = None


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    outcome: RunOutcome
    counts: ledger.RunCounts
    stopped_by: StopReason | None = None  # why the run ended before its selection did
    stop_detail: str | None = None  # the signal, for a stop by signal
    failures: tuple[tuple[int, str], ...] = field(default=())
    drifted: tuple[Drift, ...] = field(default=())
    duration_s: float = 0.0

    @property
    def stop_text(self) -> str | None:
        """Why the run stopped early, as the operator reads it."""
        if self.stopped_by is StopReason.ABORTED:
            return f"aborted by a second {self.stop_detail}"
        return str(self.stopped_by) if self.stopped_by else None


class Runner:
    """Migrates a stream of owner ids in batches, one transaction per batch."""

    def __init__(
        self,
        engine: Engine,
        settings: RolloutSettings,
        *,
        run_id: str,
        mode: RunMode,
        wave: str | None,
        limits: Limits | None = None,
        progress: Progress | None = None,
        gate: ReportGate | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.run_id = run_id
        self.mode = mode
        self.wave = wave
        self.limits = limits or Limits()
        self.progress = progress
        self.gate = gate
        self.planned_names = gate.planned_names() if gate is not None else None
        self.counts = ledger.RunCounts()
        self.failures: list[tuple[int, str]] = []
        self.drifted: list[Drift] = []

    def run(self, owner_ids: Iterable[int]) -> RunSummary:
        """Runs to the end of the selection, a limit, a halt or a stop signal."""

        def start(conn: Connection) -> None:
            ledger.refuse_if_paused(conn)
            ledger.start_run(conn, self.run_id, mode=self.mode, wave=self.wave)

        transaction(self.engine, start)
        log.info("run.started", mode=str(self.mode), batch_size=self.settings.batch_size)
        started = time.monotonic()
        stopped_by: StopReason | None = None
        detail: str | None = None
        try:
            with StopSignals() as stop:
                for batch in chunks(self._limited(owner_ids), self.settings.batch_size):
                    self._process(batch)
                    if self.progress is not None:
                        self.progress.update(len(batch))
                    stopped_by = self._why_stop(stop, started)
                    if stopped_by:
                        detail = stop.signal_name or None
                        break
        except Aborted as exc:
            stopped_by, detail = StopReason.ABORTED, str(exc)
        except _BudgetSpent:
            stopped_by = StopReason.ERROR_BUDGET
        except DatabaseUnavailable:
            self._finish(RunOutcome.CRASHED, "database unreachable")
            raise
        except BaseException as exc:
            self._finish(RunOutcome.CRASHED, describe(exc))
            raise
        summary = RunSummary(
            self.run_id,
            run_outcome(stopped_by, self.counts.failed),
            self.counts,
            stopped_by,
            detail,
            tuple(self.failures),
            tuple(self.drifted),
            round(time.monotonic() - started, 3),
        )
        self._finish(summary.outcome, summary.stop_text)
        if self.progress is not None:
            self.progress.finish()
        log.info(
            "run.finished",
            peak_rss_mb=peak_rss_mb(),
            outcome=str(summary.outcome),
            stopped_by=summary.stop_text,
            duration_s=summary.duration_s,
            **dataclasses.asdict(self.counts),
        )
        return summary

    def _limited(self, owner_ids: Iterable[int]) -> Iterable[int]:
        if self.limits.max_owners is None:
            return owner_ids
        return islice(owner_ids, self.limits.max_owners)

    def _why_stop(self, stop: StopSignals, started: float) -> StopReason | None:
        if stop.requested:
            log.warning(
                "run.stopping", signal=stop.signal_name, detail="the batch committed; a second signal aborts"
            )
            return StopReason.SIGNAL
        if self._over_budget():
            return StopReason.ERROR_BUDGET
        budget = self.limits.time_budget
        if budget is not None and time.monotonic() - started >= budget.total_seconds():
            return StopReason.TIME_BUDGET
        if transaction(self.engine, ledger.control).paused:
            return StopReason.PAUSED
        return None

    def _over_budget(self) -> bool:
        s, failed, attempted = self.settings, self.counts.failed, self.counts.attempted
        if not s.over_budget(failed, attempted):
            return False
        log.error(
            "run.error_budget_exceeded",
            failed=failed,
            attempted=attempted,
            error_budget=s.error_budget,
            max_failures=s.max_failures,
        )
        return True

    def _process(self, owner_ids: Sequence[int]) -> None:
        """Migrates a batch; a failing owner is isolated by splitting the batch until it is alone."""
        isolate(
            owner_ids,
            self._commit,
            self._fail,
            passthrough=(DatabaseUnavailable, Aborted, _BudgetSpent),
            split=lambda size, exc: log.warning("batch.split", owners=size, error=describe(exc)),
        )

    def _commit(self, owner_ids: Sequence[int]) -> None:
        started = time.monotonic()
        applied, counts, drifted = transaction(self.engine, lambda conn: self._migrate(conn, owner_ids))
        self.counts = counts
        for drift in drifted:
            log.warning("owner.drifted", owner_id=drift.owner_id, detail=drift.why)
        self.drifted.extend(drifted)
        elapsed = time.monotonic() - started
        # With a progress bar on the terminal the bar tells the same; the event stays for -v.
        emit = log.debug if self.progress is not None else log.info
        emit(
            "batch.committed",
            owners=len(owner_ids),
            **dataclasses.asdict(applied),
            duration_s=round(elapsed, 3),
            rate_owners_per_s=round(len(owner_ids) / elapsed, 1) if elapsed else None,
        )

    def _migrate(
        self, conn: Connection, owner_ids: Sequence[int]
    ) -> tuple[Applied, ledger.RunCounts, list[Drift]]:
        queries.execute(conn, "limit_lock_wait")
        changes = compute_batch(conn, owner_ids, lock=True, planned_names=self.planned_names)
        drifted: list[Drift] = []
        if self.gate is not None:
            changes, drifted = self.gate.admit(changes, owner_ids)
        applied = apply_batch(conn, changes, run_id=self.run_id, wave=self.wave, now=utcnow())
        # Counted only once the work is in the transaction; a retry recomputes from the same base.
        counts = dataclasses.replace(
            self.counts,
            batches=self.counts.batches + 1,
            attempted=self.counts.attempted + applied.migrated + applied.blocked,
            migrated=self.counts.migrated + applied.migrated,
            blocked=self.counts.blocked + applied.blocked,
            drifted=self.counts.drifted + len(drifted),
        )
        ledger.heartbeat(conn, self.run_id, counts)
        return applied, counts, drifted

    def _fail(self, owner_id: int, exc: Exception) -> None:
        error = describe(exc)
        counts = dataclasses.replace(
            self.counts, attempted=self.counts.attempted + 1, failed=self.counts.failed + 1
        )

        def record(conn: Connection) -> None:
            ledger.record_failure(conn, owner_id=owner_id, wave=self.wave, run_id=self.run_id, error=error)
            ledger.heartbeat(conn, self.run_id, counts)

        transaction(self.engine, record)
        self.counts = counts
        self.failures.append((owner_id, error))
        log.error("owner.failed", owner_id=owner_id, error=error)
        if self._over_budget():
            raise _BudgetSpent from None

    def _finish(self, outcome: RunOutcome, message: str | None) -> None:
        try:
            transaction(
                self.engine, lambda conn: ledger.finish_run(conn, self.run_id, outcome, self.counts, message)
            )
        except DatabaseUnavailable:
            log.error("run.unrecorded", outcome=str(outcome), detail="could not record the end of the run")
