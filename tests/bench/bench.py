"""`make bench`: the job's speed, and its manners beside a busy platform, measured on PostgreSQL.

Sections (BENCH_SECTIONS, default both):
- `standard`: seeds BENCH_OWNERS legacy owners (default 100 000) once, then times (a) the set-based
  SQL yardstick in tests/bench/baseline.sql, one transaction, and (b) `rollout run` of a 100 % wave
  with the shipped plan's settings (rollout/waves.toml; BENCH_BATCH_SIZE pins a batch size) as a
  subprocess with 1, 2 and 4 workers (BENCH_WORKERS, each on its own copy of the data), with
  owners/s and each worker's peak memory; prints the figures, the time per 100 000 owners and the
  ratios, each run's block reads inside and outside the server's shared buffers (beside the seeded
  database's size and `shared_buffers`: what makes the time per owner grow at 1 000 000 owners),
  and times the wave's rollback after the first worker count's run (BENCH_ROLLBACK=0 skips it).
  Each run's copy is made just before it and dropped after it.
- `live`: seeds BENCH_LIVE_OWNERS (default 20 000) and measures the run beside a platform load
  generator (tests/bench/live.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url

from rollout.engine.planfile import packaged_plan
from rollout.seed import seed
from rollout.store.engine import make_engine
from rollout.store.schema import init_schema
from tests.bench import cpu, live
from tests.support import rollout_command

SERVER = os.environ.get("BENCH_DATABASE_URL") or os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
OWNERS = int(os.environ.get("BENCH_OWNERS", "100000"))
LIVE_OWNERS = int(os.environ.get("BENCH_LIVE_OWNERS", "20000"))
BATCH = os.environ.get("BENCH_BATCH_SIZE")  # unset: the shipped plan's (rollout/waves.toml)
SECTIONS = os.environ.get("BENCH_SECTIONS", "standard,live").split(",")
WORKERS = tuple(int(w) for w in os.environ.get("BENCH_WORKERS", "1,2,4").split(","))
ROLLBACK = os.environ.get("BENCH_ROLLBACK", "1") != "0"  # 0: skip the wave's rollback (long at 1 000 000)


def projects_in_organizations(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT COUNT(*) FROM projects WHERE organization_id IS NOT NULL")
                ).scalar_one()
            )
    finally:
        engine.dispose()


@contextmanager
def databases(
    admin: Engine, server: URL, owners: int, copies: tuple[str, ...], *, lazy: bool = False
) -> Iterator[dict[str, str]]:
    """`owners` seeded once (seed 1) and analysed, then one copy per name (with `lazy`, each when
    `make_copy` asks for it); all dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    names = {k: f"bench_{k}_{tag}" for k in ("seed", *copies)}
    url = {k: server.set(database=v).render_as_string(hide_password=False) for k, v in names.items()}
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{names["seed"]}"'))
        engine = make_engine(url["seed"])
        init_schema(engine, platform=True)
        started = time.perf_counter()
        summary = seed(engine, owners, 1)
        print(f"seed: {owners} owners in {time.perf_counter() - started:.1f} s")
        print(f"  {summary}")
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        engine.dispose()
        print(cache_context(admin, url["seed"]))
        for k in () if lazy else copies:
            make_copy(admin, url, k)
        yield url
    finally:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def make_copy(admin: Engine, url: dict[str, str], name: str) -> str:
    """A copy of the seeded database, made just before its run: every run, at every size, starts
    on data the server has just written. Copies made all at once before the first run leave a
    1 000 000-owner run's data behind the other copies' in the OS cache (one worker took 43.0 s
    per 100 000 owners in such a bench, and 33.4 s on a copy made just before it, with every
    statement logged besides)."""
    with admin.connect() as conn:
        conn.execute(
            text(
                f'CREATE DATABASE "{make_url(url[name]).database}" TEMPLATE "{make_url(url["seed"]).database}"'
            )
        )
    return url[name]


def drop_copy(admin: Engine, url: dict[str, str], name: str) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url[name]).database}" WITH (FORCE)'))


