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
from collections import Counter
from collections.abc import Callable, Iterable

import structlog
from sqlalchemy import Connection, Engine

from rollout.clock import utcnow
from rollout.engine import history, ledger
from rollout.engine.batchrun import BatchExecutor, BudgetSpent
from rollout.engine.pacing import CONTENTION_PAUSE, HealthProbe, pause_for_rate
from rollout.engine.signals import Aborted
from rollout.engine.states import RunMode, RunOutcome, StopReason, run_outcome
from rollout.engine.summary import (
    BatchHooks,
    Limits,
    OwnerSource,
    Progress,
    ReportGate,
    RunSummary,
    Stream,
    peak_rss_mb,
)
from rollout.engine.waveplan import RolloutSettings
from rollout.errors import DatabaseUnavailable, RolloutError, describe
from rollout.store.engine import transaction
from rollout.store.lock import Lease, LockLost

log = structlog.get_logger("rollout.runner")


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
        hooks: BatchHooks | None = None,
        invocation: history.Invocation = history.UNRECORDED,
    ) -> None:
        self.engine = engine
        self.invocation = invocation
        self.settings = settings
        self.run_id = run_id
        self.mode = mode
        self.wave = wave
        self.limits = limits or Limits()
        self.progress = progress
        self.sweep = sweep
        self.batches = BatchExecutor(
            engine, settings, run_id=run_id, wave=wave, progress=progress, gate=gate, lease=lease, hooks=hooks
        )
        self.stop = self.batches.stop
        self.probe = HealthProbe(settings, lambda work: transaction(engine, work, interrupt=self._stopping))
        self.cut = False  # `--max-owners` left owners of the selection untried
        self.throttles: Counter[str] = Counter()  # pauses by signal
        self._started = 0.0

    # -- the run

    def run(self, owner_ids: Iterable[int] | OwnerSource) -> RunSummary:
        """Runs to the end of its phases, a limit, a halt or a stop signal."""

        def start(conn: Connection) -> None:
            ledger.refuse_if_paused(conn)
            history.start_run(conn, self.run_id, mode=self.mode, wave=self.wave, invocation=self.invocation)

        transaction(self.engine, start)
        log.info("run.started", mode=str(self.mode), batch_size=self.batches.sizer.size)
        self._started = time.monotonic()
        stopped_by: StopReason | None = None
        detail: str | None = None
        try:
            with self.stop:
                source = owner_ids if isinstance(owner_ids, OwnerSource) else Stream(owner_ids)
                try:
                    stopped_by = self._phases(source)
                except BaseException:
                    source.settle(failing=True)
                    raise
                # Still under the run's signal handling: a signal stops what the source does in
                # the background, and its error is the run's.
                source.settle(failing=False)
                if stopped_by in (StopReason.SIGNAL, StopReason.ABORTED):
                    detail = self.stop.signal_name
        except Aborted:
            stopped_by, detail = StopReason.ABORTED, self.stop.signal_name or "a stop"
        except BudgetSpent:
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
        self.batches.counts.deferred = len(self.batches.deferred)
        summary = RunSummary(
            self.run_id,
            run_outcome(stopped_by, self.batches.counts.failed),
            self.batches.counts,
            stopped_by,
            detail,
            tuple(self.batches.failures),
            tuple(self.batches.drifted),
            tuple(sorted(self.batches.deferred)),
            round(time.monotonic() - self._started, 3),
            tuple(sorted(self.throttles.items())),
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
            **dataclasses.asdict(self.batches.counts),
        )
        return summary

    def _phases(self, source: OwnerSource) -> StopReason | None:
        stopped = self._phase(source, sweeping=self.mode is RunMode.SWEEP, limited=True)
        if stopped is None and self.batches.deferred:
            stopped = self._retry_deferred()
        if stopped is None and self.sweep is not None and not self.cut:
            log.debug("run.sweeping")
            stopped = self._phase(Stream(self.sweep()), sweeping=True)
        return stopped

    def _allowance(self) -> int | None:
        """How many more owners `--max-owners` lets the run take: owners it migrated, failed,
        deferred or skipped as drifted count, blocked ones (only looked at again) do not."""
        if self.limits.max_owners is None:
            return None
        c = self.batches.counts
        return self.limits.max_owners - (c.attempted - c.blocked + c.drifted + len(self.batches.deferred))

    def _phase(
        self, source: OwnerSource, *, sweeping: bool = False, limited: bool = False
    ) -> StopReason | None:
        while True:
            size = self.batches.sizer.size
            left = self._allowance() if limited else None
            if left is not None and left <= 0:
                # `--max-owners` reached: the run is partial if the selection had more (its sweep waits).
                self.cut = source.more()
                return None
            batch = source.take(size if left is None else min(size, left))
            if not batch:
                # The source may have ended because the run must stop (a wave job's worker waiting
                # for claims stops waiting then): say why.
                return self._why_stop()
            self.batches.process(batch, sweeping=sweeping)
            stopped = self._why_stop() or self._pace()
            if stopped is None and self.stop.requested:
                stopped = StopReason.SIGNAL  # it came during a pause
            if stopped:
                return stopped

    def _retry_deferred(self) -> StopReason | None:
        """Owners deferred by the phase before, in user-id order, in rounds with growing pauses."""
        deadline = time.monotonic() + self.settings.retry_deferred_for.total_seconds()
        pause = 0.5
        while self.batches.deferred and time.monotonic() < deadline:
            log.info("run.retrying_deferred", owners=len(self.batches.deferred), pause_s=pause)
            if self.stop.sleep(min(pause, max(0.0, deadline - time.monotonic()))):
                return StopReason.SIGNAL
            owners = sorted(self.batches.deferred)
            self.batches.deferred.clear()
            self.batches.held_names.clear()
            stopped = self._phase(Stream(owners))
            if stopped:
                return stopped
            pause = min(pause * 2, 5.0)
        if self.batches.deferred:
            log.warning(
                "run.deferred_left", owners=len(self.batches.deferred), detail="later runs try them again"
            )
        return None

    def _why_stop(self) -> StopReason | None:
        if self.stop.requested:
            log.warning(
                "run.stopping",
                signal=self.stop.signal_name,
                detail="the batch committed; a second signal aborts",
            )
            return StopReason.SIGNAL
        if self.batches.over_budget():
            return StopReason.ERROR_BUDGET
        budget = self.limits.time_budget
        if budget is not None and time.monotonic() - self._started >= budget.total_seconds():
            return StopReason.TIME_BUDGET
        if self.batches.between[0]:
            return StopReason.PAUSED
        return None

    def _pace(self) -> StopReason | None:
        """Waits while the database's health is red or the run is ahead of its rate; a run that
        spent more than `max_throttle` so ends `throttled`."""
        # The rate is the wave job's workers' together: theirs since the first of them started.
        fellows = self.batches.fellows
        concluded = self.batches.counts.attempted + fellows.attempted
        elapsed = time.monotonic() - self._started
        if fellows.started_at is not None:
            elapsed = max(elapsed, (utcnow() - fellows.started_at).total_seconds())
        rate_pause = pause_for_rate(concluded, elapsed, self.settings.max_owners_per_second)
        if rate_pause > 0:
            self._throttle("max_owners_per_second", rate_pause, "max_owners_per_second")
        contention = self.probe.contention(self.batches.last_waiting)
        if contention.red:
            self._throttle(
                contention.reason or "contention",
                max(0.1, CONTENTION_PAUSE * self.batches.last_batch_seconds),
                contention.signal,
            )
        pause = 1.0
        while True:
            health = self.probe.check(self.batches.between[1])
            if not health.red:
                return None
            if self.batches.counts.throttled_seconds >= self.settings.max_throttle.total_seconds():
                log.error(
                    "run.throttled_too_long", throttled_s=round(self.batches.counts.throttled_seconds, 1)
                )
                return StopReason.THROTTLED
            if self._throttle(health.reason or "unhealthy", pause, health.signal):
                return None
            pause = min(pause * 2, 10.0)
            self.refresh()

    def _throttle(self, reason: str, seconds: float, signal: str) -> bool:
        """Sleeps `seconds` for `reason` (counted under `signal`); True when a stop cut it short."""
        log.warning("run.throttled", reason=reason, signal=signal, pause_s=round(seconds, 2))
        self.throttles[signal] += 1
        started = time.monotonic()
        cut = self._sleep_renewing(seconds)
        waited = time.monotonic() - started
        self.batches.counts.throttled_seconds += waited
        self.batches.throttled_before_batch += waited
        return cut

    def _sleep_renewing(self, seconds: float) -> bool:
        """Sleeps `seconds`, renewing the leases (the `--auto` lease, a wave job's claim) and the
        heartbeat at least every third of `claim_ttl`; True when a stop cut it short."""
        deadline = time.monotonic() + seconds
        every = max(0.5, self.settings.claim_ttl.total_seconds() / 3)
        while (left := deadline - time.monotonic()) > 0:
            if self.stop.sleep(min(left, every)):
                return True
            if deadline - time.monotonic() > 0:
                self.refresh()
        return False

    def refresh(self) -> None:
        """Between batches: the leases, the heartbeat, the pause switch and the lag, read again."""
        self.batches.between = transaction(self.engine, self.batches.read_between, interrupt=self._stopping)

    def should_stop(self) -> bool:
        """Whether the run must stop now (a signal, the pause switch, `--time-budget`); for a wave
        job's worker waiting for claims. Says nothing: the loop says why when it stops."""
        budget = self.limits.time_budget
        over = budget is not None and time.monotonic() - self._started >= budget.total_seconds()
        return self.stop.requested or bool(self.batches.between[0]) or over

    def _stopping(self) -> bool:
        return self.stop.requested

    def _finish(self, outcome: RunOutcome, message: str | None) -> None:
        try:
            transaction(
                self.engine,
                lambda conn: history.finish_run(conn, self.run_id, outcome, self.batches.counts, message),
            )
        except RolloutError as exc:
            log.error(
                "run.unrecorded", outcome=str(outcome), detail=f"could not record the end of the run: {exc}"
            )
