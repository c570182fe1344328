"""The migration loop: batches sized toward a target duration, failure isolation, deferral of owners
whose rows are held elsewhere, throttling, budgets, signals, heartbeats, the batch history.

A run goes through up to three phases: the owners it was given (a wave's selection, one owner, an
approved report's owners); the owners deferred meanwhile, tried again in rounds for up to
`retry_deferred_for`; and, for a wave, the sweep of owners migrated before, for what the platform
wrote since. It knows no report format: an approved report plugs in through `ReportGate`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine

from rollout.clock import utcnow
from rollout.engine import history, ledger
from rollout.engine.batches import isolate
from rollout.engine.changes import BatchChanges, Drift
from rollout.engine.migration import Applied, apply_batch, compute_batch
from rollout.engine.pacing import CONTENTION_PAUSE, BatchSizer, HealthProbe, pause_for_rate
from rollout.engine.signals import Aborted, StopSignals
from rollout.engine.states import RunMode, RunOutcome, StopReason, run_outcome
from rollout.engine.summary import Limits, Progress, ReportGate, RunSummary, peak_rss_mb
from rollout.engine.waveplan import RolloutSettings
from rollout.errors import DatabaseUnavailable, PermissionDenied, RolloutError, describe
from rollout.store import dialect, queries
from rollout.store.engine import transaction
from rollout.store.lock import Lease, LockLost

log = structlog.get_logger("rollout.runner")
T = TypeVar("T")


class _BudgetSpent(Exception):
    """Raised out of a failing batch as soon as the error budget is spent: a systematic fault must
    not fail a whole batch of owners before the run halts."""


@dataclass
class _BatchStats:
    started_at: Any
    lock_seconds: float = 0.0
    waiting_sessions: int = 0


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
        sweep: Callable[[], Iterable[int]] | None = None,
        lease: Lease | None = None,
        invocation: history.Invocation = history.UNRECORDED,
    ) -> None:
        self.engine = engine
        self.lease = lease
        self.invocation = invocation
        self.settings = settings
        self.run_id = run_id
        self.mode = mode
        self.wave = wave
        self.limits = limits or Limits()
        self.progress = progress
        self.gate = gate
        self.sweep = sweep
        self.planned_names = gate.planned_names() if gate is not None else None
        self.counts = history.RunCounts()
        self.failures: list[tuple[int, str]] = []
        self.drifted: list[Drift] = []
        self.deferred: dict[int, None] = {}  # in the order met; retried in user-id order
        self.held_names: set[str] = set()
        self.sizer = BatchSizer.for_settings(settings)
        self.probe = HealthProbe(settings, lambda work: transaction(engine, work, interrupt=self._stopping))
        self.stop = StopSignals(cancel=self._cancel_active)
        self._active: Any = None  # the driver connection of the batch under way
        self.cut = False  # `--max-owners` left owners of the selection untried
        self._seq = 0
        self._started = 0.0
        self._throttled_before_batch = 0.0
        self._last_waiting = 0
        self._last_batch_seconds = 0.0
        self._between: tuple[bool, object] = (False, None)  # paused, replication lag after a batch

    # -- the run

    def run(self, owner_ids: Iterable[int]) -> RunSummary:
        """Runs to the end of its phases, a limit, a halt or a stop signal."""

        def start(conn: Connection) -> None:
            ledger.refuse_if_paused(conn)
            history.start_run(conn, self.run_id, mode=self.mode, wave=self.wave, invocation=self.invocation)

        transaction(self.engine, start)
        log.info("run.started", mode=str(self.mode), batch_size=self.sizer.size)
        self._started = time.monotonic()
        stopped_by: StopReason | None = None
        detail: str | None = None
        try:
            with self.stop:
                stopped_by = self._phases(owner_ids)
                if stopped_by in (StopReason.SIGNAL, StopReason.ABORTED):
                    detail = self.stop.signal_name
        except Aborted:
            stopped_by, detail = StopReason.ABORTED, self.stop.signal_name or "a stop"
        except _BudgetSpent:
            stopped_by = StopReason.ERROR_BUDGET
        except LockLost as exc:
            log.error("run.lease_lost", detail=str(exc))
            stopped_by = StopReason.LEASE_LOST
        except DatabaseUnavailable:
            self._finish(RunOutcome.CRASHED, "database unreachable")
            raise
        except BaseException as exc:
            self._finish(RunOutcome.CRASHED, describe(exc))
            raise
        self.counts.deferred = len(self.deferred)
        summary = RunSummary(
            self.run_id,
            run_outcome(stopped_by, self.counts.failed),
            self.counts,
            stopped_by,
            detail,
            tuple(self.failures),
            tuple(self.drifted),
            tuple(sorted(self.deferred)),
            round(time.monotonic() - self._started, 3),
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

    def _phases(self, owner_ids: Iterable[int]) -> StopReason | None:
        stopped = self._phase(owner_ids, sweeping=self.mode is RunMode.SWEEP, limited=True)
        if stopped is None and self.deferred:
            stopped = self._retry_deferred()
        if stopped is None and self.sweep is not None and not self.cut:
            log.debug("run.sweeping")
            stopped = self._phase(self.sweep(), sweeping=True)
        return stopped

    def _allowance(self) -> int | None:
        """How many more owners `--max-owners` lets the run take: owners it migrated, failed,
        deferred or skipped as drifted count, blocked ones (only looked at again) do not."""
        if self.limits.max_owners is None:
            return None
        c = self.counts
        return self.limits.max_owners - (c.attempted - c.blocked + c.drifted + len(self.deferred))

    def _phase(
        self, owner_ids: Iterable[int], *, sweeping: bool = False, limited: bool = False
    ) -> StopReason | None:
        stream = iter(owner_ids)
        while True:
            size = self.sizer.size
            left = self._allowance() if limited else None
            if left is not None and left <= 0:
                # `--max-owners` reached: the run is partial if the selection had more (its sweep waits).
                self.cut = next(stream, None) is not None
                return None
            batch = list(islice(stream, size if left is None else min(size, left)))
            if not batch:
                return None
            self._process(batch, sweeping=sweeping)
            stopped = self._why_stop() or self._pace()
            if stopped is None and self.stop.requested:
                stopped = StopReason.SIGNAL  # it came during a pause
            if stopped:
                return stopped

    def _retry_deferred(self) -> StopReason | None:
        """Owners deferred by the phase before, in user-id order, in rounds with growing pauses."""
        deadline = time.monotonic() + self.settings.retry_deferred_for.total_seconds()
        pause = 0.5
        while self.deferred and time.monotonic() < deadline:
            log.info("run.retrying_deferred", owners=len(self.deferred), pause_s=pause)
            if self.stop.sleep(min(pause, max(0.0, deadline - time.monotonic()))):
                return StopReason.SIGNAL
            owners = sorted(self.deferred)
            self.deferred.clear()
            self.held_names.clear()
            stopped = self._phase(owners)
            if stopped:
                return stopped
            pause = min(pause * 2, 5.0)
        if self.deferred:
            log.warning("run.deferred_left", owners=len(self.deferred), detail="later runs try them again")
        return None

    # -- one batch

    def _process(self, owner_ids: Sequence[int], *, sweeping: bool = False) -> None:
        """Migrates a batch; a failing owner is isolated by splitting the batch until it is alone."""
        started = time.monotonic()
        before = dataclasses.replace(self.counts)
        stats = _BatchStats(utcnow())
        isolate(
            owner_ids,
            lambda ids: self._commit(ids, stats, sweeping),
            self._fail_or_defer,
            passthrough=(DatabaseUnavailable, PermissionDenied, LockLost, Aborted, _BudgetSpent),
            split=lambda size, exc: log.warning("batch.split", owners=size, error=describe(exc)),
        )
        duration = time.monotonic() - started
        self._last_batch_seconds = duration
        self.sizer.observe(len(owner_ids), duration)
        self._seq += 1
        record = history.BatchRecord(
            run_id=self.run_id,
            seq=self._seq,
            started_at=stats.started_at,
            size=len(owner_ids),
            duration_seconds=round(duration, 4),
            lock_seconds=round(stats.lock_seconds, 4),
            migrated=self.counts.migrated - before.migrated,
            deferred=len([o for o in owner_ids if o in self.deferred]),
            failed=self.counts.failed - before.failed,
            blocked=self.counts.blocked - before.blocked,
            throttled_seconds=round(self._throttled_before_batch, 3),
            waiting_sessions=stats.waiting_sessions,
        )
        self._throttled_before_batch = 0.0
        self._last_waiting = stats.waiting_sessions
        self.counts.deferred = len(self.deferred)
        self._between = transaction(
            self.engine, lambda conn: self._record(conn, record), interrupt=self._stopping
        )
        if self.progress is not None and not sweeping:
            self.progress.update(record.migrated + record.blocked + record.failed)

    def _record(self, conn: Connection, record: history.BatchRecord) -> tuple[bool, object]:
        """Records the batch; reads, in the same round, the pause switch and the replication lag."""
        history.record_batch(conn, record)
        return self._read_between(conn)

    def _commit(self, owner_ids: Sequence[int], stats: _BatchStats, sweeping: bool) -> None:
        started = time.monotonic()
        try:
            applied, counts, drifted, changes, waiting = transaction(
                self.engine, lambda conn: self._migrate(conn, owner_ids, sweeping), interrupt=self._stopping
            )
        except Exception as exc:
            if self.stop.requested and dialect.is_cancelled(exc):
                raise Aborted from exc
            raise
        self.counts = counts
        for drift in drifted:
            log.warning("owner.drifted", owner_id=drift.owner_id, detail=drift.why)
        self.drifted.extend(drifted)
        for owner_id in changes.deferred:
            self.deferred[owner_id] = None
        self.held_names |= changes.deferred_names
        stats.lock_seconds += changes.lock_seconds
        stats.waiting_sessions = max(stats.waiting_sessions, waiting)
        elapsed = time.monotonic() - started
        # With a progress bar on the terminal the bar tells the same; the event stays for -v.
        emit = log.debug if self.progress is not None else log.info
        emit(
            "batch.committed",
            owners=len(owner_ids),
            **dataclasses.asdict(applied),
            lock_s=round(changes.lock_seconds, 4),
            waiting_sessions=waiting,
            duration_s=round(elapsed, 3),
            rate_owners_per_s=round(len(owner_ids) / elapsed, 1) if elapsed else None,
        )

    def _migrate(
        self, conn: Connection, owner_ids: Sequence[int], sweeping: bool
    ) -> tuple[Applied, history.RunCounts, list[Drift], BatchChanges, int]:
        self._active = conn.connection.driver_connection
        try:
            if self.lease is not None:
                self.lease.renew(conn)
            queries.execute(
                conn,
                "limit_waits",
                lock_timeout=f"{int(self.settings.lock_timeout.total_seconds() * 1000)}ms",
                statement_timeout=f"{int(self.settings.statement_timeout.total_seconds() * 1000)}ms",
            )
            changes = compute_batch(
                conn,
                owner_ids,
                lock=True,
                planned_names=self.planned_names,
                held_names=self.held_names,
                forbidden_names=self.settings.reserved_names,
            )
            drifted: list[Drift] = []
            if self.gate is not None:
                changes, drifted = self.gate.admit(changes, owner_ids)
            applied = apply_batch(conn, changes, run_id=self.run_id, wave=self.wave, now=utcnow())
            waiting = int(queries.scalar(conn, "sessions_waiting_on_us") or 0)
            # Counted only once the work is in the transaction; a retry recomputes from the same base.
            # A swept owner was migrated before: counted apart, so that `migrated` counts owners.
            counts = dataclasses.replace(
                self.counts,
                batches=self.counts.batches + 1,
                attempted=self.counts.attempted + (0 if sweeping else applied.migrated + applied.blocked),
                migrated=self.counts.migrated + (0 if sweeping else applied.migrated),
                swept=self.counts.swept + (applied.migrated if sweeping else 0),
                blocked=self.counts.blocked + (0 if sweeping else applied.blocked),
                drifted=self.counts.drifted + len(drifted),
            )
            history.heartbeat(conn, self.run_id, counts)
            if self.stop.aborted:
                raise Aborted
            return applied, counts, drifted, changes, waiting
        finally:
            self._active = None

    def _read_between(self, conn: Connection) -> tuple[bool, object]:
        """Between batches (and while throttled): the lease, the heartbeat, the pause switch, the lag."""
        if self.lease is not None:
            self.lease.renew(conn)
        history.heartbeat(conn, self.run_id, self.counts)
        return ledger.control(conn).paused, queries.scalar(conn, "replication_lag")

    def _cancel_active(self) -> None:
        active = self._active
        if active is not None:
            dialect.cancel(active)

    def _stopping(self) -> bool:
        return self.stop.requested

    def _fail_or_defer(self, owner_id: int, exc: Exception) -> None:
        """An owner alone in a batch that failed: deferred when it only waited too long (a lock
        or a statement timeout: never a failure, never the error budget), else failed."""
        if dialect.is_lock_timeout(exc) or dialect.is_cancelled(exc):
            self.sizer.shrink()
            self.deferred[owner_id] = None

            def record(conn: Connection) -> None:
                ledger.record_deferred(conn, [owner_id], wave=self.wave, run_id=self.run_id, now=utcnow())

            transaction(self.engine, record, interrupt=self._stopping)
            log.warning("owner.deferred", owner_id=owner_id, reason=describe(exc))
            return
        self._fail(owner_id, exc)

    def _fail(self, owner_id: int, exc: Exception) -> None:
        error = describe(exc)
        counts = dataclasses.replace(
            self.counts, attempted=self.counts.attempted + 1, failed=self.counts.failed + 1
        )

        def record(conn: Connection) -> None:
            ledger.record_failure(conn, owner_id=owner_id, wave=self.wave, run_id=self.run_id, error=error)
            history.heartbeat(conn, self.run_id, counts)

        transaction(self.engine, record)
        self.counts = counts
        self.failures.append((owner_id, error))
        log.error("owner.failed", owner_id=owner_id, error=error)
        if self._over_budget():
            raise _BudgetSpent from None

    # -- between batches

    def _why_stop(self) -> StopReason | None:
        if self.stop.requested:
            log.warning(
                "run.stopping",
                signal=self.stop.signal_name,
                detail="the batch committed; a second signal aborts",
            )
            return StopReason.SIGNAL
        if self._over_budget():
            return StopReason.ERROR_BUDGET
        budget = self.limits.time_budget
        if budget is not None and time.monotonic() - self._started >= budget.total_seconds():
            return StopReason.TIME_BUDGET
        if self._between[0]:
            return StopReason.PAUSED
        return None

    def _pace(self) -> StopReason | None:
        """Waits while the database's health is red or the run is ahead of its rate; a run that
        spent more than `max_throttle` so ends `throttled`."""
        concluded = self.counts.attempted
        rate_pause = pause_for_rate(
            concluded, time.monotonic() - self._started, self.settings.max_owners_per_second
        )
        if rate_pause > 0:
            self._throttle("max_owners_per_second", rate_pause)
        contention = self.probe.contention(self._last_waiting)
        if contention.red:
            self._throttle(
                contention.reason or "contention", max(0.1, CONTENTION_PAUSE * self._last_batch_seconds)
            )
        pause = 1.0
        while True:
            health = self.probe.check(self._between[1])
            if not health.red:
                return None
            if self.counts.throttled_seconds >= self.settings.max_throttle.total_seconds():
                log.error("run.throttled_too_long", throttled_s=round(self.counts.throttled_seconds, 1))
                return StopReason.THROTTLED
            if self._throttle(health.reason or "unhealthy", pause):
                return None
            pause = min(pause * 2, 10.0)
            self._between = transaction(self.engine, self._read_between, interrupt=self._stopping)

    def _throttle(self, reason: str, seconds: float) -> bool:
        """Sleeps `seconds` for `reason`; True when a stop cut it short."""
        log.warning("run.throttled", reason=reason, pause_s=round(seconds, 2))
        started = time.monotonic()
        cut = self.stop.sleep(seconds)
        waited = time.monotonic() - started
        self.counts.throttled_seconds += waited
        self._throttled_before_batch += waited
        return cut

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

    def _finish(self, outcome: RunOutcome, message: str | None) -> None:
        try:
            transaction(
                self.engine, lambda conn: history.finish_run(conn, self.run_id, outcome, self.counts, message)
            )
        except RolloutError as exc:
            log.error(
                "run.unrecorded", outcome=str(outcome), detail=f"could not record the end of the run: {exc}"
            )
