"""Exit codes: one table for errors, one rule for a run's outcome."""

from __future__ import annotations

from rollout.engine.states import RunOutcome, StopReason
from rollout.engine.summary import RunSummary
from rollout.errors import DatabaseUnavailable, Halted, LockHeld, RolloutError, UsageError

OK = 0
FAILED = 1  # finished, but owners failed or drifted; or verify found violations
USAGE = 2
LOCK_HELD = 3
HALTED = 4
INTERRUPTED = 130  # Ctrl-C outside a run
UNAVAILABLE = 75  # EX_TEMPFAIL

# The first class an error is an instance of decides its exit code.
EXIT_CODES: tuple[tuple[type[RolloutError], int], ...] = (
    (UsageError, USAGE),
    (LockHeld, LOCK_HELD),
    (Halted, HALTED),
    (DatabaseUnavailable, UNAVAILABLE),
    (RolloutError, FAILED),
)


def for_error(exc: RolloutError) -> int:
    return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))


def for_run(summary: RunSummary) -> int:
    """A halted run is 4; one that lost the `--auto` lease 3; one where owners failed or drifted,
    or a worker died, is 1; else 0 (an interruption included)."""
    if summary.outcome is RunOutcome.HALTED:
        return HALTED
    if summary.stopped_by is StopReason.LEASE_LOST:
        return LOCK_HELD
    failed = summary.outcome is RunOutcome.FAILED
    return FAILED if failed or summary.counts.failed or summary.counts.drifted else OK
