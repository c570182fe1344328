"""`run --auto`: which wave cron should work on now, as a pure decision on the waves' counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from rollout.engine.ledger import CompletedWave
from rollout.engine.tally import WaveStatus
from rollout.engine.waveplan import Wave, WavePlan


@dataclass(frozen=True)
class Decision:
    wave: Wave | None
    reason: str
    halt: bool = False  # the previous wave spent its error budget: an operator must look


def choose(
    plan: WavePlan, waves: list[WaveStatus], completed: Mapping[str, CompletedWave], now: datetime
) -> Decision:
    """The first incomplete wave in file order, if its `not_before` has passed and the wave before it
    completed at least `soak` ago within its error budget; else why nothing runs."""
    by_name = {w.wave: w for w in waves}
    for index, wave in enumerate(plan.waves):
        if by_name[wave.name].complete:
            continue
        if wave.not_before is not None and now < wave.not_before:
            return Decision(None, f"wave {wave.name} does not start before {wave.not_before.isoformat()}")
        if index > 0:
            previous = plan.waves[index - 1]
            done = completed.get(previous.name)
            if done is None:
                return Decision(None, f"wave {wave.name} waits for wave {previous.name} to complete")
            if done.over_budget(plan.settings):
                return Decision(
                    None,
                    f"wave {previous.name} exceeded its error budget ({done.failed} failed of "
                    f"{done.migrated + done.failed}); fix or retry its failed owners before wave {wave.name}",
                    halt=True,
                )
            if wave.soak is not None and now < done.completed_at + wave.soak:
                until = (done.completed_at + wave.soak).isoformat(timespec="seconds")
                return Decision(
                    None, f"wave {wave.name} waits for wave {previous.name} to soak until {until}"
                )
        return Decision(wave, f"wave {wave.name} is the first incomplete wave and may start")
    return Decision(None, "every wave is complete")
