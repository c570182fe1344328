"""Several workers and hosts on one wave: the same end state as one process, names included; a
killed worker's claim taken over; SQLite runs one worker and says so."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, Transaction, text
from sqlalchemy.engine import make_url

from rollout.seed import seed
from rollout.store.engine import make_engine
from tests.conftest import drop_pg_database
from tests.support import (
    REPO,
    Platform,
    errors,
    events,
    half_migrated_owners,
    inject_failure,
    logical_snapshot,
    rollout,
    rollout_command,
    scalar,
)

OWNERS = 1200
PLAN = """[rollout]
batch_size = 20
claim_ttl = "30s"

[[waves]]
name = "ten-percent"
percent = 10

[[waves]]
name = "everyone"
percent = 100
"""
# Owners whose names collide, far apart in user-id order: they land in different claims, which
# workers take in any order; the lowest id must still get the bare name.
COLLIDING = {50_001: "bob", 60_002: "Bob", 70_003: "BOB!", 80_004: "b.o.b", 90_005: "bob_", 95_006: "bob-2"}

Copies = Callable[[int], list[str]]


@pytest.fixture
def copies(request: pytest.FixtureRequest, db_url: str) -> Iterator[Copies]:
    """`copies(n)`: n PostgreSQL databases holding the same seeded data (every edge case, and
    owners whose names collide across claims)."""
    if db_url.startswith("sqlite"):
        pytest.skip("several workers need PostgreSQL; SQLite runs one (test_sqlite_runs_one_worker)")
    engine = make_engine(db_url)
    seed(engine, OWNERS, 23)
    with engine.begin() as conn:
        Platform(conn).named_owners(COLLIDING)
    engine.dispose()
    admin = request.getfixturevalue("pg_admin")
    made: list[str] = []

    def make(n: int) -> list[str]:
        urls = []
        for i in range(n):
            name = f"{make_url(db_url).database}_c{len(made) + i}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(db_url).database}"'))
            urls.append(make_url(db_url).set(database=name).render_as_string(hide_password=False))
        made.extend(urls)
        return urls

    yield make
    for url in made:
        drop_pg_database(admin, url)


def popen(url: str, plan: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        rollout_command(url, plan, *args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def assert_same_as_one_process(engine: Engine, clean_url: str, plan: Path) -> None:
    """Runs the whole wave on the clean copy in one process, and asserts that `engine`'s database
    ends the same."""
    assert rollout("run", "--wave", "everyone", db_url=clean_url, plan=plan).returncode == 0
    clean = make_engine(clean_url)
    try:
        assert logical_snapshot(engine) == logical_snapshot(clean)
    finally:
        clean.dispose()


def names(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT owner_id, name FROM organizations WHERE owner_id >= 50000"))
        return {r.owner_id: r.name for r in rows}


# In user-id order: `bob` takes the bare name, the next two `bob`s take `-2` and `-3` (before owner
# 95 006, whose own base `bob-2` is taken by then), `b.o.b` has a base of its own.
EXPECTED_NAMES = {
    50_001: "bob",
    60_002: "bob-2",
    70_003: "bob-3",
    80_004: "b-o-b",
    90_005: "bob-4",
    95_006: "bob-2-2",
}


def test_one_two_and_four_workers_and_two_hosts_end_in_the_same_state(copies: Copies, tmp_path: Path) -> None:
    """`--workers 1, 2, 4` and two processes started separately on the same wave: every platform
    table ends the same, organization names included, and each owner is migrated once."""
    plan = tmp_path / "waves.toml"
    plan.write_text(PLAN)
    one, two, four, hosts = copies(4)

    for url, workers in ((one, "1"), (two, "2"), (four, "4")):
        result = rollout("run", "--wave", "everyone", "--workers", workers, db_url=url, plan=plan)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "succeeded" in result.stdout

    first, second = (
        popen(hosts, plan, "run", "--wave", "everyone"),
        popen(hosts, plan, "run", "--wave", "everyone"),
    )
    for process in (first, second):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]

    engines = [make_engine(u) for u in (one, two, four, hosts)]
    try:
        expected = logical_snapshot(engines[0])
        assert names(engines[0]) == EXPECTED_NAMES
        for engine in engines[1:]:
            assert logical_snapshot(engine) == expected
            assert half_migrated_owners(engine) == []
        for engine, workers in zip(engines, (1, 2, 4, 2), strict=True):
            # every worker is a run of the wave's one job; the job finished, every claim too
            assert scalar(engine, "SELECT COUNT(*) FROM rollout_jobs") == 1
            assert scalar(engine, "SELECT COUNT(*) FROM rollout_jobs WHERE finished_at IS NULL") == 0
            assert scalar(engine, "SELECT COUNT(*) FROM rollout_claims WHERE finished_at IS NULL") == 0
            assert (
                scalar(engine, "SELECT COUNT(DISTINCT id) FROM rollout_runs WHERE job_id IS NOT NULL")
                == workers
            )
            assert scalar(engine, "SELECT COUNT(*) FROM rollout_names") == 0
        # with several workers, more than one of them migrated owners
        assert (
            scalar(engines[2], "SELECT COUNT(*) FROM rollout_runs WHERE job_id IS NOT NULL AND migrated > 0")
            > 1
        )
    finally:
        for engine in engines:
            engine.dispose()


def hold_last_name(engine: Engine) -> Transaction:
    """Another transaction holding, uncommitted, the name the wave's highest owner will reserve:
    planning waits at the last claim until it is rolled back."""
    held = engine.connect().begin()
    held.connection.execute(
        text(
            "INSERT INTO rollout_names (owner_id, name, job_id, reserved_at)"
            " VALUES (0, :name, 'held-by-the-test', now())"
        ),
        {"name": EXPECTED_NAMES[95_006]},
    )
    return held


@contextmanager
def planning_held(copies: Copies, tmp_path: Path) -> Iterator[tuple[Path, str, str, Engine, Transaction]]:
    """A copy of the wave's data (and a clean one to compare with), its plan, and the last claim's
    name held by another transaction (`hold_last_name`): (plan, url, clean url, engine, held)."""
    plan = tmp_path / "waves.toml"
    plan.write_text(PLAN)
    url, clean_url = copies(2)
    engine = make_engine(url)
    held = hold_last_name(engine)
    try:
        yield plan, url, clean_url, engine, held
    finally:
        held.connection.close()
        engine.dispose()


def test_one_worker_migrates_its_first_claims_while_it_plans_the_rest(copies: Copies, tmp_path: Path) -> None:
    """On PostgreSQL a worker plans on a thread of its own: it migrates the claims planned so far
    while the rest are planned. Here planning is held at the last claim (another transaction holds
    the name its highest owner will reserve); the worker migrates owners meanwhile, and once the
    name is let go the wave ends exactly as a one-process run, names included."""
    with planning_held(copies, tmp_path) as (plan, url, clean_url, engine, held):
        process = popen(url, plan, "run", "--wave", "everyone")
        deadline = time.monotonic() + 90
        migrated_while_planning = 0
        while time.monotonic() < deadline and process.poll() is None and not migrated_while_planning:
            time.sleep(0.05)
            if scalar(engine, "SELECT COUNT(*) FROM rollout_jobs WHERE planned_at IS NULL") == 1:
                migrated_while_planning = scalar(
                    engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'"
                )
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert migrated_while_planning > 0, "no owner migrated while planning was held"
        held.rollback()
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        found = events(stderr)
        planned = next(i for i, e in enumerate(found) if e.get("event") == "job.planned")
        assert any(e.get("event") == "batch.committed" for e in found[:planned])
        assert names(engine) == EXPECTED_NAMES
        assert_same_as_one_process(engine, clean_url, plan)


def test_a_signal_stops_a_run_whose_planning_is_held(copies: Copies, tmp_path: Path) -> None:
    """Planning held at the last claim (another transaction holds the name it will reserve): a
    SIGTERM stops the worker's batches, but the planner cannot see it while it waits; the run stops
    waiting for it when the signal's grace runs out (or at a second signal). The run exits
    interrupted, its claim handed back; the next run plans the rest and ends as a one-process run
    does."""
    with planning_held(copies, tmp_path) as (plan, url, clean_url, engine, held):
        process = popen(url, plan, "run", "--wave", "everyone")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            # the planner waits for the held name, and the worker migrates meanwhile
            if scalar(
                engine,
                "SELECT COUNT(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'",
            ) and scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'"):
                break
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()[1][-3000:]
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr[-3000:]
        assert "interrupted" in stdout
        assert any(e.get("event") == "planner.abandoned" for e in events(stderr)), stderr[-3000:]
        assert (
            scalar(
                engine, "SELECT COUNT(*) FROM rollout_claims WHERE holder IS NOT NULL AND finished_at IS NULL"
            )
            == 0
        )
        assert scalar(engine, "SELECT COUNT(*) FROM rollout_jobs WHERE planned_at IS NULL") == 1
        held.rollback()
        assert half_migrated_owners(engine) == []
        result = rollout("run", "--wave", "everyone", db_url=url, plan=plan)
        assert result.returncode == 0, result.stderr[-3000:]
        assert names(engine) == EXPECTED_NAMES
        assert_same_as_one_process(engine, clean_url, plan)


def worker_pids(engine: Engine, run_prefix: str) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, pid FROM rollout_runs WHERE id LIKE :p AND finished_at IS NULL"),
            {"p": f"{run_prefix}-w%"},
        )
        return {r.id: r.pid for r in rows}


@pytest.mark.parametrize("where", ["this-host", "another-host"])
def test_a_worker_killed_with_sigkill_has_its_claim_taken_over(
    copies: Copies, tmp_path: Path, where: str
) -> None:
    """`--workers 2`, one worker killed with SIGKILL mid-wave: the other takes over its claim after
    the claim's checkpoint, and the wave ends exactly as a one-process run, nothing lost or doubled.
    A dead worker of this host is seen gone at once; one of another host (its run says so) is
    waited for until its claim's lease (`claim_ttl`) runs out."""
    plan = tmp_path / "waves.toml"
    plan.write_text(PLAN.replace('claim_ttl = "30s"', 'claim_ttl = "3s"'))
    killed_url, clean_url = copies(2)
    assert rollout("run", "--wave", "everyone", db_url=clean_url, plan=plan).returncode == 0
    killed, clean = make_engine(killed_url), make_engine(clean_url)
    try:
        process = popen(killed_url, plan, "run", "--wave", "everyone", "--workers", "2")
        deadline = time.monotonic() + 120
        victim: tuple[str, int] | None = None
        while time.monotonic() < deadline and process.poll() is None:
            pids = worker_pids(killed, "%")
            held = scalar(
                killed,
                "SELECT MIN(holder) FROM rollout_claims WHERE holder IS NOT NULL AND finished_at IS NULL"
                " AND done_through IS NOT NULL",
            )
            if held in pids:
                victim = (held, pids[held])
                break
            time.sleep(0.02)
        assert victim is not None, "no worker held a checkpointed claim to kill"
        if where == "another-host":
            with killed.begin() as conn:
                conn.execute(
                    text("UPDATE rollout_runs SET host = 'elsewhere' WHERE id = :id"), {"id": victim[0]}
                )
        os.kill(victim[1], signal.SIGKILL)
        _, stderr = process.communicate(timeout=300)
        # The worker's death is reported (exit 1), the wave is complete all the same.
        assert process.returncode == 1, stderr[-3000:]
        assert any(e.get("event") == "worker.died" for e in events(stderr))
        taken = [e for e in events(stderr) if e.get("event") == "claim.taken_over"]
        assert taken and taken[0]["previous_holder"] == victim[0]
        seen_gone = [e["holder"] for e in events(stderr) if e.get("event") == "claim.holder_gone"]
        assert seen_gone == ([victim[0]] if where == "this-host" else [])
        assert scalar(killed, "SELECT SUM(takeovers) FROM rollout_claims") >= 1
        assert scalar(killed, "SELECT COUNT(*) FROM rollout_claims WHERE finished_at IS NULL") == 0
        assert half_migrated_owners(killed) == []
        assert logical_snapshot(killed) == logical_snapshot(clean)
        status = json.loads(
            rollout("status", "--format", "json", db_url=killed_url, plan=plan, check=True).stdout
        )
        everyone = next(w for w in status["waves"] if w["wave"] == "everyone")
        assert everyone["remaining"] == 0 and everyone["complete"]
        assert status["jobs"] == []
        assert rollout("verify", db_url=killed_url, plan=plan).returncode == 0
    finally:
        killed.dispose()
        clean.dispose()


