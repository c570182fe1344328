"""The domain's words: the transition table, run outcomes, and the SQL's state literals held
together with the enums (the CHECK constraints are tested on the databases, in integration)."""

from __future__ import annotations

import re

import pytest

from rollout.engine.states import (
    TRANSITIONS,
    OwnerEvent,
    OwnerState,
    RunOutcome,
    StopReason,
    attempted_by_waves,
    run_outcome,
)
from rollout.store.queries import sql_root


def test_every_state_the_sql_names_is_an_owner_state() -> None:
    """No query compares a state with a word the enum does not have (a typo would match nothing)."""
    named: set[str] = set()
    for entry in (sql_root() / "queries").iterdir():
        text = entry.read_text()
        named |= set(re.findall(r"state\s*(?:=|<>)\s*'([^']+)'", text))
        named |= set(re.findall(r"THEN '([a-z-]+)'", text))
        for listed in re.findall(r"state IN \(([^)]*)\)", text):
            named |= set(re.findall(r"'([^']+)'", listed))
    assert named and named <= {s.value for s in OwnerState}


def test_a_migrated_owner_stays_migrated_whatever_happens_to_a_late_project() -> None:
    """Blocked or failed late arrivals do not undo a migration; only a rollback does."""
    for event in (OwnerEvent.MIGRATE, OwnerEvent.BLOCK, OwnerEvent.FAIL):
        assert TRANSITIONS[(OwnerState.MIGRATED, event)] is OwnerState.MIGRATED
    assert TRANSITIONS[(OwnerState.MIGRATED, OwnerEvent.ROLL_BACK)] is OwnerState.ROLLED_BACK


@pytest.mark.parametrize("state", [None, *[s for s in OwnerState if s is not OwnerState.MIGRATED]])
def test_an_owner_not_migrated_takes_the_state_of_what_happened(state: OwnerState | None) -> None:
    """Any other state becomes migrated, blocked or failed; nothing but a migrated owner rolls back."""
    assert TRANSITIONS[(state, OwnerEvent.MIGRATE)] is OwnerState.MIGRATED
    assert TRANSITIONS[(state, OwnerEvent.BLOCK)] is OwnerState.BLOCKED
    assert TRANSITIONS[(state, OwnerEvent.FAIL)] is OwnerState.FAILED
    assert (state, OwnerEvent.ROLL_BACK) not in TRANSITIONS


def test_which_states_a_wave_attempts() -> None:
    """Rolled-back owners wait for `run --owner`, failed ones for `--retry-failed`."""
    assert attempted_by_waves(None, retry_failed=False)
    assert attempted_by_waves(OwnerState.BLOCKED, retry_failed=False)
    assert not attempted_by_waves(OwnerState.FAILED, retry_failed=False)
    assert attempted_by_waves(OwnerState.FAILED, retry_failed=True)
    assert not attempted_by_waves(OwnerState.ROLLED_BACK, retry_failed=True)


@pytest.mark.parametrize(
    "stopped_by, failed, outcome",
    [
        (None, 0, RunOutcome.SUCCEEDED),
        (None, 2, RunOutcome.FAILED),
        (StopReason.TIME_BUDGET, 0, RunOutcome.SUCCEEDED),
        (StopReason.TIME_BUDGET, 1, RunOutcome.FAILED),
        (StopReason.SIGNAL, 3, RunOutcome.INTERRUPTED),
        (StopReason.ABORTED, 0, RunOutcome.INTERRUPTED),
        (StopReason.PAUSED, 0, RunOutcome.HALTED),
        (StopReason.ERROR_BUDGET, 9, RunOutcome.HALTED),
    ],
)
def test_a_runs_outcome_comes_from_its_stop_then_its_failures(
    stopped_by: StopReason | None, failed: int, outcome: RunOutcome
) -> None:
    """Stopping by signal is an interruption and a pause or a spent budget a halt, whatever failed;
    otherwise failures make the run `failed`."""
    assert run_outcome(stopped_by, failed) is outcome
