"""The words of the domain: owner states, run modes and outcomes, stop reasons, blocked reasons,
organization permissions. The SQL CHECK constraints of `sql/schema/rollout.sql` list the same values
(a unit test holds them together)."""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType


class OwnerState(StrEnum):
    """What the ledger records for an owner the job has looked at."""

    PENDING = "pending"
    MIGRATED = "migrated"
    FAILED = "failed"
    BLOCKED = "blocked"
    ROLLED_BACK = "rolled-back"
    DEFERRED = "deferred"  # another transaction held its rows; every run tries it again


class OwnerEvent(StrEnum):
    """What can happen to an owner."""

    MIGRATE = "migrate"
    BLOCK = "block"
    FAIL = "fail"
    DEFER = "defer"
    ROLL_BACK = "roll-back"


def _transitions() -> dict[tuple[OwnerState | None, OwnerEvent], OwnerState]:
    table: dict[tuple[OwnerState | None, OwnerEvent], OwnerState] = {}
    for state in (None, *OwnerState):
        table[(state, OwnerEvent.MIGRATE)] = OwnerState.MIGRATED
        # A migrated owner stays migrated: a late project that is blocked or failed is reported
        # with the owner (its reason or error), and the owner is not undone.
        migrated = state is OwnerState.MIGRATED
        table[(state, OwnerEvent.BLOCK)] = OwnerState.MIGRATED if migrated else OwnerState.BLOCKED
        table[(state, OwnerEvent.FAIL)] = OwnerState.MIGRATED if migrated else OwnerState.FAILED
        # A deferral is no verdict: an owner that waits for `--retry-failed` or for `run --owner`
        # keeps waiting for it.
        keeps = state is not None and state in (
            OwnerState.MIGRATED,
            OwnerState.FAILED,
            OwnerState.ROLLED_BACK,
        )
        table[(state, OwnerEvent.DEFER)] = state if keeps and state is not None else OwnerState.DEFERRED
    table[(OwnerState.MIGRATED, OwnerEvent.ROLL_BACK)] = OwnerState.ROLLED_BACK
    return table


TRANSITIONS = MappingProxyType(_transitions())
"""(state before, event) -> state after; the ledger's SQL upserts implement exactly this. A pair
that is absent cannot happen (only a migrated owner is rolled back)."""

# States a wave run does not attempt on its own: rolled-back owners wait for `run --owner`, failed
# ones for `--retry-failed`.
WAITS_FOR_OWNER_RUN = frozenset({OwnerState.ROLLED_BACK})
WAITS_FOR_RETRY = frozenset({OwnerState.FAILED})


def attempted_by_waves(state: OwnerState | None, *, retry_failed: bool) -> bool:
    """Whether a run of a wave (or an approved report) tries an owner in this state."""
    if state in WAITS_FOR_OWNER_RUN:
        return False
    return retry_failed or state not in WAITS_FOR_RETRY


class RunMode(StrEnum):
    WAVE = "wave"
    OWNER = "owner"
    FROM_REPORT = "from-plan"
    AUTO = "auto"
    SWEEP = "sweep"
    ROLLBACK = "rollback"


class RunOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    HALTED = "halted"
    ABANDONED = "abandoned"  # its heartbeat went stale: the process died
    CRASHED = "crashed"
    THROTTLED = "throttled"  # the database stayed unhealthy longer than `max_throttle`; work kept
    NOTHING_TO_DO = "nothing-to-do"  # `run --auto` found no wave that may run now (healthy)
    REFUSED = "refused"  # did not start: paused, the `--auto` lease held, a wave over its budget


class StopReason(StrEnum):
    """Why a run ended before its selection did."""

    SIGNAL = "signal"
    ABORTED = "aborted"
    ERROR_BUDGET = "error budget exceeded"
    TIME_BUDGET = "time budget reached"
    PAUSED = "paused"
    THROTTLED = "throttled too long"
    LEASE_LOST = "lost the run --auto lease"


_STOP_OUTCOME = MappingProxyType(
    {
        StopReason.SIGNAL: RunOutcome.INTERRUPTED,
        StopReason.ABORTED: RunOutcome.INTERRUPTED,
        StopReason.ERROR_BUDGET: RunOutcome.HALTED,
        StopReason.PAUSED: RunOutcome.HALTED,
        StopReason.THROTTLED: RunOutcome.THROTTLED,
        StopReason.LEASE_LOST: RunOutcome.INTERRUPTED,
    }
)


def run_outcome(stopped_by: StopReason | None, failed: int) -> RunOutcome:
    """The outcome of a run that ended normally: the stop decides, else whether owners failed."""
    if stopped_by is not None and stopped_by in _STOP_OUTCOME:
        return _STOP_OUTCOME[stopped_by]
    return RunOutcome.FAILED if failed else RunOutcome.SUCCEEDED


class BlockedReason(StrEnum):
    """Why an owner cannot be migrated automatically, checked in this order."""

    OWNER_DELETED = "owner-deleted"
    SEVERAL_ORGANIZATIONS = "owns-several-organizations"
    BILLING_CONFLICT = "billing-conflict"


PERMISSIONS = ("plans", "billing", "projects:create", "members")
"""Every organization permission; the owner holds all of them, nobody else any."""