def test_overlapping_waves_run_at_once_name_wave_by_wave(copies: Copies, tmp_path: Path) -> None:
    """Two waves run at once (ten-percent and everyone): names are handed out wave by wave, in the
    order the waves' jobs were planned, as if they had run one after the other."""
    plan = tmp_path / "waves.toml"
    plan.write_text(PLAN)
    together, sequential = copies(2)
    small = popen(together, plan, "run", "--wave", "ten-percent", "--workers", "2")
    big = popen(together, plan, "run", "--wave", "everyone", "--workers", "2")
    for process in (small, big):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
    engine = make_engine(together)
    with engine.connect() as conn:
        order = [
            r.wave
            for r in conn.execute(
                text("SELECT wave FROM rollout_jobs GROUP BY wave ORDER BY MIN(planned_at)")
            )
        ]
    assert sorted(order) == ["everyone", "ten-percent"]
    for wave in order:
        assert rollout("run", "--wave", wave, db_url=sequential, plan=plan).returncode == 0
    other = make_engine(sequential)
    try:
        assert logical_snapshot(engine)["organizations"] == logical_snapshot(other)["organizations"]
        assert logical_snapshot(engine)["projects"] == logical_snapshot(other)["projects"]
        assert half_migrated_owners(engine) == []
    finally:
        engine.dispose()
        other.dispose()


