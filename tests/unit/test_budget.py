"""The error budget: a share of the attempted owners once enough were attempted, and a hard cap."""

from __future__ import annotations

import pytest

from rollout.engine.waveplan import RolloutSettings

SETTINGS = RolloutSettings(error_budget=0.01, min_attempts=100, max_failures=50)


@pytest.mark.parametrize(
    "failed, attempted, over",
    [
        (0, 0, False),
        (5, 10, False),  # 50 %, but fewer than min_attempts attempted
        (1, 100, False),  # exactly 1 %: not more than the budget
        (2, 100, True),
        (2, 199, True),
        (2, 200, False),
        (49, 10_000, False),
        (50, 10_000, True),  # max_failures is inclusive: "always after this many"
        (50, 10, True),
    ],
)
def test_over_budget(failed: int, attempted: int, over: bool) -> None:
    """More than `error_budget` of at least `min_attempts`, or `max_failures` whatever the share."""
    assert SETTINGS.over_budget(failed, attempted) is over


def test_a_zero_budget_halts_at_the_first_failure_once_counted() -> None:
    """Error_budget 0 with min_attempts 0: one failure is over budget; none is not."""
    strict = RolloutSettings(error_budget=0.0, min_attempts=0, max_failures=50)
    assert not strict.over_budget(0, 10)
    assert strict.over_budget(1, 10)


def test_max_failures_zero_halts_at_the_first_failure_not_before() -> None:
    """0 does not mean "always halted": a run without failures is within budget."""
    none_allowed = RolloutSettings(max_failures=0)
    assert not none_allowed.over_budget(0, 10_000)
    assert none_allowed.over_budget(1, 10_000)
