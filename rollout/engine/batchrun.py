"""One batch at a time, for the runner: its transaction (lock, compute, apply, checkpoint), the
isolation of a failing owner by splitting, the deferral of owners whose rows are held elsewhere,
the error budget, and the batch's record in the run history with what is read between batches
(the pause switch, the replication lag, the lease and the heartbeat)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, Engine

from rollout.clock import utcnow
from rollout.engine import history, ledger
from rollout.engine.apply import Applied, apply_batch
from rollout.engine.batches import isolate
from rollout.engine.changes import BatchChanges, Drift
from rollout.engine.migration import compute_batch, deferred_name_bases
from rollout.engine.pacing import BatchSizer
from rollout.engine.signals import Aborted, StopSignals
from rollout.engine.summary import BatchHooks, Fellows, Progress, ReportGate
from rollout.engine.waveplan import RolloutSettings
from rollout.errors import DatabaseUnavailable, PermissionDenied, describe
from rollout.store import dialect, queries
from rollout.store.engine import transaction
from rollout.store.lock import Lease, LockLost

log = structlog.get_logger("rollout.runner")


class BudgetSpent(Exception):
    """Raised out of a failing batch as soon as the error budget is spent: a systematic fault must
    not fail a whole batch of owners before the run halts."""


@dataclass
class _BatchStats:
    started_at: Any
    lock_seconds: float = 0.0
    waiting_sessions: int = 0


class BatchExecutor:
    """Migrates batches of owners, one transaction each, and keeps the run's counts, failures,
    drifted and deferred owners."""

    def __init__(
        self,
        engine: Engine,
        settings: RolloutSettings,
        *,
        run_id: str,
        wave: str | None,
        progress: Progress | None,
        gate: ReportGate | None,
        lease: Lease | None,
        hooks: BatchHooks | None = None,
    ) -> None:
        self.engine = engine
        self.hooks = hooks
        self.settings = settings
        self.run_id = run_id
        self.wave = wave
        self.progress = progress
        self.gate = gate
        self.lease = lease
        self.planned_names = gate.planned_names() if gate is not None else None
        self.counts = history.RunCounts()
        self.fellows = Fellows()  # the wave job's other workers, as of the last batch's record
        self.failures: list[tuple[int, str]] = []
        self.drifted: list[Drift] = []
        self.deferred: dict[int, None] = {}  # in the order met; retried in user-id order
        self.held_names: set[str] = set()
        self.sizer = BatchSizer.for_settings(settings)
        self.stop = StopSignals(cancel=self._cancel_active)
        self._active: Any = None  # the driver connection of the batch under way
        self._seq = 0
        # What the runner's pacing reads and adds to between batches.
        self.throttled_before_batch = 0.0
        self.last_waiting = 0
        self.last_batch_seconds = 0.0
        self.between: tuple[bool, object] = (False, None)  # paused, replication lag after a batch

    def process(self, owner_ids: Sequence[int], *, sweeping: bool = False) -> None:
        """Migrates a batch; a failing owner is isolated by splitting the batch until it is alone."""
        started = time.monotonic()
        before = dataclasses.replace(self.counts)
        stats = _BatchStats(utcnow())
        isolate(
            owner_ids,
            lambda ids: self._commit_or_defer(ids, stats, sweeping),
            self._fail_or_defer,
            passthrough=(DatabaseUnavailable, PermissionDenied, LockLost, Aborted, BudgetSpent),
            split=lambda size, exc: log.warning("batch.split", owners=size, error=describe(exc)),
        )
        duration = time.monotonic() - started
        self.last_batch_seconds = duration
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
            throttled_seconds=round(self.throttled_before_batch, 3),
            waiting_sessions=stats.waiting_sessions,
        )
        self.throttled_before_batch = 0.0
        self.last_waiting = stats.waiting_sessions
        self.counts.deferred = len(self.deferred)
        self.between = transaction(
            self.engine, lambda conn: self._record(conn, record, owner_ids), interrupt=self._stopping
        )
        if self.progress is not None and not sweeping:
            self.progress.update(record.migrated + record.blocked + record.failed)

    def _record(
        self, conn: Connection, record: history.BatchRecord, owner_ids: Sequence[int]
    ) -> tuple[bool, object]:
        """Records the batch (and checkpoints its claim); reads, in the same round, the pause switch
        and the replication lag."""
        history.record_batch(conn, record)
        if self.hooks is not None:
            self.hooks.concluded(conn, owner_ids)
        return self.read_between(conn)

    def _commit_or_defer(self, owner_ids: Sequence[int], stats: _BatchStats, sweeping: bool) -> None:
        """A batch larger than the smallest size that ran into its `statement_timeout` is deferred
        whole, not split: a slow statement is slow for each half again. The batch size halves and
        the owners come back in the deferred round, in smaller batches. At the smallest size the
        batch is split like any failing one, so that one owner slow even alone is isolated (and
        deferred) while the others go through. A lock timeout (a name another transaction is
        inserting) is one owner's: the batch is split to isolate it."""
        try:
            self._commit(owner_ids, stats, sweeping)
        except Exception as exc:
            if len(owner_ids) <= self.sizer.smallest or not dialect.is_cancelled(exc):
                raise
            self._defer(owner_ids, exc)

    def _defer(self, owner_ids: Sequence[int], exc: Exception) -> None:
        """Defers owners whose batch ran out of time. Their names' bases are held, as for owners
        deferred by a held row: a later owner with the same base waits, so that names still go in
        user-id order."""
        self.sizer.shrink()
        for owner_id in owner_ids:
            self.deferred[owner_id] = None

        def record(conn: Connection) -> set[str]:
            ledger.record_deferred(conn, list(owner_ids), wave=self.wave, run_id=self.run_id, now=utcnow())
            return deferred_name_bases(conn, owner_ids)

        self.held_names |= transaction(self.engine, record, interrupt=self._stopping)
        if len(owner_ids) == 1:
            log.warning("owner.deferred", owner_id=owner_ids[0], reason=describe(exc))
        else:
            log.warning("batch.deferred", owners=len(owner_ids), reason=describe(exc))

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

    def read_between(self, conn: Connection) -> tuple[bool, object]:
        """Between batches (and while throttled): the lease, the heartbeat, the pause switch, the lag."""
        if self.lease is not None:
            self.lease.renew(conn)
        if self.hooks is not None:
            self.hooks.renew(conn)
            self.fellows = self.hooks.fellows(conn)
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
            self._defer([owner_id], exc)
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
            if self.hooks is not None:
                self.fellows = self.hooks.fellows(conn)  # the budget below is the workers' together

        transaction(self.engine, record)
        self.counts = counts
        self.failures.append((owner_id, error))
        log.error("owner.failed", owner_id=owner_id, error=error)
        if self.over_budget():
            raise BudgetSpent from None

    # -- between batches

    def over_budget(self) -> bool:
        """The error budget, spent by this run and the wave job's other workers together."""
        s, fellows = self.settings, self.fellows
        failed, attempted = self.counts.failed + fellows.failed, self.counts.attempted + fellows.attempted
        if not s.over_budget(failed, attempted):
            return False
        log.error(
            "run.error_budget_exceeded",
            failed=failed,
            attempted=attempted,
            failed_here=self.counts.failed,
            error_budget=s.error_budget,
            max_failures=s.max_failures,
        )
        return True