def test_a_planned_name_the_platform_took_meanwhile_gives_the_next_free_one(
    copies: Copies, tmp_path: Path
) -> None:
    """A job plans every name before migrating; when the platform creates an organization with a
    name planned for an owner not migrated yet, that owner gets the next free name, not a failure."""
    plan = tmp_path / "waves.toml"
    plan.write_text(PLAN)
    (url,) = copies(1)
    engine = make_engine(url)
    try:
        stopped = rollout("run", "--wave", "everyone", "--max-owners", "1", db_url=url, plan=plan)
        assert stopped.returncode == 0, stderr_tail(stopped.stderr)
        assert scalar(engine, "SELECT name FROM rollout_names WHERE owner_id = 60002") == "bob-2"
        with engine.begin() as conn:
            Platform(conn).user(99_999, "someone-else")
            Platform(conn).organization("bob-2", 99_999)
        result = rollout("run", "--wave", "everyone", db_url=url, plan=plan)
        assert result.returncode == 0, stderr_tail(result.stderr)
        got = names(engine)
        assert got[60_002] not in ("bob-2", "bob", "bob-3", "bob-4", "b-o-b")
        assert got[50_001] == "bob" and got[70_003] == "bob-3"
        assert scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'failed'") == 0
    finally:
        engine.dispose()


