"""`run --auto`'s choice of wave, with the clock injected: no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from rollout.engine.ledger import CompletedWave
from rollout.engine.tally import WaveStatus
from rollout.engine.waveplan import RolloutSettings, Wave, WavePlan
from rollout.operations.auto import choose

NOW = datetime(2021, 9, 10, 12, 0, tzinfo=UTC)
PLAN = WavePlan(
    Path("waves.toml"),
    RolloutSettings(min_attempts=10, max_failures=5, error_budget=0.1),
    (
        Wave("canary", owners=(1, 2)),
        Wave("one", percent=1, not_before=datetime(2021, 9, 6, 8, tzinfo=UTC), soak=timedelta(hours=24)),
        Wave("ten", percent=10, soak=timedelta(hours=48)),
    ),
)


def status(name: str, remaining: int) -> WaveStatus:
    return WaveStatus(
        name, selected=10, migrated=10 - remaining, failed=0, blocked=0, rolled_back=0, remaining=remaining
    )


def done(name: str, hours_ago: float, migrated: int = 100, failed: int = 0) -> CompletedWave:
    return CompletedWave(name, NOW - timedelta(hours=hours_ago), migrated, failed, 0)


def test_the_first_incomplete_wave_runs() -> None:
    """The canary runs first; nothing before it to wait for."""
    decision = choose(PLAN, [status("canary", 2), status("one", 5), status("ten", 50)], {}, NOW)
    assert decision.wave is not None and decision.wave.name == "canary"


def test_not_before_holds_a_wave_back() -> None:
    """A wave whose not_before is in the future does not start, and nothing later jumps ahead."""
    early = datetime(2021, 9, 1, tzinfo=UTC)
    decision = choose(
        PLAN,
        [status("canary", 0), status("one", 5), status("ten", 50)],
        {"canary": done("canary", 100)},
        early,
    )
    assert decision.wave is None and "does not start before 2021-09-06" in decision.reason


def test_soak_counts_from_the_previous_wave_completion() -> None:
    """Within the soak after the previous wave completed, nothing runs; after it, the wave runs."""
    waves = [status("canary", 0), status("one", 0), status("ten", 50)]
    decision = choose(PLAN, waves, {"canary": done("canary", 100), "one": done("one", 47)}, NOW)
    assert decision.wave is None and "soak until" in decision.reason
    decision = choose(PLAN, waves, {"canary": done("canary", 100), "one": done("one", 49)}, NOW)
    assert decision.wave is not None and decision.wave.name == "ten"


def test_a_previous_wave_over_its_error_budget_halts() -> None:
    """The previous wave failed more than its budget: no wave runs, and the decision is a halt."""
    waves = [status("canary", 0), status("one", 0), status("ten", 50)]
    decision = choose(PLAN, waves, {"canary": done("canary", 100), "one": done("one", 100, 90, 11)}, NOW)
    assert decision.halt and decision.wave is None and "error budget" in decision.reason
    decision = choose(PLAN, waves, {"canary": done("canary", 100), "one": done("one", 100, 95, 4)}, NOW)
    assert not decision.halt and decision.wave is not None


def test_everything_complete_is_nothing_to_do() -> None:
    """Every wave complete: nothing to do, not a halt."""
    waves = [status("canary", 0), status("one", 0), status("ten", 0)]
    decision = choose(PLAN, waves, {}, NOW)
    assert decision.wave is None and not decision.halt and decision.reason == "every wave is complete"
