"""Running the migration in-process, the way `rollout run` does."""

from __future__ import annotations

from sqlalchemy import Engine

from rollout.ledger import new_run_id
from rollout.plan import Settings, Wave
from rollout.runner import Runner, RunSummary
from rollout.selection import wave_owners

EVERYONE = Wave(name="everyone", percent=100)


def run_wave(
    engine: Engine,
    wave: Wave = EVERYONE,
    *,
    batch_size: int = 500,
    retry_failed: bool = False,
    settings: Settings | None = None,
) -> RunSummary:
    settings = settings or Settings(batch_size=batch_size)
    runner = Runner(engine, settings, run_id=new_run_id(), mode="wave", wave=wave.name)
    return runner.run(wave_owners(engine, wave, settings.salt, retry_failed=retry_failed))


def run_owner(engine: Engine, owner_id: int) -> RunSummary:
    runner = Runner(engine, Settings(), run_id=new_run_id(), mode="owner", wave=None)
    return runner.run([owner_id])