def stderr_tail(stderr: str) -> str:
    return stderr[-3000:]


def test_sqlite_runs_one_worker_and_says_so(db_url: str, tmp_path: Path) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("the SQLite side of --workers")
    plan = tmp_path / "waves.toml"
    plan.write_text(PLAN)
    engine = make_engine(db_url)
    seed(engine, 200, 5)
    result = rollout("run", "--wave", "everyone", "--workers", "3", db_url=db_url, plan=plan)
    assert result.returncode == 0, result.stderr
    said = [e for e in events(result.stderr) if e.get("event") == "run.one_worker"]
    assert said and "SQLite runs one worker" in said[0]["message"]
    assert scalar(engine, "SELECT COUNT(*) FROM rollout_runs WHERE job_id IS NOT NULL") == 1
    assert scalar(engine, "SELECT COUNT(*) FROM rollout_jobs WHERE finished_at IS NOT NULL") == 1
    engine.dispose()


def test_workers_are_for_waves_only(db_url: str, tmp_path: Path) -> None:
    plan = tmp_path / "waves.toml"
    plan.write_text(PLAN)
    with make_engine(db_url).begin() as conn:
        Platform(conn).named_owners({7: "alice"})
    result = rollout("run", "--owner", "7", "--workers", "2", db_url=db_url, plan=plan)
    assert result.returncode == 2
    assert errors(result.stderr) == [
        "--workers applies to --wave and --auto; one owner or a report runs in one process"
    ]
    assert scalar(make_engine(db_url), "SELECT COUNT(*) FROM organizations") == 0


