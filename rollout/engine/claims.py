"""Several workers and hosts on one wave (docs/workers.md).

A wave's run is a **job**, shared by every process that runs the wave while it is unfinished:
`--workers N` on one host, or `rollout run --wave W` started separately on several hosts. The job's
selection is **planned** into **claims** of owners in user-id order; planning reserves the name of
every organization the claim's owners will get, checked against the organizations and every name
reserved before, so names follow user-id order whatever the number of workers. One process plans
at a time, for every wave (a lease), so waves run at once get their names wave by wave, in the
order their planning ran.

On PostgreSQL the process that plans does it on a thread of its own (`_Planner`): its worker takes
the first claim as soon as it is committed and migrates it while the next are planned, so planning
is not time the worker spends alone; SQLite, with one writer, plans before the first claim.

A worker takes the first claim nobody holds (`FOR UPDATE SKIP LOCKED`), migrates its owners in
batches, and renews its lease on it with every batch; a batch's record checkpoints the claim. A
claim whose lease runs out (its worker was killed) is taken over by another worker, which resumes
after the checkpoint. The worker that finishes the last claim closes the job; it alone sweeps.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, TypeGuard

import structlog
from sqlalchemy import Connection, Engine, Row

from rollout.clock import utcnow
from rollout.engine import ledger, naming
from rollout.engine.selection import candidates, selects
from rollout.engine.states import OwnerState, attempted_by_waves
from rollout.engine.summary import Fellows
from rollout.engine.waveplan import RolloutSettings, Wave
from rollout.errors import UsageError, describe
from rollout.store import dialect, queries
from rollout.store.dialect import as_datetime
from rollout.store.engine import transaction

log = structlog.get_logger("rollout.claims")

_LEASE_LOST = -1  # planning's lease was taken over: another process plans
CLAIM_BATCHES = 4  # a claim holds this many batches of owners (of the plan's `batch_size`)
PLANNER = "planner"  # the lease of planning: one process at a time, for every wave


@dataclass
class _Claim:
    seq: int
    todo: list[int]  # owners not handed to a batch yet
    pending: set[int] = field(default_factory=set)  # handed to a batch, not concluded yet
    done_through: int | None = None
    last: tuple[tuple[int, ...], int] | None = None  # the batch checkpointed last, and its owners
    finished: bool = False


class _Planner:
    """A job's planning on a thread of its own (`ClaimedWork._plan_leading`), so that its worker
    migrates the claims already planned meanwhile. `progressed` is set with every claim committed
    and when planning ends; `error` is what planning raised, for the worker's thread to raise."""

    def __init__(self, plan: Callable[[], None]) -> None:
        self.progressed = threading.Event()
        self.error: BaseException | None = None
        # The thread logs with the run's context (run id, wave), as the worker does.
        context = contextvars.copy_context()
        self.thread = threading.Thread(
            target=context.run, args=(self._run, plan), name="rollout-planner", daemon=True
        )

    def _run(self, plan: Callable[[], None]) -> None:
        try:
            plan()
        except BaseException as exc:  # handed to the worker's thread, which raises it
            self.error = exc
        finally:
            self.progressed.set()


