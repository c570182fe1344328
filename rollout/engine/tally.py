"""Where each wave stands: its owners counted by state, in one pass over the legacy owners.

`count_waves` is the rule, a pure function of the selection's candidates and the migrated owners;
`wave_counts` feeds it from the database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from rollout.engine.selection import Candidate, candidates, counts_as_migrated, migrated_owners, selects
from rollout.engine.states import OwnerState
from rollout.engine.waveplan import WavePlan, bucket


@dataclass(frozen=True)
class WaveStatus:
    """`migrated` counts the migrated owners the wave migrated or admits by list or percent; the
    other counts are of the legacy owners the wave selects now."""

    wave: str
    selected: int
    migrated: int
    failed: int
    blocked: int
    rolled_back: int
    remaining: int
    deferred: int = 0
    completed_at: str | None = None

    @property
    def complete(self) -> bool:
        """Nothing left but blocked, failed and rolled-back owners (a deferred owner is left)."""
        return self.remaining == 0 and self.deferred == 0

    def seconds_left(self, rate: float | None) -> float | None:
        """Its remaining and deferred owners at `rate` owners per second (the newest run's); None
        without a rate."""
        return round((self.remaining + self.deferred) / rate, 1) if rate else None


_COLUMN_OF_STATE = {
    OwnerState.FAILED: "failed",
    OwnerState.BLOCKED: "blocked",
    OwnerState.ROLLED_BACK: "rolled_back",
    OwnerState.DEFERRED: "deferred",
}


def count_waves(
    plan: WavePlan,
    legacy_owners: Iterable[Candidate],
    migrated: Iterable[tuple[int, str | None]],
    completed_at: Mapping[str, datetime],
) -> list[WaveStatus]:
    """Every wave's counts, in file order.

    A legacy owner counts under each wave that selects it, in the column of its recorded state
    (`remaining` when it has none, or pending, or migrated with a late project). A migrated owner
    counts as migrated under each wave `counts_as_migrated` says; one with a late project is
    already among those, so `selected` does not count it twice.
    """
    salt = plan.settings.salt
    tallies = {w.name: Counter[str]() for w in plan.waves}
    for candidate in legacy_owners:
        for wave in plan.waves:
            if selects(wave, salt, candidate):
                column = (
                    _COLUMN_OF_STATE.get(candidate.state, "remaining") if candidate.state else "remaining"
                )
                tallies[wave.name][column] += 1
                tallies[wave.name]["late"] += candidate.migrated_before
    done = Counter[str]()
    for owner_id, by in migrated:
        owner_bucket = bucket(salt, owner_id)
        for wave in plan.waves:
            if counts_as_migrated(wave, salt, owner_id, by, owner_bucket):
                done[wave.name] += 1
    result = []
    for wave in plan.waves:
        t = tallies[wave.name]
        when = completed_at.get(wave.name)
        result.append(
            WaveStatus(
                wave=wave.name,
                selected=max(
                    done[wave.name] + t["failed"] + t["blocked"] + t["remaining"] + t["deferred"] - t["late"],
                    0,
                ),
                migrated=done[wave.name],
                failed=t["failed"],
                blocked=t["blocked"],
                rolled_back=t["rolled_back"],
                remaining=t["remaining"],
                deferred=t["deferred"],
                completed_at=when.isoformat() if when is not None else None,
            )
        )
    return result


def wave_counts(engine: Engine, plan: WavePlan, completed_at: Mapping[str, datetime]) -> list[WaveStatus]:
    """`count_waves` over the database as it is now: one pass over the legacy owners, one over the
    migrated ones, both streamed."""
    return count_waves(plan, candidates(engine), migrated_owners(engine), completed_at)