def test_a_job_left_unfinished_shows_each_worker_and_the_next_run_finishes_it(
    copies: Copies, tmp_path: Path
) -> None:
    """`--workers 2 --max-owners 40` leaves the wave's job under way: `status` shows it with each
    worker, the metrics show each worker; the next run joins the same job and finishes it, ending
    as a one-process run does."""
    plan = tmp_path / "waves.toml"
    plan.write_text(PLAN)
    url, clean_url = copies(2)
    metrics = tmp_path / "rollout.prom"
    first = rollout(
        "run",
        "--wave",
        "everyone",
        "--workers",
        "2",
        "--max-owners",
        "40",
        "--metrics-file",
        str(metrics),
        db_url=url,
        plan=plan,
    )
    assert first.returncode == 0, stderr_tail(first.stderr)
    assert "2 workers" in first.stdout
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            workers = [
                r[0] for r in conn.execute(text("SELECT id FROM rollout_runs WHERE job_id IS NOT NULL"))
            ]
        assert len(workers) == 2
        status = json.loads(rollout("status", "--format", "json", db_url=url, plan=plan, check=True).stdout)
        (job,) = status["jobs"]
        assert job["wave"] == "everyone" and job["planned_at"] and job["finished"] < job["claims"]
        assert sorted(w["id"] for w in job["workers"]) == sorted(workers)
        assert sum(w["migrated"] for w in job["workers"]) == scalar(
            engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'"
        )
        assert all(w["claims_held"] == 0 for w in job["workers"])  # handed back when they stopped
        shown = rollout("status", db_url=url, plan=plan, check=True).stdout
        assert f"job {job['id']} under way" in shown and all(w in shown for w in workers)
        prom = metrics.read_text()
        for worker in workers:
            assert f'rollout_worker_owners{{outcome="migrated",worker="{worker}"}}' in prom

        rest = rollout("run", "--wave", "everyone", db_url=url, plan=plan)
        assert rest.returncode == 0, stderr_tail(rest.stderr)
        assert any(e.get("event") == "job.joined" for e in events(rest.stderr))
        assert scalar(engine, "SELECT COUNT(*) FROM rollout_jobs") == 1
        assert scalar(engine, "SELECT COUNT(*) FROM rollout_jobs WHERE finished_at IS NULL") == 0
        assert_same_as_one_process(engine, clean_url, plan)
    finally:
        engine.dispose()


