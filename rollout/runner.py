"""The migration loop: batches, failure isolation, budgets, signals, heartbeats, progress."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import islice
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import structlog
from sqlalchemy import Connection, Engine

from rollout import db, ledger
from rollout.approved import ApprovedPlan, Drift
from rollout.clock import utcnow
from rollout.dialect import limit_lock_wait
from rollout.errors import DatabaseUnavailable, Halted
from rollout.migration import Applied, apply_batch, compute_batch
from rollout.plan import Settings
from rollout.selection import chunks
from rollout.status import over_budget

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


class _BudgetSpent(Exception):
    """Raised out of a failing batch as soon as the error budget is spent: a systematic fault must
    not fail a whole batch of owners before the run halts."""


class Aborted(BaseException):
    """A second stop signal: the batch under way is rolled back."""


class StopSignals:
    """First SIGTERM/SIGINT: stop after the current batch. Second: abort it."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread receives signals; a runner in a thread is stopped by its owner
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        # Nothing here may take a lock (a log line would: the signal can arrive while this very
        # thread holds the logger's write lock). The loop reports the stop.
        if self.requested:
            raise Aborted(signal.Signals(signum).name)
        self.requested = True
        self.signal_name = signal.Signals(signum).name


@dataclass
class Limits:
    """When a run stops before its selection is exhausted."""

    max_owners: int | None = None
    time_budget: timedelta | None = None


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    outcome: str  # succeeded | failed | interrupted | halted
    counts: ledger.RunCounts
    stopped_by: str | None = None  # why the run ended before its selection did
    failures: tuple[tuple[int, str], ...] = field(default=())
    drifted: tuple[Drift, ...] = field(default=())
    duration_s: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.outcome == "halted":
            return Halted.exit_code
        return 1 if self.counts.failed or self.counts.drifted else 0


