"""`rollout run` in its four modes: a wave, one owner, an approved report, and cron's `--auto`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import Connection, Engine

from rollout import logs
from rollout.clock import utcnow
from rollout.engine import history, ledger
from rollout.engine.claims import ClaimedWork
from rollout.engine.runner import Runner
from rollout.engine.selection import refresh_statistics, sweep_owners
from rollout.engine.states import RunMode, RunOutcome
from rollout.engine.summary import BatchHooks, Limits, Progress, ReportGate, RunSummary
from rollout.engine.tally import WaveStatus
from rollout.engine.waveplan import RolloutSettings, Wave, WavePlan
from rollout.errors import Halted, LockHeld, RolloutError, UsageError
from rollout.operations.approved import ApprovedReport
from rollout.operations.auto import Decision, choose
from rollout.operations.status import current_waves
from rollout.store import queries
from rollout.store.dialect import as_datetime
from rollout.store.engine import transaction
from rollout.store.lock import Lease, LockLost, auto_lock

log = structlog.get_logger("rollout.run")

# Given the number of owners a run will attempt, the display to keep up to date.
ProgressFactory = Callable[[int | None], Progress]


@dataclass(frozen=True)
class RunRequest:
    """What `rollout run` was asked; exactly one of wave, owner_id, from_plan, auto."""

    wave: str | None = None
    owner_id: int | None = None
    from_plan: Path | None = None
    auto: bool = False
    batch_size: int | None = None
    max_owners: int | None = None
    time_budget: timedelta | None = None
    retry_failed: bool = False

    def __post_init__(self) -> None:
        chosen = [self.wave is not None, self.owner_id is not None, self.from_plan is not None, self.auto]
        if sum(chosen) != 1:
            raise UsageError("give exactly one of --wave W, --owner ID, --from-plan REPORT.json or --auto")

    @property
    def mode(self) -> RunMode:
        if self.auto:
            return RunMode.AUTO
        if self.owner_id is not None:
            return RunMode.OWNER
        return RunMode.FROM_REPORT if self.from_plan is not None else RunMode.WAVE

    def parameters(self) -> str:
        """The request as the run history keeps it (JSON)."""
        return json.dumps(
            {
                k: (str(v) if isinstance(v, Path | timedelta) else v)
                for k, v in dataclasses.asdict(self).items()
            },
            sort_keys=True,
        )


@dataclass(frozen=True)
class RunResult:
    """A run's summary, or why there was nothing to run; with the waves' counts after the run, and
    for an approved report the owners it lists that were migrated already."""

    summary: RunSummary | None
    nothing_to_do: str | None = None
    waves: tuple[WaveStatus, ...] | None = None
    already_migrated: tuple[int, ...] = ()


# Runs a wave or `--auto` with several worker processes: (engine, plan, request, run id, progress,
# invocation) -> the result, the workers' summaries added up.
FanOut = Callable[
    [Engine, WavePlan, "RunRequest", str, "ProgressFactory | None", history.Invocation], "RunResult"
]


def run(
    engine: Engine,
    plan: WavePlan | None,
    request: RunRequest,
    *,
    run_id: str,
    progress: ProgressFactory | None = None,
    invocation: history.Invocation = history.UNRECORDED,
    fan_out: FanOut | None = None,
) -> RunResult:
    """Carries out a `rollout run`; a wave's or `--auto`'s through `fan_out` when given (several
    worker processes, `operations.workers`). `plan` may be None for one owner or a report (the defaults of
    the `[rollout]` settings apply); a wave or `--auto` needs it. Every invocation is recorded in
    the run history, one refused (paused, lease held, a wave over budget) or with nothing to do
    included."""
    mode = request.mode
    try:
        result = _run(engine, plan, request, run_id, progress, invocation, fan_out)
    except (Halted, LockHeld) as exc:
        if not isinstance(exc, LockLost):
            _record(engine, run_id, mode, request.wave, RunOutcome.REFUSED, str(exc), invocation)
        raise
    if result.summary is None:
        _record(engine, run_id, mode, None, RunOutcome.NOTHING_TO_DO, result.nothing_to_do, invocation)
    return result


def _record(
    engine: Engine,
    run_id: str,
    mode: RunMode,
    wave: str | None,
    outcome: RunOutcome,
    message: str | None,
    invocation: history.Invocation,
) -> None:
    def record(conn: Connection) -> None:
        history.record_invocation(
            conn, run_id, mode=mode, wave=wave, outcome=outcome, message=message, invocation=invocation
        )

    try:
        transaction(engine, record)
    except RolloutError as exc:  # the refusal itself is what the operator must see
        log.warning("run.unrecorded", outcome=str(outcome), detail=str(exc))


def _run(
    engine: Engine,
    plan: WavePlan | None,
    request: RunRequest,
    run_id: str,
    progress: ProgressFactory | None,
    invocation: history.Invocation,
    fan_out: FanOut | None,
) -> RunResult:
    transaction(engine, ledger.refuse_if_paused)
    if request.owner_id is not None:
        owner_id = request.owner_id
        if transaction(engine, lambda conn: queries.one(conn, "user_exists", user_id=owner_id)) is None:
            raise UsageError(f"unknown owner {owner_id}: no such user")
        runner = _runner(
            engine, _settings(plan, request), run_id, RunMode.OWNER, None, request, invocation=invocation
        )
        return dated(engine, plan, RunResult(runner.run([owner_id])))
    if request.from_plan is not None:
        report = ApprovedReport.read(request.from_plan)
        states = transaction(engine, lambda conn: ledger.owner_states(conn, report.owner_ids()))
        owners = report.to_attempt(states, retry_failed=request.retry_failed)
        runner = _runner(
            engine,
            _settings(plan, request),
            run_id,
            RunMode.FROM_REPORT,
            report.wave,
            request,
            gate=report,
            invocation=invocation,
        )
        summary = runner.run(owners)
        return dated(engine, plan, RunResult(summary, already_migrated=tuple(sorted(report.migrated_before))))
    if plan is None:
        raise UsageError("a wave plan is needed to run a wave")
    if fan_out is not None:
        return fan_out(engine, plan, request, run_id, progress, invocation)
    if request.auto:
        with auto_lock(engine, run_id) as lease:
            return _auto(engine, plan, request, run_id, progress, lease, invocation)
    return run_wave(
        engine,
        plan,
        plan.wave(request.wave or ""),
        request,
        run_id,
        RunMode.WAVE,
        progress,
        invocation=invocation,
    )


def run_wave(
    engine: Engine,
    plan: WavePlan,
    wave: Wave,
    request: RunRequest,
    run_id: str,
    mode: RunMode,
    progress: ProgressFactory | None,
    before: list[WaveStatus] | None = None,
    lease: Lease | None = None,
    invocation: history.Invocation = history.UNRECORDED,
    job_id: str | None = None,
    joined_at: datetime | None = None,
) -> RunResult:
    """Runs a wave (as a worker of the wave's job, or of `job_id`, which the process that started
    the workers joined at `joined_at`), then counts every wave once and dates the wave's completion
    if it is complete. `before`, the counts before the run, sizes the progress display (counted
    only for one)."""
    settings = _settings(plan, request)
    started = utcnow()
    tick = None
    if progress is not None:
        tick = progress(to_attempt(before or current_waves(engine, plan), wave, request))
    work = ClaimedWork(
        engine,
        settings,
        wave,
        run_id=run_id,
        retry_failed=request.retry_failed,
        sleep=lambda seconds: runner.stop.sleep(seconds),
        heartbeat=lambda: runner.refresh(),
        stopping=lambda: runner.should_stop(),
        aborted=lambda: runner.stop.aborted,
        job_id=job_id,
        joined_at=joined_at,
    )

    def sweep() -> Iterable[int]:
        # The worker that closed the wave's job sweeps (the owners migrated before the job began);
        # the others leave it to that one.
        if not work.closed:
            return ()
        return sweep_owners(
            engine, wave, settings.salt, migrated_before=as_datetime(work.started_at) or started
        )

    runner = _runner(
        engine,
        settings,
        run_id,
        mode,
        wave.name,
        request,
        progress=tick,
        sweep=sweep,
        lease=lease,
        hooks=work,
        invocation=invocation,
    )
    try:
        summary = runner.run(work)
    finally:
        work.release()
    return dated(engine, plan, RunResult(summary))


def dated(engine: Engine, plan: WavePlan | None, result: RunResult) -> RunResult:
    """Counts every wave once after a run (of any mode), and dates the completion of each wave
    the run completed: soak counts from the run that completed a wave, whatever its mode."""
    if plan is None:
        return result
    if result.summary is not None and result.summary.counts.attempted:
        refresh_statistics(engine)  # the counts page through the owners this run recorded
    after = current_waves(engine, plan)
    transaction(engine, lambda conn: ledger.record_completions(conn, after))
    return dataclasses.replace(result, waves=tuple(after))


def _auto(
    engine: Engine,
    plan: WavePlan,
    request: RunRequest,
    run_id: str,
    progress: ProgressFactory | None,
    lease: Lease,
    invocation: history.Invocation,
) -> RunResult:
    decision, waves = auto_decision(engine, plan)
    if decision.halt:
        raise Halted(decision.reason)
    if decision.wave is None:
        log.info("auto.nothing_to_do", reason=decision.reason)
        return RunResult(None, decision.reason, tuple(waves))
    logs.bind(run_id, decision.wave.name)
    log.info("auto.chose", reason=decision.reason)
    return run_wave(
        engine, plan, decision.wave, request, run_id, RunMode.AUTO, progress, waves, lease, invocation
    )


def auto_decision(engine: Engine, plan: WavePlan) -> tuple[Decision, list[WaveStatus]]:
    """What `--auto` does now (with the waves' counts it decided on); completions dated first."""
    waves = current_waves(engine, plan)
    transaction(engine, lambda conn: ledger.record_completions(conn, waves))
    completed = transaction(engine, ledger.completed_waves)
    return choose(plan, waves, completed, utcnow()), waves


def to_attempt(waves: list[WaveStatus], wave: Wave, request: RunRequest) -> int | None:
    for status in waves:
        if status.wave == wave.name:
            # Blocked owners are looked at again by every run; they count as attempted.
            todo = status.remaining + status.deferred + status.blocked
            todo += status.failed if request.retry_failed else 0
            return min(todo, request.max_owners + status.blocked) if request.max_owners else todo
    return None


def _settings(plan: WavePlan | None, request: RunRequest) -> RolloutSettings:
    settings = plan.settings if plan is not None else RolloutSettings()
    return settings.pinned(request.batch_size) if request.batch_size is not None else settings


def _runner(
    engine: Engine,
    settings: RolloutSettings,
    run_id: str,
    mode: RunMode,
    wave: str | None,
    request: RunRequest,
    *,
    gate: ReportGate | None = None,
    progress: Progress | None = None,
    sweep: Callable[[], Iterable[int]] | None = None,
    lease: Lease | None = None,
    hooks: BatchHooks | None = None,
    invocation: history.Invocation = history.UNRECORDED,
) -> Runner:
    logs.bind(run_id, wave)
    return Runner(
        engine,
        settings,
        run_id=run_id,
        mode=mode,
        wave=wave,
        limits=Limits(request.max_owners, request.time_budget),
        gate=gate,
        progress=progress,
        sweep=sweep,
        lease=lease,
        hooks=hooks,
        invocation=invocation,
    )


def sweep(
    engine: Engine,
    plan: WavePlan,
    wave: Wave | None,
    *,
    run_id: str,
    batch_size: int | None,
    invocation: history.Invocation = history.UNRECORDED,
) -> RunResult:
    """`rollout sweep`: the owners migrated before (all, or a wave's) for whom the platform wrote
    what the migration's rules handle, migrated again for exactly that."""
    name = wave.name if wave is not None else None
    try:
        transaction(engine, ledger.refuse_if_paused)
    except Halted as exc:
        _record(engine, run_id, RunMode.SWEEP, name, RunOutcome.REFUSED, str(exc), invocation)
        raise
    request = RunRequest(wave=name or "", batch_size=batch_size)
    settings = _settings(plan, request)
    runner = _runner(engine, settings, run_id, RunMode.SWEEP, name, request, invocation=invocation)
    return dated(engine, plan, RunResult(runner.run(sweep_owners(engine, wave, settings.salt))))
