"""`rollout run` in its four modes: a wave, one owner, an approved report, and cron's `--auto`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import structlog
from sqlalchemy import Engine

from rollout import db, ledger, logs
from rollout.approved import ApprovedPlan
from rollout.auto import choose
from rollout.clock import utcnow
from rollout.errors import Halted, UsageError
from rollout.lock import auto_lock
from rollout.plan import Plan, Settings, Wave
from rollout.runner import Limits, Progress, Runner, RunSummary
from rollout.selection import owner_states, wave_owners
from rollout.settings import Settings as Config
from rollout.status import completed_waves, record_completions, wave_counts

log = structlog.get_logger("rollout.service")


@dataclass(frozen=True)
class RunRequest:
    wave: str | None = None
    owner_id: int | None = None
    from_plan: Path | None = None
    auto: bool = False
    batch_size: int | None = None
    max_owners: int | None = None
    time_budget: timedelta | None = None
    retry_failed: bool = False

    def check(self) -> None:
        chosen = [self.wave is not None, self.owner_id is not None, self.from_plan is not None, self.auto]
        if sum(chosen) != 1:
            raise UsageError("give exactly one of --wave W, --owner ID, --from-plan REPORT.json or --auto")


@dataclass(frozen=True)
class Outcome:
    """A run's summary, or why there was nothing to run."""

    summary: RunSummary | None
    nothing_to_do: str | None = None

    @property
    def exit_code(self) -> int:
        return self.summary.exit_code if self.summary is not None else 0


# Given the number of owners a run will attempt, the display to keep up to date.
ProgressFactory = Callable[[int | None], Progress]


def run(
    engine: Engine,
    config: Config,
    request: RunRequest,
    *,
    run_id: str,
    progress: ProgressFactory | None = None,
) -> Outcome:
    """Carries out a `rollout run`. The plan file is needed for waves; one owner or an approved report
    take only its `[rollout]` settings, and the defaults when there is no plan file."""
    request.check()
    ledger.refuse_if_paused(engine)
    if request.owner_id is not None:
        settings = _settings(config.plan_if_present(), request)
        if not db.transaction(engine, lambda conn: db.user_exists(conn, request.owner_id or 0)):
            raise UsageError(f"unknown owner {request.owner_id}: no such user")
        return Outcome(_runner(engine, settings, run_id, "owner", None, request).run([request.owner_id]))
    if request.from_plan is not None:
        approved = ApprovedPlan(request.from_plan)
        settings = _settings(config.plan_if_present(), request)
        owners = approved.to_attempt(
            owner_states(engine, approved.owner_ids()), retry_failed=request.retry_failed
        )
        runner = _runner(engine, settings, run_id, "from-plan", approved.wave, request, approved=approved)
        return Outcome(runner.run(owners))
    loaded = config.plan()
    if request.auto:
        with auto_lock(engine):
            return _auto(engine, loaded, request, run_id, progress)
    return Outcome(
        run_wave(engine, loaded, loaded.wave(request.wave or ""), request, run_id, "wave", progress)
    )


def run_wave(
    engine: Engine,
    plan: Plan,
    wave: Wave,
    request: RunRequest,
    run_id: str,
    mode: str,
    progress: ProgressFactory | None,
) -> RunSummary:
    """Runs a wave, then dates its completion if it is complete now."""
    settings = _settings(plan, request)
    tick = progress(_selected_count(engine, plan, wave, request)) if progress is not None else None
    runner = _runner(engine, settings, run_id, mode, wave.name, request, progress=tick)
    summary = runner.run(wave_owners(engine, wave, settings.salt, retry_failed=request.retry_failed))
    record_completions(engine, [w for w in wave_counts(engine, plan) if w.wave == wave.name])
    return summary


def _auto(
    engine: Engine, plan: Plan, request: RunRequest, run_id: str, progress: ProgressFactory | None
) -> Outcome:
    waves = wave_counts(engine, plan)
    record_completions(engine, waves)
    decision = choose(plan, waves, {c.wave: c for c in completed_waves(engine)}, utcnow())
    if decision.halt:
        raise Halted(decision.reason)
    if decision.wave is None:
        log.info("auto.nothing_to_do", reason=decision.reason)
        return Outcome(None, decision.reason)
    logs.bind(run_id, decision.wave.name)
    log.info("auto.chose", reason=decision.reason)
    return Outcome(run_wave(engine, plan, decision.wave, request, run_id, "auto", progress))


def _selected_count(engine: Engine, plan: Plan, wave: Wave, request: RunRequest) -> int | None:
    for status in wave_counts(engine, plan):
        if status.wave == wave.name:
            # Blocked owners are looked at again by every run; they count as attempted.
            todo = status.remaining + status.blocked + (status.failed if request.retry_failed else 0)
            return min(todo, request.max_owners) if request.max_owners else todo
    return None


def _settings(plan: Plan | None, request: RunRequest) -> Settings:
    settings = plan.settings if plan is not None else Settings()
    if request.batch_size is not None:
        settings = dataclasses.replace(settings, batch_size=request.batch_size)
    return settings


def _runner(
    engine: Engine,
    settings: Settings,
    run_id: str,
    mode: str,
    wave: str | None,
    request: RunRequest,
    *,
    approved: ApprovedPlan | None = None,
    progress: Progress | None = None,
) -> Runner:
    logs.bind(run_id, wave)
    return Runner(
        engine,
        settings,
        run_id=run_id,
        mode=mode,
        wave=wave,
        limits=Limits(request.max_owners, request.time_budget),
        approved=approved,
        progress=progress,
    )