def buffers(admin: Engine, url: str) -> str:
    """The database's size and its block reads since it was created (it is a fresh copy per
    run): those PostgreSQL found in its shared buffers and those it read from outside them (the
    OS cache or the disk). At 1 000 000 owners the platform's tables outgrow a default
    `shared_buffers` many times over, and the reads per owner grow with them, whatever runs."""
    name = make_url(url).database
    with admin.connect() as conn:
        row = conn.execute(
            text(
                "SELECT pg_database_size(d.datname), s.blks_read, s.blks_hit FROM pg_database d"
                " JOIN pg_stat_database s ON s.datid = d.oid WHERE d.datname = :name"
            ),
            {"name": name},
        ).one()
    size, read, hit = int(row[0]), int(row[1]), int(row[2])
    per = 100_000 / OWNERS
    share = 100 * read / (read + hit) if read + hit else 0.0
    return (
        f"buffers: {read * per:.0f} blocks read from outside shared_buffers and {hit * per:.0f} found"
        f" in them per 100 000 owners ({share:.1f} % read); database {size / 2**20:.0f} MB after"
    )


def cache_context(admin: Engine, url: str) -> str:
    """The seeded database's size beside the server's `shared_buffers`."""
    with admin.connect() as conn:
        size = int(
            conn.execute(
                text("SELECT pg_database_size(:name)"), {"name": make_url(url).database}
            ).scalar_one()
        )
        shared = conn.execute(text("SELECT pg_size_bytes(current_setting('shared_buffers'))")).scalar_one()
    return (
        f"  seeded database {size / 2**20:.0f} MB; the server's shared_buffers {int(shared) / 2**20:.0f} MB"
        f" ({size / int(shared):.1f} x)"
    )


def shipped_plan(path: Path) -> Path:
    """The shipped plan's settings (rollout/waves.toml: its batch size, adaptive bounds, health
    limits), so the figures are the job's as an operator gets it, with one wave of every owner;
    BENCH_BATCH_SIZE pins the batch size instead."""
    with packaged_plan() as shipped:
        settings = tomllib.loads(shipped.read_text())["rollout"]
    if BATCH:
        settings |= {"batch_size": int(BATCH), "min_batch_size": int(BATCH), "max_batch_size": int(BATCH)}
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    path.write_text("[rollout]\n" + "\n".join(lines) + '\n\n[[waves]]\nname = "everyone"\npercent = 100\n')
    return path


