"""Status counting: every wave's owners by state, from the selection's candidates and the
migrated owners, without a database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rollout.engine.selection import Candidate
from rollout.engine.states import OwnerState
from rollout.engine.tally import count_waves
from rollout.engine.waveplan import RolloutSettings, Wave, WavePlan

PLAN = WavePlan(
    Path("waves.toml"),
    RolloutSettings(),
    (
        Wave("canary", owners=(1, 2)),
        Wave("eu", percent=100, regions=("eu-1",)),
        Wave("everyone", percent=100, exclude_owners=frozenset({7})),
    ),
)


def candidate(
    owner_id: int, state: OwnerState | None = None, *, eu: bool = True, late: bool = False
) -> Candidate:
    return Candidate(owner_id, legacy_projects=1, in_regions=int(eu), state=state, migrated_before=late)


def test_each_legacy_owner_counts_under_every_wave_that_selects_it_in_its_state_column() -> None:
    """Remaining, failed, blocked and rolled back, per wave; filters and exclusions apply."""
    legacy = [
        candidate(1),
        candidate(3, OwnerState.FAILED),
        candidate(4, OwnerState.BLOCKED, eu=False),
        candidate(5, OwnerState.ROLLED_BACK),
        candidate(7),
    ]
    waves = {w.wave: w for w in count_waves(PLAN, legacy, [], {})}
    assert (waves["canary"].remaining, waves["canary"].selected) == (1, 1)
    eu = waves["eu"]
    assert (eu.remaining, eu.failed, eu.blocked, eu.rolled_back) == (2, 1, 0, 1)
    everyone = waves["everyone"]
    assert (everyone.remaining, everyone.failed, everyone.blocked, everyone.rolled_back) == (1, 1, 1, 1)
    # Rolled-back owners are not among the selected: they wait for `run --owner`.
    assert everyone.selected == 3 and not everyone.complete


def test_a_migrated_owner_counts_under_its_wave_and_every_wave_admitting_it_by_list_or_percent() -> None:
    """Owner 2 migrated by the canary counts under everyone too; under `eu` (regions cannot apply
    to an owner without legacy projects) it counts because the 100 % admits it."""
    waves = {w.wave: w for w in count_waves(PLAN, [], [(2, "canary"), (7, "everyone")], {})}
    assert waves["canary"].migrated == 1 and waves["canary"].complete
    assert waves["eu"].migrated == 2
    # Excluded from `everyone` yet migrated by it (a `run --wave everyone` before the exclusion).
    assert waves["everyone"].migrated == 2


def test_a_late_project_of_a_migrated_owner_is_remaining_but_not_selected_twice() -> None:
    """The owner is already among the migrated; its late project makes the wave incomplete."""
    waves = {
        w.wave: w
        for w in count_waves(PLAN, [candidate(1, OwnerState.MIGRATED, late=True)], [(1, "canary")], {})
    }
    canary = waves["canary"]
    assert (canary.selected, canary.migrated, canary.remaining, canary.complete) == (1, 1, 1, False)


def test_completion_dates_are_carried() -> None:
    when = datetime(2021, 9, 6, 8, tzinfo=UTC)
    waves = {w.wave: w for w in count_waves(PLAN, [], [], {"canary": when})}
    assert waves["canary"].completed_at == when.isoformat() and waves["eu"].completed_at is None