class ClaimedWork:
    """One worker's share of a wave's job: owners claim by claim, as the runner asks for batches.

    The runner calls `take(n)` for the next batch and, in each batch's record, `concluded` (the
    checkpoint) and `renew` (the lease), through the executor's hooks.
    """

    def __init__(
        self,
        engine: Engine,
        settings: RolloutSettings,
        wave: Wave,
        *,
        run_id: str,
        retry_failed: bool,
        sleep: Callable[[float], bool],
        heartbeat: Callable[[], object],
        stopping: Callable[[], bool] = lambda: False,
        aborted: Callable[[], bool] = lambda: False,
        job_id: str | None = None,
        joined_at: datetime | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.wave = wave
        self.run_id = run_id
        self.retry_failed = retry_failed
        self._sleep = sleep  # True when a stop signal cut the sleep short
        self._stopping = stopping  # a signal, the pause switch, the time budget: stop waiting
        self._aborted = aborted  # a second signal, or the end of the grace period: stop at once
        self._heartbeat = heartbeat
        self.job_id: str | None = None
        self.started_at: Any = None  # when the job started: its sweep covers owners migrated before
        # When this worker joined the job (its `--workers` parent, when given one): its fellows are
        # the job's other runs at work since, a sibling that halted before it started included.
        self.joined_at = joined_at
        self._given_job = job_id  # joined by the process that started this worker (`--workers N`)
        self.closed = False  # this worker closed the job: it sweeps
        self._current: _Claim | None = None
        self._stopped = False
        self._planner: _Planner | None = None
        self._cut = False  # the run fails: planning under way stops after its claim

    @property
    def claim_size(self) -> int:
        # Of the first batch's size: a small wave still makes a claim per worker. A grown batch is
        # cut at a claim's end only while it grows; at `max_batch_size` (four times `batch_size` in the
        # shipped plan) a claim is a whole number of batches.
        return max(1, self.settings.batch_size * CLAIM_BATCHES)

    def definition(self) -> str:
        return job_definition(self.wave, self.settings.salt, self.retry_failed)

    # -- the runner's source of owners

    def take(self, n: int) -> list[int]:
        """The next batch: up to `n` owners of the claim under way, or of the next one claimed
        (planned first when none is left to claim); empty when the job has nothing left for us."""
        while not self._stopped:
            claim = self._current
            if claim is not None and claim.todo:
                batch = claim.todo[:n]
                del claim.todo[:n]
                claim.pending.update(batch)
                return batch
            if claim is not None and claim.pending:
                # A batch is concluded before the next is taken; its record failing ends the run.
                return []
            self._current = self._next_claim()
            if self._current is None:
                return []
        return []

    def more(self) -> bool:
        """Whether the job has owners left that this worker could take (for `--max-owners`)."""
        if self._current is not None and self._current.todo:
            return True
        job_id = self._job()
        row = transaction(
            self.engine, lambda conn: queries.one(conn, "job_progress", job_id=job_id, now=utcnow())
        )
        return row is not None and bool(row.unfinished)

    # -- the executor's hooks

    def concluded(self, conn: Connection, owner_ids: Sequence[int]) -> None:
        """Checkpoints the claim with a batch just recorded; finishes it when nothing is left.
        Safe to call again for the same batch (the record's transaction may be retried)."""
        claim = self._current
        if claim is None:
            return
        key = tuple(owner_ids)
        if claim.last is None or claim.last[0] != key:
            done = claim.pending.intersection(owner_ids)
            if not done:
                return
            claim.pending -= done
            claim.done_through = max(
                done | ({claim.done_through} if claim.done_through is not None else set())
            )
            claim.last = (key, len(done))
        now = utcnow()
        finished = now if not claim.todo and not claim.pending else None
        if not self._checkpoint(
            conn, claim, concluded=claim.last[1], expires=now + self.settings.claim_ttl, finished_at=finished
        ):
            self._lost(claim)
            return
        claim.finished = finished is not None
        if claim.finished:
            log.debug("claim.finished", seq=claim.seq)
            self._close(conn)

    def renew(self, conn: Connection) -> None:
        """The lease on the claim under way, renewed with every batch and every pause."""
        if self._current is None or self._current.finished or self.job_id is None:
            return
        renewed = queries.execute(
            conn,
            "renew_claims",
            job_id=self.job_id,
            holder=self.run_id,
            expires=utcnow() + self.settings.claim_ttl,
        )
        if not renewed:
            self._lost(self._current)

    def fellows(self, conn: Connection) -> Fellows:
        """What the job's other workers at work since this one joined did (the safety limits'
        share of theirs); nothing before this worker has a job."""
        if self.job_id is None or self.joined_at is None:
            return Fellows()
        row = queries.one(conn, "job_fellows", job_id=self.job_id, run_id=self.run_id, since=self.joined_at)
        if row is None:
            return Fellows()
        return Fellows(int(row.attempted or 0), int(row.failed or 0), as_datetime(row.started_at))

    def settle(self, *, failing: bool) -> None:
        """Waits for planning under way on this process's thread; the runner calls this while its
        signal handling still holds, so a signal stops the planner after its claim. A run that stops
        for its own reasons (a limit, the pause switch, its time budget) lets the planner finish the
        plan: only a signal cuts a plan short (another wave may then plan in between). A failing
        run cuts it short as well, and its own error is the one raised (the planner's is logged).
        At an abort (a second signal, the end of the grace period) it stops waiting: the planner's
        transaction ends with the process, and the next run plans the rest."""
        planner = self._planner
        if planner is None:
            return
        if failing:
            self._cut = True
        while planner.thread.is_alive():
            if self._aborted():
                log.warning("planner.abandoned", job_id=self.job_id, detail="the run is aborted")
                return
            planner.thread.join(0.2)
        self._planner = None
        if planner.error is None:
            return
        if failing:
            log.error("planner.failed", job_id=self.job_id, error=describe(planner.error))
            return
        raise planner.error

    def release(self) -> None:
        """Hands the claims back, with their checkpoints, when the worker stops early."""
        self._stopped = True
        if self.job_id is None:
            return
        job_id = self.job_id
        transaction(
            self.engine,
            lambda conn: queries.execute(conn, "release_claims", job_id=job_id, holder=self.run_id),
        )

    # -- claims

    def _lost(self, claim: _Claim) -> None:
        log.warning(
            "claim.lost",
            seq=claim.seq,
            detail="another worker took it over: its lease ran out; left to that worker",
        )
        claim.todo.clear()
        claim.pending.clear()
        if self._current is claim:
            self._current = None

    def _next_claim(self) -> _Claim | None:
        job_id = self._job()
        pause = 0.2
        while not self._sleep(0):
            claim = transaction(self.engine, self._claim)
            if claim is not None:
                if claim.todo:
                    return claim
                continue  # every owner of it concluded already (a takeover after the last batch)
            job, progress = transaction(self.engine, lambda conn: self._state(conn, job_id))
            if job is None or job.id != job_id:
                return None  # closed (or superseded) meanwhile
            if job.planned_at is None:
                if self._plan_ahead():
                    if self._planner is not None:
                        # Planning on this process's thread: waiting for its next claim, as for
                        # another process's, ends at a stop, and keeps this run's heartbeat.
                        if self._stopping():
                            return None
                        self._heartbeat()
                    continue
            elif not progress.unfinished:
                transaction(self.engine, self._close)
                return None
            # Someone else is planning, or holds the last claims: wait for them (not past a pause or
            # the time budget: a run always gets to its first batch), take over a dead one's.
            if self._stopping():
                return None
            transaction(self.engine, self._reap)
            if self._sleep(pause):
                return None
            self._heartbeat()
            pause = min(pause * 2, max(0.2, self.settings.claim_ttl.total_seconds() / 4), 2.0)
        return None

    def _reap(self, conn: Connection) -> None:
        """Cuts short the lease of claims whose holder is known dead: a process of this host that is
        gone (SIGKILL, OOM), or a run that ended. They are taken over now, not when the lease runs
        out; a holder on another host is waited for until then."""
        now = utcnow()
        for row in queries.rows(conn, "claim_holders", job_id=self.job_id, now=now):
            if row.holder != self.run_id and (row.finished_at is not None or _gone(row.host, row.pid)):
                log.info("claim.holder_gone", holder=row.holder, host=row.host, pid=row.pid)
                queries.execute(
                    conn,
                    "expire_claims_of",
                    job_id=self.job_id,
                    holder=row.holder,
                    expired=now - timedelta(seconds=1),
                )

    def _state(self, conn: Connection, job_id: str) -> tuple[Any, Any]:
        return (
            queries.one(conn, "live_job", wave=self.wave.name),
            queries.one(conn, "job_progress", job_id=job_id, now=utcnow()),
        )

    def _claim(self, conn: Connection) -> _Claim | None:
        """The first claim free or expired, taken; its owners still to attempt, after its checkpoint
        (and any of them deferred before it)."""
        now = utcnow()
        row = queries.one(conn, "claimable", job_id=self.job_id, now=now)
        if row is None:
            return None
        queries.execute(
            conn,
            "take_claim",
            job_id=self.job_id,
            seq=row.seq,
            holder=self.run_id,
            expires=now + self.settings.claim_ttl,
        )
        owner_ids: list[int] = json.loads(row.owner_ids)
        states = ledger.owner_states(conn, owner_ids)
        after = row.done_through
        todo = [
            o
            for o in owner_ids
            if attempted_by_waves(states.get(o), retry_failed=self.retry_failed)
            and (after is None or o > after or states.get(o) is OwnerState.DEFERRED)
        ]
        if row.holder is not None:
            log.warning(
                "claim.taken_over",
                seq=row.seq,
                previous_holder=row.holder,
                resumes_after=after,
                owners=len(todo),
            )
        else:
            log.debug("claim.taken", seq=row.seq, owners=len(todo))
        claim = _Claim(row.seq, todo, done_through=after)
        if not todo:
            self._checkpoint(conn, claim, concluded=0, expires=now, finished_at=now)
            self._close(conn)
        return claim

    def _checkpoint(
        self, conn: Connection, claim: _Claim, *, concluded: int, expires: Any, finished_at: Any
    ) -> bool:
        """Records how far the claim got; False when it is not this worker's any more."""
        return bool(
            queries.execute(
                conn,
                "checkpoint_claim",
                job_id=self.job_id,
                seq=claim.seq,
                holder=self.run_id,
                done_through=claim.done_through,
                concluded=concluded,
                expires=expires,
                finished_at=finished_at,
            )
        )

    def _close(self, conn: Connection) -> None:
        """Closes the job when every claim is finished and planning is done (idempotent)."""
        if queries.execute(conn, "finish_job", id=self.job_id, now=utcnow(), outcome="completed"):
            self.closed = True
            log.info("job.finished", job_id=self.job_id)

    # -- the job

    def _job(self) -> str:
        """The wave's unfinished job, joined (or started); this run recorded as one of its workers."""
        if self.job_id is not None:
            return self.job_id
        self.joined_at = self.joined_at or utcnow()
        if self._given_job is not None:
            given = self._given_job

            def register(conn: Connection) -> Any:
                queries.execute(conn, "set_run_job", job_id=given, run_id=self.run_id)
                return queries.scalar(conn, "job_started_at", id=given)

            self.started_at = transaction(self.engine, register)
            self.job_id = given
            return given
        self.job_id, started, self.started_at = join_job(
            self.engine, self.wave.name, self.definition(), self.run_id
        )
        log.info("job.started" if started else "job.joined", job_id=self.job_id)
        return self.job_id

    # -- planning

    def _plan_ahead(self) -> bool:
        """Plans the job, on PostgreSQL on a thread while this worker takes the claims already
        planned: True while this process plans (having waited briefly for the next claim) or when
        it planned; False when another process plans. Returns, without a thread, when planning is
        done or at a stop signal."""
        planner = self._planner
        if planner is None:
            if not self._lead_planning():
                return False
            if not dialect.writes_alongside(self.engine):
                self._plan_leading()  # one writer: the plan comes before the claims
                return True
            planner = self._planner = _Planner(self._plan_leading)
            planner.thread.start()
        if planner.thread.is_alive():
            # Woken by the next claim committed; the caller looks for it (or for a stop) again.
            planner.progressed.wait(0.5)
            planner.progressed.clear()
            return True
        self._planner = None
        if planner.error is not None:
            raise planner.error
        return True

    def _plan_leading(self) -> None:
        """Plans the rest of the job, holding the planning lease; hands the lease back."""
        try:
            self._plan_rest()
        finally:
            transaction(
                self.engine,
                lambda conn: queries.execute(conn, "release_lease", name=PLANNER, holder=self.run_id),
            )

    def _lead_planning(self) -> bool:
        """Takes the planning lease (from a dead holder too); False when another process plans."""
        now = utcnow()

        def take(conn: Connection) -> bool:
            queries.execute(
                conn,
                "take_lease",
                name=PLANNER,
                holder=self.run_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                now=now,
                expires=now + self.settings.claim_ttl,
            )
            row = queries.one(conn, "lease_holder", name=PLANNER)
            return row is not None and row.holder == self.run_id

        if not transaction(self.engine, take):
            holder = transaction(self.engine, lambda conn: queries.one(conn, "lease_holder", name=PLANNER))
            if holder is None or not _gone(holder.host, holder.pid):
                return False
            log.info("planner.holder_gone", holder=holder.holder, host=holder.host, pid=holder.pid)
            transaction(
                self.engine,
                lambda conn: queries.execute(conn, "release_lease", name=PLANNER, holder=holder.holder),
            )
            if not transaction(self.engine, take):
                return False
        return True

    def _plan_rest(self) -> None:
        # Only a signal stops planning half-way: a plan cut short lets another wave plan in between.
        while not self._stopped and not self._cut and not self._sleep(0):
            job = transaction(self.engine, lambda conn: queries.one(conn, "job_for_update", id=self.job_id))
            if not _still_planning(job):
                return
            after = job.planned_through if job.planned_through is not None else -1
            chunks = _chunks(self._selection(after), self.claim_size)
            while True:
                chunk = next(chunks, None) or []
                final = len(chunk) < self.claim_size
                outcome = self._commit_chunk(chunk, after, final)
                if outcome == _LEASE_LOST:
                    log.warning(
                        "planner.lease_lost", detail="another process plans now; this one takes claims"
                    )
                    return
                if outcome is None:
                    break  # another planner moved the cursor: start again from it
                if final:
                    log.info("job.planned", job_id=self.job_id, claims=outcome)
                    return
                if self._planner is not None:
                    self._planner.progressed.set()  # a claim more for this process's worker
                after = chunk[-1]
                if self._cut or self._sleep(0):
                    return

    def _commit_chunk(self, chunk: list[int], after: int, final: bool) -> int | None:
        return transaction(self.engine, lambda conn: self._plan_chunk(conn, chunk, after, final))

    def _selection(self, after: int) -> Iterator[int]:
        for candidate in candidates(self.engine, self.wave, after=after):
            if selects(self.wave, self.settings.salt, candidate) and attempted_by_waves(
                candidate.state, retry_failed=self.retry_failed
            ):
                yield candidate.owner_id

    def _plan_chunk(self, conn: Connection, owner_ids: list[int], after: int, final: bool) -> int | None:
        """One claim of owners, their names reserved, in the transaction that moves the cursor;
        None when the cursor is not where this planner left it."""
        job = queries.one(conn, "job_for_update", id=self.job_id)
        if not _still_planning(job):
            return None
        if (job.planned_through if job.planned_through is not None else -1) != after:
            return None
        now = utcnow()
        if not queries.execute(
            conn, "renew_lease", name=PLANNER, holder=self.run_id, expires=now + self.settings.claim_ttl
        ):
            return _LEASE_LOST
        claims = 0
        if owner_ids:
            reserve_names(
                conn, owner_ids, job_id=self.job_id or "", forbidden=self.settings.reserved_names, now=now
            )
            queries.execute(
                conn,
                "insert_claim",
                job_id=self.job_id,
                seq=job.claims + 1,
                first_owner_id=owner_ids[0],
                last_owner_id=owner_ids[-1],
                owner_ids=json.dumps(owner_ids),
                owners=len(owner_ids),
            )
            claims = 1
        queries.execute(
            conn,
            "job_planned_chunk",
            id=self.job_id,
            through=owner_ids[-1] if owner_ids else job.planned_through,
            claims=claims,
            owners=len(owner_ids),
            planned_at=now if final else None,
        )
        return int(job.claims) + claims


def job_definition(wave: Wave, salt: str, retry_failed: bool) -> str:
    """What decides a job's selection: a run of a changed wave starts a new job."""
    fields = {
        k: (sorted(v) if isinstance(v, frozenset | set) else v) for k, v in dataclasses.asdict(wave).items()
    }
    return json.dumps(
        {"wave": fields, "salt": salt, "retry_failed": retry_failed}, sort_keys=True, default=str
    )


def join_job(engine: Engine, wave: str, definition: str, run_id: str) -> tuple[str, bool, Any]:
    """The wave's unfinished job, joined, or started (True); `run_id` recorded as one of its
    workers; with when the job started. A job planned for another definition of the wave (the plan
    changed, or `--retry-failed` differs) is closed as superseded when nobody works on it any more;
    while its workers are alive the run is refused (exit 2)."""

    def join(conn: Connection) -> tuple[str, bool, Any]:
        live = queries.one(conn, "live_job", wave=wave)
        if live is not None and live.definition != definition:
            busy = queries.one(conn, "job_progress", job_id=live.id, now=utcnow())
            if busy is not None and busy.held:
                raise UsageError(
                    f"wave {wave} is being run by other workers with other settings (job {live.id}:"
                    " another plan or --retry-failed); wait for them to finish, or stop them"
                )
            log.warning(
                "job.superseded", job_id=live.id, detail="the wave's definition changed: a new job starts"
            )
            queries.execute(conn, "supersede_job", id=live.id, now=utcnow())
            live = None
        started = False
        if live is None:
            started = bool(
                queries.execute(
                    conn,
                    "insert_job",
                    id=uuid.uuid4().hex[:12],
                    wave=wave,
                    definition=definition,
                    now=utcnow(),
                )
            )
            live = queries.one(conn, "live_job", wave=wave)
            assert live is not None
        queries.execute(conn, "set_run_job", job_id=live.id, run_id=run_id)
        return live.id, started, live.started_at

    return transaction(engine, join)


def reserve_names(
    conn: Connection, owner_ids: Sequence[int], *, job_id: str, forbidden: Collection[str], now: Any
) -> dict[int, str]:
    """Reserves, in user-id order, the name of each owner's new organization: owners who own no
    organization, are not deleted and have no name reserved yet. A name is free when no
    organization has it, no other owner has it reserved, and the plan does not forbid it."""
    forbidden_set = frozenset(forbidden)
    bases = [
        (row.id, naming.base_name(row.username, row.id))
        for row in queries.rows(conn, "planning_owners", owner_ids=list(owner_ids))
        if not row.deleted and not row.organizations and row.reserved is None
    ]

    def taken(names: Collection[str]) -> Collection[str]:
        in_use = {row.name for row in queries.rows(conn, "names_taken", names=sorted(names))}
        return in_use | (set(names) & forbidden_set)

    names = naming.assign_names(bases, taken, set())
    queries.execute_rows(
        conn,
        "reserve_names",
        [{"owner_id": o, "name": n} for o, n in sorted(names.items())],
        job_id=job_id,
        now=now,
    )
    return names


def latest_job_workers(conn: Connection) -> list[tuple[str, dict[str, int]]]:
    """Each worker of the newest wave job (under way or not), with its owners by outcome."""
    return [
        (row.id, {k: int(getattr(row, k) or 0) for k in ("migrated", "failed", "blocked", "deferred")})
        for row in queries.rows(conn, "latest_job_workers")
    ]


def jobs_under_way(conn: Connection) -> list[dict[str, Any]]:
    """The unfinished jobs, each with its claims done and its workers (for `status`)."""
    workers: dict[str, list[dict[str, Any]]] = {}
    for row in queries.rows(conn, "live_workers"):
        worker = dict(row._mapping)
        for key in ("started_at", "heartbeat_at", "finished_at"):
            moment = as_datetime(worker[key])
            worker[key] = moment.isoformat(timespec="seconds") if moment else None
        workers.setdefault(worker.pop("job_id"), []).append(worker)
    jobs = []
    for row in queries.rows(conn, "live_jobs"):
        job = dict(row._mapping)
        for key in ("started_at", "planned_at"):
            moment = as_datetime(job[key])
            job[key] = moment.isoformat(timespec="seconds") if moment else None
        job["workers"] = workers.get(job["id"], [])
        jobs.append(job)
    return jobs


def _gone(host: str | None, pid: int | None) -> bool:
    """Whether a process of this host is known to have ended (another host's is never known)."""
    if host != socket.gethostname() or pid is None or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie (killed, its parent has not reaped it yet) is gone too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return False


def _still_planning(job: Row[Any] | None) -> TypeGuard[Row[Any]]:
    """Whether a job (`job_for_update`) is still to be planned: it exists, is not planned through,
    and was not finished (or superseded) meanwhile."""
    return job is not None and job.planned_at is None and job.finished_at is None


def _chunks(owners: Iterator[int], size: int) -> Iterator[list[int]]:
    while chunk := list(islice(owners, size)):
        yield chunk