def test_sigterm_stops_every_worker_and_hands_their_claims_back(copies: Copies, tmp_path: Path) -> None:
    """SIGTERM to `run --workers 2`: each worker finishes its batch, hands its claim back and stops;
    the run exits 0 as interrupted; the next run ends as a one-process run does."""
    plan = tmp_path / "waves.toml"
    plan.write_text(PLAN.replace("batch_size = 20", "batch_size = 5"))
    url, clean_url = copies(2)
    engine = make_engine(url)
    try:
        process = popen(url, plan, "run", "--wave", "everyone", "--workers", "2")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'") > 50:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be stopped"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr_tail(stderr)
        assert "interrupted" in stdout and "stopped: signal" in stdout
        assert (
            scalar(
                engine, "SELECT COUNT(*) FROM rollout_claims WHERE holder IS NOT NULL AND finished_at IS NULL"
            )
            == 0
        )
        assert scalar(engine, "SELECT COUNT(*) FROM rollout_runs WHERE outcome = 'interrupted'") == 2
        assert half_migrated_owners(engine) == []
        assert rollout("run", "--wave", "everyone", db_url=url, plan=plan).returncode == 0
        assert_same_as_one_process(engine, clean_url, plan)
    finally:
        engine.dispose()


def test_a_run_with_other_settings_waits_for_the_workers_of_the_wave_then_supersedes_their_job(
    copies: Copies, tmp_path: Path
) -> None:
    """A wave's job planned with other settings (here `--retry-failed`) whose claim a live worker
    holds: a run without the flag is refused in one line (exit 2) and writes nothing; once nobody
    holds a claim of it, the run closes it as superseded and starts its own."""
    plan = tmp_path / "waves.toml"
    plan.write_text(PLAN)
    (url,) = copies(1)
    engine = make_engine(url)
    try:
        stopped = rollout(
            "run", "--wave", "everyone", "--retry-failed", "--max-owners", "1", db_url=url, plan=plan
        )
        assert stopped.returncode == 0, stderr_tail(stopped.stderr)
        with engine.begin() as conn:  # a worker of that job, alive and holding a claim
            conn.execute(
                text(
                    "UPDATE rollout_claims SET holder = 'someone-w1', expires_at = :later"
                    " WHERE seq = (SELECT MIN(seq) FROM rollout_claims WHERE finished_at IS NULL)"
                ),
                {"later": "2999-01-01T00:00:00+00:00"},
            )
        migrated = scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'")
        refused = rollout("run", "--wave", "everyone", db_url=url, plan=plan)
        assert refused.returncode == 2
        (line,) = errors(refused.stderr)
        assert line.startswith("wave everyone is being run by other workers with other settings (job ")
        assert scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'") == migrated

        with engine.begin() as conn:
            conn.execute(text("UPDATE rollout_claims SET expires_at = '2000-01-01T00:00:00+00:00'"))
        result = rollout("run", "--wave", "everyone", db_url=url, plan=plan)
        assert result.returncode == 0, stderr_tail(result.stderr)
        with engine.connect() as conn:
            outcomes = sorted(r[0] or "" for r in conn.execute(text("SELECT outcome FROM rollout_jobs")))
        assert outcomes == ["completed", "superseded"]
        assert scalar(engine, "SELECT COUNT(*) FROM rollout_names") == 0
    finally:
        engine.dispose()