class Runner:
    """Migrates a stream of owner ids in batches, one transaction per batch."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        run_id: str,
        mode: str,
        wave: str | None,
        limits: Limits | None = None,
        progress: Progress | None = None,
        approved: ApprovedPlan | None = None,
    ) -> None:
        self.run_id = run_id
        self.approved = approved
        self.planned_names = approved.planned_names() if approved is not None else None
        self.drifted: list[Drift] = []
        self.engine = engine
        self.settings = settings
        self.mode = mode
        self.wave = wave
        self.limits = limits or Limits()
        self.progress = progress
        self.counts = ledger.RunCounts()
        self.failures: list[tuple[int, str]] = []

    def run(self, owner_ids: Iterable[int]) -> RunSummary:
        """Runs to the end of the selection, a limit, a halt or a stop signal."""
        ledger.refuse_if_paused(self.engine)
        ledger.start_run(self.engine, self.run_id, mode=self.mode, wave=self.wave)
        log.info("run.started", mode=self.mode, batch_size=self.settings.batch_size)
        started = time.monotonic()
        outcome, stopped_by = "succeeded", None
        try:
            with StopSignals() as stop:
                for batch in chunks(self._limited(owner_ids), self.settings.batch_size):
                    self._process(batch)
                    if self.progress is not None:
                        self.progress.update(len(batch))
                    stopped_by = self._why_stop(stop, started)
                    if stopped_by:
                        break
        except Aborted as exc:
            outcome, stopped_by = "interrupted", f"aborted by a second {exc}"
        except _BudgetSpent:
            stopped_by = "error budget exceeded"
        except DatabaseUnavailable:
            self._finish("crashed", "database unreachable")
            raise
        except BaseException as exc:
            self._finish("crashed", f"{type(exc).__name__}: {db.describe(exc)}")
            raise
        if stopped_by in ("paused", "error budget exceeded"):
            outcome = "halted"
        elif stopped_by and stopped_by.startswith(("signal", "aborted")):
            outcome = "interrupted"
        elif self.counts.failed:
            outcome = "failed"
        self._finish(outcome, stopped_by)
        if self.progress is not None:
            self.progress.finish()
        summary = RunSummary(
            self.run_id,
            outcome,
            self.counts,
            stopped_by,
            tuple(self.failures),
            tuple(self.drifted),
            round(time.monotonic() - started, 3),
        )
        log.info(
            "run.finished",
            peak_rss_mb=peak_rss_mb(),
            outcome=outcome,
            stopped_by=stopped_by,
            duration_s=round(time.monotonic() - started, 3),
            **self.counts.as_params(),
        )
        return summary

    def _limited(self, owner_ids: Iterable[int]) -> Iterable[int]:
        if self.limits.max_owners is None:
            return owner_ids
        return islice(owner_ids, self.limits.max_owners)

    def _why_stop(self, stop: StopSignals, started: float) -> str | None:
        if stop.requested:
            log.warning(
                "run.stopping", signal=stop.signal_name, detail="the batch committed; a second signal aborts"
            )
            return "signal"
        if self._over_budget():
            return "error budget exceeded"
        if (
            self.limits.time_budget is not None
            and time.monotonic() - started >= self.limits.time_budget.total_seconds()
        ):
            return "time budget reached"
        if db.transaction(self.engine, ledger.control).paused:
            return "paused"
        return None

    def _over_budget(self) -> bool:
        s, failed, attempted = self.settings, self.counts.failed, self.counts.attempted
        if not over_budget(s, failed, attempted):
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
        started = time.monotonic()
        try:
            applied, counts, drifted = db.transaction(
                self.engine, lambda conn: self._migrate(conn, owner_ids)
            )
        except (DatabaseUnavailable, Aborted, _BudgetSpent):
            raise
        except Exception as exc:
            if len(owner_ids) == 1:
                self._fail(owner_ids[0], exc)
                if self._over_budget():
                    raise _BudgetSpent from None
                return
            log.warning("batch.split", owners=len(owner_ids), error=db.describe(exc))
            middle = len(owner_ids) // 2
            self._process(owner_ids[:middle])
            self._process(owner_ids[middle:])
            return
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
            migrated=applied.migrated,
            blocked=applied.blocked,
            organizations_created=applied.organizations_created,
            projects_moved=applied.projects_moved,
            members_added=applied.members_added,
            billing_accounts_moved=applied.billing_accounts_moved,
            duration_s=round(elapsed, 3),
            rate_owners_per_s=round(len(owner_ids) / elapsed, 1) if elapsed else None,
        )

    def _migrate(
        self, conn: Connection, owner_ids: Sequence[int]
    ) -> tuple[Applied, ledger.RunCounts, list[Drift]]:
        limit_lock_wait(conn)
        plan = compute_batch(conn, owner_ids, lock=True, planned_names=self.planned_names)
        drifted: list[Drift] = []
        if self.approved is not None:
            plan, drifted = self.approved.check(plan, owner_ids)
        applied = apply_batch(conn, plan, run_id=self.run_id, wave=self.wave, now=utcnow())
        # Counted only once the work is in the transaction; a retry recomputes from the same base.
        counts = ledger.RunCounts(**self.counts.as_params())
        counts.batches += 1
        counts.attempted += applied.migrated + applied.blocked
        counts.migrated += applied.migrated
        counts.blocked += applied.blocked
        counts.drifted += len(drifted)
        ledger.heartbeat(conn, self.run_id, counts)
        return applied, counts, drifted

    def _fail(self, owner_id: int, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {db.describe(exc)}"
        counts = ledger.RunCounts(**self.counts.as_params())
        counts.attempted += 1
        counts.failed += 1

        def work(conn: Connection) -> None:
            ledger.record_failure(conn, owner_id=owner_id, wave=self.wave, run_id=self.run_id, error=error)
            ledger.heartbeat(conn, self.run_id, counts)

        db.transaction(self.engine, work)
        self.counts = counts
        self.failures.append((owner_id, error))
        log.error("owner.failed", owner_id=owner_id, error=error)

    def _finish(self, outcome: str, message: str | None) -> None:
        try:
            ledger.finish_run(self.engine, self.run_id, outcome, self.counts, message)
        except DatabaseUnavailable:
            log.error("run.unrecorded", outcome=outcome, detail="could not record the end of the run")
