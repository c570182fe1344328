"""`make bench`: the job's speed measured on PostgreSQL.

Seeds BENCH_OWNERS legacy owners (default 100 000) once, clones the database twice, then times
(a) the set-based SQL yardstick in tests/bench/baseline.sql, one transaction, and (b) `rollout run`
of a 100 % wave as a subprocess, with its peak memory. Prints the figures and the ratio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from rollout.seed import seed
from rollout.store.engine import make_engine
from rollout.store.schema import init_schema

SERVER = os.environ.get("BENCH_DATABASE_URL") or os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
OWNERS = int(os.environ.get("BENCH_OWNERS", "100000"))
BATCH = os.environ.get("BENCH_BATCH_SIZE", "500")


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


def main() -> int:
    server = make_url(SERVER).set(drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    tag = uuid.uuid4().hex[:8]
    names = {k: f"bench_{k}_{tag}" for k in ("seed", "baseline", "rollout")}
    url = {k: server.set(database=v).render_as_string(hide_password=False) for k, v in names.items()}
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{names["seed"]}"'))
        engine = make_engine(url["seed"])
        init_schema(engine, platform=True)
        started = time.perf_counter()
        summary = seed(engine, OWNERS, 1)
        print(f"seed: {OWNERS} owners in {time.perf_counter() - started:.1f} s")
        print(f"  {summary}")
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        engine.dispose()
        with admin.connect() as conn:
            for k in ("baseline", "rollout"):
                conn.execute(text(f'CREATE DATABASE "{names[k]}" TEMPLATE "{names["seed"]}"'))

        baseline = create_engine(url["baseline"])
        statements = [
            s
            for s in (Path(__file__).with_name("baseline.sql")).read_text().split(";")
            if s.strip() and not all(line.startswith("--") or not line.strip() for line in s.splitlines())
        ]
        started = time.perf_counter()
        with baseline.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
        baseline_s = time.perf_counter() - started
        baseline.dispose()
        moved_baseline = projects_in_organizations(url["baseline"])
        print(f"baseline (set-based SQL, one transaction): {baseline_s:.1f} s")

        with tempfile.TemporaryDirectory() as tmp:
            plan = Path(tmp) / "bench.toml"
            plan.write_text(
                f'[rollout]\nbatch_size = {BATCH}\n\n[[waves]]\nname = "everyone"\npercent = 100\n'
            )
            started = time.perf_counter()
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "rollout",
                    "--database-url",
                    url["rollout"],
                    "--plan",
                    str(plan),
                    "--log-format",
                    "json",
                    "run",
                    "--wave",
                    "everyone",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            rollout_s = time.perf_counter() - started
        # The run reports its own peak (VmHWM); a child's rusage would include this process, from
        # which it was forked.
        finished = [json.loads(line) for line in result.stderr.splitlines() if '"run.finished"' in line]
        peak_mb = finished[-1].get("peak_rss_mb") if finished else None
        print(
            f"rollout run --wave everyone (batch {BATCH}): {rollout_s:.1f} s, peak RSS {peak_mb} MB,"
            f" exit {result.returncode}"
        )
        print(f"  {result.stdout.strip()}")
        if result.returncode not in (0, 1):
            print(result.stderr[-3000:])
        moved_rollout = projects_in_organizations(url["rollout"])
        print(f"projects in organizations: baseline {moved_baseline}, rollout {moved_rollout}")
        print(f"ratio rollout / baseline: {rollout_s / baseline_s:.2f} (at most 2.00 asked)")
        return 0
    finally:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
