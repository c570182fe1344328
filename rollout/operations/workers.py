"""`rollout run --workers N`: N worker processes on one wave (docs/workers.md).

Each worker is a process of its own, with its own connection and its own run in the history, and
works on the wave's job like any other process running the wave (another host's included): it
takes claims, migrates them, and takes over the claims of a worker that died. This process starts
the workers, shows their progress added up, passes a stop signal on to them, and adds their
summaries up. The workers run in sessions of their own, so that a terminal's Ctrl-C reaches them
once, through this process, not twice (the second signal would abort their batch).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection, wait
from types import FrameType
from typing import Any

import structlog
from sqlalchemy import Engine

from rollout import logs
from rollout.clock import utcnow
from rollout.engine import history
from rollout.engine.claims import job_definition, join_job
from rollout.engine.history import RunCounts
from rollout.engine.signals import keep_early_signals
from rollout.engine.states import RunMode, RunOutcome, StopReason, run_outcome
from rollout.engine.summary import RunSummary
from rollout.engine.waveplan import Wave, WavePlan
from rollout.errors import DatabaseUnavailable, Halted, LockHeld, RolloutError, UsageError
from rollout.operations import run as running
from rollout.operations.status import current_waves
from rollout.store import dialect
from rollout.store.engine import make_engine
from rollout.store.lock import Lease, auto_lock

log = structlog.get_logger("rollout.workers")

# The order in which a worker's reason to stop early becomes the run's: the gravest first.
_STOP_ORDER = (
    StopReason.ERROR_BUDGET,
    StopReason.PAUSED,
    StopReason.LEASE_LOST,
    StopReason.THROTTLED,
    StopReason.ABORTED,
    StopReason.SIGNAL,
    StopReason.TIME_BUDGET,
)


@dataclass(frozen=True)
class _Assignment:
    """What a worker process is given (pickled to it)."""

    index: int
    database_url: str
    plan: WavePlan
    wave: str
    request: running.RunRequest
    run_id: str
    mode: RunMode
    lease_holder: str | None
    job_id: str
    joined_at: datetime
    log_settings: tuple[str, int]
    invocation: history.Invocation


def check_workers(engine: Engine, request: running.RunRequest, workers: int) -> tuple[int, str | None]:
    """How many workers to start, and why fewer than asked: more than one only for a wave or
    `--auto` on PostgreSQL; SQLite (one writer at a time) runs one."""
    if workers == 1:
        return 1, None
    if request.owner_id is not None or request.from_plan is not None:
        raise UsageError("--workers applies to --wave and --auto; one owner or a report runs in one process")
    if engine.dialect.name == dialect.SQLITE:
        return 1, f"SQLite runs one worker (one writer at a time): --workers {workers} runs as 1"
    return workers, None


def fan_out(workers: int) -> running.FanOut:
    """What `run` calls to run a wave (or `--auto`'s choice) with `workers` processes."""

    def run(
        engine: Engine,
        plan: WavePlan,
        request: running.RunRequest,
        run_id: str,
        progress: running.ProgressFactory | None,
        invocation: history.Invocation,
    ) -> running.RunResult:
        return run_workers(
            engine, plan, request, workers=workers, run_id=run_id, progress=progress, invocation=invocation
        )

    return run


def run_workers(
    engine: Engine,
    plan: WavePlan,
    request: running.RunRequest,
    *,
    workers: int,
    run_id: str,
    progress: running.ProgressFactory | None,
    invocation: history.Invocation,
) -> running.RunResult:
    """Runs the wave (or `--auto`'s choice) with `workers` processes; the summaries added up."""
    if not request.auto:
        wave = plan.wave(request.wave or "")
        return _fan_out(
            engine, plan, wave, request, RunMode.WAVE, None, workers, run_id, progress, invocation
        )
    with auto_lock(engine, run_id) as lease:
        decision, waves = running.auto_decision(engine, plan)
        if decision.halt:
            raise Halted(decision.reason)
        if decision.wave is None:
            log.info("auto.nothing_to_do", reason=decision.reason)
            return running.RunResult(None, decision.reason, tuple(waves))
        logs.bind(run_id, decision.wave.name)
        log.info("auto.chose", reason=decision.reason, workers=workers)
        return _fan_out(
            engine, plan, decision.wave, request, RunMode.AUTO, lease, workers, run_id, progress, invocation
        )


def _fan_out(
    engine: Engine,
    plan: WavePlan,
    wave: Wave,
    request: running.RunRequest,
    mode: RunMode,
    lease: Lease | None,
    workers: int,
    run_id: str,
    progress: running.ProgressFactory | None,
    invocation: history.Invocation,
) -> running.RunResult:
    logs.bind(run_id, wave.name)
    if request.max_owners is not None:
        workers = min(workers, request.max_owners)
    settings = plan.settings.pinned(request.batch_size) if request.batch_size else plan.settings
    definition = job_definition(wave, settings.salt, request.retry_failed)
    joined_at = utcnow()
    job_id, started, _ = join_job(engine, wave.name, definition, run_id)
    log.info("job.started" if started else "job.joined", job_id=job_id)
    context = multiprocessing.get_context("spawn")
    # One pipe per worker, not a shared queue: a queue's writers share a lock, and a worker killed
    # while holding it would leave the others unable to report, or to exit.
    channels: dict[Connection, int] = {}
    ends: list[Connection] = []
    shares = _shares(request.max_owners, workers)
    processes = []
    for index in range(workers):
        assignment = _Assignment(
            index=index + 1,
            database_url=engine.url.render_as_string(hide_password=False),
            plan=plan,
            wave=wave.name,
            request=dataclasses.replace(request, wave=wave.name, auto=False, max_owners=shares[index]),
            run_id=f"{run_id}-w{index + 1}",
            mode=mode,
            lease_holder=lease.holder if lease is not None else None,
            job_id=job_id,
            joined_at=joined_at,
            log_settings=logs.configured(),
            invocation=invocation,
        )
        reader, writer = context.Pipe(duplex=False)
        channels[reader] = index + 1
        ends.append(writer)
        processes.append(context.Process(target=_worker, args=(assignment, writer), name=assignment.run_id))
    bar = progress(running.to_attempt(current_waves(engine, plan), wave, request)) if progress else None
    log.info("workers.starting", workers=workers)
    forwarded: list[int] = []
    sent = [0] * len(processes)  # how many of the signals each worker was given

    def forward(signum: int, frame: FrameType | None) -> None:
        forwarded.append(signum)
        _pass_on(processes, forwarded, sent)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    results: dict[int, RunSummary] = {}
    errors: dict[int, BaseException] = {}
    try:
        for process in processes:
            process.start()
        for writer in ends:
            writer.close()  # the workers hold them now: a worker's pipe ends when the worker does
        _pass_on(processes, forwarded, sent)  # a signal that came while they were starting
        while channels:
            # Every dead worker is reaped at once, so that the others see its process gone (not a
            # zombie) and take its claim over without waiting for the lease.
            for process in processes:
                process.is_alive()
            ready = wait(list(channels), timeout=0.2)
            for reader in [c for c in channels if c in ready]:
                try:
                    kind, index, payload = reader.recv()
                except (EOFError, OSError):
                    del channels[reader]  # the worker ended (or was killed mid-message)
                    continue
                if kind == "progress" and bar is not None:
                    bar.update(payload)
                elif kind == "result":
                    results[index] = payload
                elif kind == "error":
                    errors[index] = payload
        for process in processes:
            process.join()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if bar is not None:
            bar.finish()
    for number, process in enumerate(processes, start=1):
        if number not in results and number not in errors:
            log.error(
                "worker.died",
                worker=process.name,
                exit_code=process.exitcode,
                detail="its claims are taken over once their lease runs out, by a worker or a later run",
            )
    for index, error in errors.items():
        log.error("worker.failed", worker=f"{run_id}-w{index}", error=str(error))
    if errors and (not results or any(isinstance(e, _ITS_OWN_EXIT) for e in errors.values())):
        # The database out of reach, a missing privilege, a refusal: the error's own exit code.
        raise next((e for e in errors.values() if isinstance(e, _ITS_OWN_EXIT)), next(iter(errors.values())))
    summary = _added_up(run_id, [results[i] for i in sorted(results)], died=workers - len(results))
    return running.dated(engine, plan, running.RunResult(summary))


def _pass_on(processes: list[Any], forwarded: list[int], sent: list[int]) -> None:
    """Gives every started worker the signals it has not been given yet, once each."""
    for index, process in enumerate(processes):
        while process.pid is not None and sent[index] < len(forwarded):
            if process.is_alive():
                os.kill(process.pid, forwarded[sent[index]])
            sent[index] += 1


def _shares(max_owners: int | None, workers: int) -> list[int | None]:
    """`--max-owners` split between the workers (the first ones take the remainder)."""
    if max_owners is None:
        return [None] * workers
    return [max_owners // workers + (1 if i < max_owners % workers else 0) for i in range(workers)]


_ITS_OWN_EXIT = (DatabaseUnavailable, UsageError, LockHeld, Halted)


def _added_up(run_id: str, summaries: list[RunSummary], *, died: int) -> RunSummary:
    counts = RunCounts()
    for summary in summaries:
        for f in dataclasses.fields(RunCounts):
            setattr(counts, f.name, getattr(counts, f.name) + getattr(summary.counts, f.name))
    stops = {s.stopped_by: s for s in summaries if s.stopped_by is not None}
    stopped = next((stops[r] for r in _STOP_ORDER if r in stops), None)
    throttles: Counter[str] = Counter()
    for summary in summaries:
        throttles.update(dict(summary.throttles))
    outcome = run_outcome(stopped.stopped_by if stopped else None, counts.failed)
    if died and outcome in (RunOutcome.SUCCEEDED, RunOutcome.INTERRUPTED):
        outcome = RunOutcome.FAILED  # a worker died: exit 1, whatever the others did
    return RunSummary(
        run_id,
        outcome,
        counts,
        stopped.stopped_by if stopped else None,
        stopped.stop_detail if stopped else None,
        tuple(f for s in summaries for f in s.failures),
        tuple(d for s in summaries for d in s.drifted),
        tuple(sorted(o for s in summaries for o in s.deferred)),
        max((s.duration_s for s in summaries), default=0.0),
        tuple(sorted(throttles.items())),
        tuple((s.run_id, s.counts) for s in summaries),
    )


class _PipeProgress:
    def __init__(self, events: Connection, index: int) -> None:
        self.events = events
        self.index = index

    def update(self, owners: int) -> None:
        self.events.send(("progress", self.index, owners))

    def finish(self) -> None:
        pass


def _worker(assignment: _Assignment, events: Connection) -> None:
    """A worker process: one run of the wave, its summary (or its error) sent back."""
    os.setsid()
    keep_early_signals()
    logs.configure(*assignment.log_settings)
    logs.bind(assignment.run_id, assignment.wave)
    try:
        engine = make_engine(assignment.database_url)
        lease = Lease(engine, assignment.lease_holder) if assignment.lease_holder is not None else None
        result = running.run_wave(
            engine,
            assignment.plan,
            assignment.plan.wave(assignment.wave),
            assignment.request,
            assignment.run_id,
            assignment.mode,
            lambda total: _PipeProgress(events, assignment.index),
            lease=lease,
            invocation=assignment.invocation,
            job_id=assignment.job_id,
            joined_at=assignment.joined_at,
        )
        events.send(("result", assignment.index, result.summary))
    except RolloutError as exc:
        events.send(("error", assignment.index, exc))
    except BaseException as exc:  # the parent reports it; the traceback goes to the log
        log.exception("worker.crashed")
        events.send(("error", assignment.index, RolloutError(f"worker {assignment.index} crashed: {exc}")))