def timed_run(
    url: str, plan: Path, workers: int = 1
) -> tuple[float, subprocess.CompletedProcess[str], list[float]]:
    """`rollout run --wave everyone --workers N` in a subprocess: seconds, the result, and the peak
    RSS in MB of each process that migrated (each worker reports its own VmHWM in `run.finished`;
    a child's rusage would include the process it was forked from)."""
    started = time.perf_counter()
    result = subprocess.run(
        rollout_command(url, plan, "run", "--wave", "everyone", "--workers", str(workers)),
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - started
    finished = [json.loads(line) for line in result.stderr.splitlines() if '"run.finished"' in line]
    return took, result, [f["peak_rss_mb"] for f in finished if f.get("peak_rss_mb") is not None]


def standard(admin: Engine, server: URL, plan: Path) -> None:
    copies = tuple(f"w{w}" for w in WORKERS)
    with databases(admin, server, OWNERS, ("baseline", *copies), lazy=True) as url:
        baseline = create_engine(make_copy(admin, url, "baseline"))
        statements = [
            s
            for s in (Path(__file__).with_name("baseline.sql")).read_text().split(";")
            if s.strip() and not all(line.startswith("--") or not line.strip() for line in s.splitlines())
        ]
        postmaster = cpu.postmaster_pid(admin)
        before = cpu.now(postmaster)
        started = time.perf_counter()
        with baseline.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
        baseline_s = time.perf_counter() - started
        baseline.dispose()
        yardstick_cpu = cpu.now(postmaster) - before
        per = 100_000 / OWNERS
        print(
            f"yardstick (tests/bench/baseline.sql: set-based SQL, one transaction): {baseline_s:.1f} s,"
            f" {baseline_s * per:.1f} s per 100 000 owners"
        )
        print(f"  {cpu.describe(yardstick_cpu, baseline_s)}")
        print(f"  {buffers(admin, url['baseline'])}")
        print(f"  projects in organizations: {projects_in_organizations(url['baseline'])}")
        drop_copy(admin, url, "baseline")
        settings = tomllib.loads(plan.read_text())["rollout"]
        batching = (
            f"batch {settings['batch_size']}, adaptive {settings.get('min_batch_size', '-')}"
            f"..{settings.get('max_batch_size', '-')} toward {settings.get('target_batch_seconds', '-')} s"
        )
        for workers in WORKERS:
            copy = make_copy(admin, url, f"w{workers}")
            before = cpu.now(postmaster)
            rollout_s, result, peaks = timed_run(copy, plan, workers)
            used = cpu.now(postmaster) - before
            print(
                f"rollout run --wave everyone --workers {workers} ({batching}): {rollout_s:.1f} s,"
                f" {OWNERS / rollout_s:.0f} owners/s, {rollout_s * per:.1f} s per 100 000 owners,"
                f" ratio to the yardstick {rollout_s / baseline_s:.2f}, exit {result.returncode}"
            )
            print(f"  peak RSS per worker: {', '.join(f'{p:.1f}' for p in peaks) or 'unknown'} MB")
            print(f"  {cpu.describe(used, baseline_s)}")
            print(f"  {buffers(admin, copy)}")
            print(f"  {result.stdout.strip()}")
            print(f"  projects in organizations: {projects_in_organizations(copy)}")
            if result.returncode not in (0, 1):
                print(result.stderr[-3000:])
            if ROLLBACK and workers == WORKERS[0]:
                time_rollback(copy, plan, workers, rollout_s)
            drop_copy(admin, url, f"w{workers}")
        print("asked: one worker at most 2.00 x the yardstick, the best worker count at most 1.20 x")


def time_rollback(url: str, plan: Path, workers: int, migration_s: float) -> None:
    """`rollout rollback` of the wave just migrated, timed against the migration."""
    started = time.perf_counter()
    back = subprocess.run(
        rollout_command(url, plan, "rollback", "--wave", "everyone", "--yes", "--format", "json"),
        capture_output=True,
        text=True,
        check=False,
    )
    rollback_s = time.perf_counter() - started
    owners_back = len(json.loads(back.stdout)["owners"]) if back.returncode == 0 else back.stderr[-500:]
    print(
        f"rollout rollback --wave everyone: {rollback_s:.1f} s for {owners_back} owners, exit {back.returncode};"
        f" {rollback_s / migration_s:.2f} x the migration's time with {workers} worker(s) (at most 2.00 asked)"
    )
    print(f"  projects in organizations after the rollback: {projects_in_organizations(url)}")


def live_platform(admin: Engine, server: URL, plan: Path) -> None:
    with databases(admin, server, LIVE_OWNERS, ("quiet", "loaded", "held")) as url:
        quiet_s, result, _ = timed_run(url["quiet"], plan)
        print(f"\nunloaded run of {LIVE_OWNERS} owners: {quiet_s:.1f} s, exit {result.returncode}")
        live.run(url, plan, LIVE_OWNERS)
        print(f"  (the held run is asked to finish within the unloaded time + 60 s: {quiet_s + 60:.0f} s)")
        live.stop_during_lock_wait(url["held"], plan.parent)


def main() -> int:
    server = make_url(SERVER).set(drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if "standard" in SECTIONS:
                standard(admin, server, shipped_plan(Path(tmp) / "standard.toml"))
            if "live" in SECTIONS:
                plan = Path(tmp) / "live.toml"
                plan.write_text(
                    f'[rollout]\nbatch_size = {BATCH or 500}\n\n[[waves]]\nname = "everyone"\npercent = 100\n'
                )
                live_platform(admin, server, plan)
        return 0
    finally:
        admin.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