def test_the_dry_run_of_a_half_done_job_names_as_the_run_then_does(copies: Copies, tmp_path: Path) -> None:
    """With a wave's job planned and partly run (names reserved for the owners left), `rollout
    plan` shows those names, and the rest of the run gives exactly them."""
    plan = tmp_path / "waves.toml"
    plan.write_text(PLAN)
    (url,) = copies(1)
    engine = make_engine(url)
    try:
        assert (
            rollout("run", "--wave", "everyone", "--max-owners", "30", db_url=url, plan=plan).returncode == 0
        )
        with engine.connect() as conn:
            reserved = {
                r.owner_id: r.name for r in conn.execute(text("SELECT owner_id, name FROM rollout_names"))
            }
        assert len(reserved) > 100 and reserved[60_002] == "bob-2"
        report = json.loads(
            rollout(
                "plan", "--wave", "everyone", "--format", "json", db_url=url, plan=plan, check=True
            ).stdout
        )
        planned = {
            o["owner_id"]: o["organization"]["name"]
            for o in report["owners"]
            if not o["organization"]["existing"]
        }
        assert {o: planned[o] for o in reserved} == reserved
        assert rollout("run", "--wave", "everyone", db_url=url, plan=plan).returncode == 0
        with engine.connect() as conn:
            made = {
                r.owner_id: r.name for r in conn.execute(text("SELECT owner_id, name FROM organizations"))
            }
        assert {o: made[o] for o in planned} == planned
    finally:
        engine.dispose()


def test_the_error_budget_is_the_workers_together(copies: Copies, tmp_path: Path) -> None:
    """`max_failures = 6` with two workers on a wave where one owner in seven fails: the wave halts
    (exit 4) once the two workers together failed 6 owners, not 6 each."""
    plan = tmp_path / "waves.toml"
    plan.write_text(PLAN.replace("[rollout]\n", "[rollout]\nmax_failures = 6\nerror_budget = 1.0\n"))
    (url,) = copies(1)
    engine = make_engine(url)
    inject_failure(engine, "NEW.owner_id % 7 = 0")
    try:
        result = rollout("run", "--wave", "everyone", "--workers", "2", db_url=url, plan=plan)
        assert result.returncode == 4, result.stderr[-3000:]
        failed = scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'failed'")
        # Each worker alone would have gone on to its own sixth failure: 12 in all. Together they
        # stop at the sixth; the other worker may have failed one more owner in the meantime.
        assert 6 <= failed <= 7, failed
        per_run = scalar(engine, "SELECT MAX(failed) FROM rollout_runs WHERE job_id IS NOT NULL")
        assert per_run < 6  # neither worker reached the limit alone
        spent = [e for e in events(result.stderr) if e.get("event") == "run.error_budget_exceeded"]
        assert spent and all(e["failed"] >= 6 for e in spent)
        assert any(e["failed_here"] < 6 for e in spent)  # the other worker's failures counted
    finally:
        engine.dispose()


def test_max_owners_per_second_is_the_workers_together(copies: Copies, tmp_path: Path) -> None:
    """`max_owners_per_second = 100` with two workers: the wave's owners are attempted at 100 a
    second in all (the first batch of each excepted), not 100 a second each."""
    plan = tmp_path / "waves.toml"
    plan.write_text(PLAN.replace("[rollout]\n", "[rollout]\nmax_owners_per_second = 100\n"))
    (url,) = copies(1)
    result = rollout("run", "--wave", "everyone", "--workers", "2", db_url=url, plan=plan)
    assert result.returncode == 0, result.stderr[-3000:]
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT SUM(b.size) AS owners, MIN(b.started_at) AS first,"
                    " MAX(b.started_at + b.duration_seconds * interval '1 second') AS last"
                    " FROM rollout_batches b JOIN rollout_runs r ON r.id = b.run_id WHERE r.job_id IS NOT NULL"
                )
            ).one()
        seconds = (row.last - row.first).total_seconds()
        assert row.owners >= 1000
        # Unthrottled: the first batch of each worker (20 owners each); then 100 a second in all,
        # counted from the first worker's start (its planning came before its first batch: 1 s
        # allowed for it). 100 a second each would take half the time.
        assert seconds >= (row.owners - 2 * 20) / 100 - 1, (row.owners, seconds)
        throttled = [e for e in events(result.stderr) if e.get("signal") == "max_owners_per_second"]
        assert throttled
    finally:
        engine.dispose()
