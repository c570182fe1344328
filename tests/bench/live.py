"""`make bench`, live-platform mode: the job beside a busy platform.

A load generator (writer threads, each write its own transaction, the way a web tier writes) grants
project and environment access, updates projects and creates billing accounts on the same tables
the job migrates. Some writes go through old code paths that decide on the legacy model (a grant
adds no membership), the others through the new one (a grant on an organization's project makes the
grantee a member). Measured on copies of the same seeded data:

1. the platform alone: write latency p50 / p99 / max;
2. the platform and `rollout run --wave everyone`: the same latencies, the job's owners per second,
   the longest wait of a platform write; then one `rollout sweep`, after which every write is
   accounted for (nothing left to sweep, `verify` has no violation of the job's own);
3. the same run with one platform transaction holding a project row for 60 s: how much of the wave
   was done 30 s into the hold, the run's time against the unloaded run's, and the held owner's
   state at the end.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from tests.support import rollout_command

WRITERS = int(os.environ.get("BENCH_WRITERS", "8"))
WARMUP_S = 2.0


@dataclass
class Load:
    """Writer threads hammering the platform tables until stopped; latencies in seconds."""

    engine: Engine
    projects: list[str]
    environments: list[int]
    users: list[int]
    latencies: list[float] = field(default_factory=list)
    started_at: list[float] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_account: int = 10_000_000

    def start(self) -> None:
        for seed in range(WRITERS):
            thread = threading.Thread(target=self._write, args=(seed,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def between(self, start: float, end: float) -> list[float]:
        with self._lock:
            return [
                lat for at, lat in zip(self.started_at, self.latencies, strict=True) if start <= at <= end
            ]

    def _account_id(self) -> int:
        with self._lock:
            self._next_account += 1
            return self._next_account

    def _write(self, seed: int) -> None:
        rng = random.Random(seed)
        actions: list[Callable[[random.Random], tuple[str, dict[str, object]]]] = [
            self._grant_project,
            self._grant_environment,
            self._update_project,
            self._update_project,
            self._billing_account,
        ]
        with self.engine.connect() as conn:
            while not self._stop.is_set():
                sql, params = rng.choice(actions)(rng)
                began = time.monotonic()
                try:
                    with conn.begin():
                        for statement in sql.split(";"):
                            conn.execute(text(statement), params)
                except Exception:
                    with self._lock:
                        self.errors += 1
                    continue
                took = time.monotonic() - began
                with self._lock:
                    self.started_at.append(began)
                    self.latencies.append(took)

    def _grant_project(self, rng: random.Random) -> tuple[str, dict[str, object]]:
        params = {"p": rng.choice(self.projects), "u": rng.choice(self.users)}
        if rng.random() < 0.5:  # the old code path: no membership
            return (
                "INSERT INTO project_access (project_id, user_id, role) VALUES (:p, :u, 'viewer') ON CONFLICT DO NOTHING",
                params,
            )
        return (
            "INSERT INTO project_access (project_id, user_id, role) VALUES (:p, :u, 'viewer') ON CONFLICT DO NOTHING;"
            "INSERT INTO organization_members (organization_id, user_id, created_at)"
            " SELECT organization_id, :u, now() FROM projects WHERE id = :p AND organization_id IS NOT NULL"
            " ON CONFLICT DO NOTHING",
            params,
        )

    def _grant_environment(self, rng: random.Random) -> tuple[str, dict[str, object]]:
        params = {"e": rng.choice(self.environments), "u": rng.choice(self.users)}
        return (
            "INSERT INTO environment_access (environment_id, user_id, role) VALUES (:e, :u, 'viewer') ON CONFLICT DO NOTHING",
            params,
        )

    def _update_project(self, rng: random.Random) -> tuple[str, dict[str, object]]:
        return "UPDATE projects SET title = title || '.' WHERE id = :p", {"p": rng.choice(self.projects)}

    def _billing_account(self, rng: random.Random) -> tuple[str, dict[str, object]]:
        return (
            "INSERT INTO billing_accounts (id, user_id, payment_method) VALUES (:i, :u, 'card:visa:4242')"
            " ON CONFLICT DO NOTHING",
            {"i": self._account_id(), "u": rng.choice(self.users)},
        )


def _sample(engine: Engine) -> tuple[list[str], list[int], list[int]]:
    with engine.connect() as conn:
        projects = [r[0] for r in conn.execute(text("SELECT id FROM projects WHERE status <> 'deleted'"))]
        environments = [r[0] for r in conn.execute(text("SELECT id FROM environments"))]
        users = [r[0] for r in conn.execute(text("SELECT id FROM users WHERE deleted_at IS NULL"))]
    return projects, environments, users


def _stats(latencies: list[float]) -> str:
    if not latencies:
        return "no writes"
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{len(ordered)} writes, p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms,"
        f" max {ordered[-1] * 1000:.0f} ms"
    )


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


def _rollout(url: str, plan: Path, *args: str) -> tuple[subprocess.Popen[str], float]:
    return subprocess.Popen(
        rollout_command(url, plan, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ), time.monotonic()


def _finished(stderr: str) -> dict[str, object]:
    events = [json.loads(line) for line in stderr.splitlines() if '"run.finished"' in line]
    return events[-1] if events else {}


def _scalar(engine: Engine, sql: str) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def run(urls: dict[str, str], plan: Path, owners: int) -> None:
    """The three measurements on three copies of the same data (`quiet`, `loaded`, `held`)."""
    print(f"\nlive platform: {owners} owners, {WRITERS} writer threads")
    loaded = create_engine(urls["loaded"], pool_size=WRITERS + 2)
    projects, environments, users = _sample(loaded)

    # 1. The platform alone, for as long as the run will take (about), after a warm-up.
    load = Load(loaded, projects, environments, users)
    load.start()
    time.sleep(WARMUP_S + 10)
    load.stop()
    alone = load.between(time.monotonic() - 10, time.monotonic())
    print(f"  platform alone:        {_stats(alone)}")

    # 2. The platform and the run.
    load = Load(loaded, projects, environments, users)
    load.start()
    time.sleep(WARMUP_S)
    process, began = _rollout(urls["loaded"], plan, "run", "--wave", "everyone")
    out, err = process.communicate()
    ended = time.monotonic()
    time.sleep(1)
    load.stop()
    during = load.between(began, ended)
    finished = _finished(err)
    migrated = int(finished.get("migrated", 0) or 0)
    print(f"  platform with the run: {_stats(during)}")
    p99_ratio = _p99(during) / _p99(alone) if alone else float("nan")
    print(f"    p99 with the run / alone: {p99_ratio:.2f} (at most 2.00 asked)")
    print(
        f"  run: exit {process.returncode}, {ended - began:.1f} s, {migrated} migrated,"
        f" {migrated / (ended - began):.0f} owners/s, throttled {float(finished.get('throttled_seconds', 0) or 0):.1f} s,"
        f" deferred {finished.get('deferred')}; {out.strip()}"
    )
    print(
        f"    longest platform write during the run: {max(during, default=0) * 1000:.0f} ms, an upper bound of"
        " any wait the job caused (asked: at most target_batch_seconds + lock_timeout)"
    )
    sweep, _ = _rollout(urls["loaded"], plan, "sweep")
    sweep_out, _ = sweep.communicate()
    print(f"  one sweep: exit {sweep.returncode}; {sweep_out.strip()}")
    left = _scalar(loaded, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'deferred'")
    again, _ = _rollout(urls["loaded"], plan, "sweep")
    again_out, _ = again.communicate()
    print(f"  a second sweep (the load stopped before the first): {again_out.strip()}")
    verify = subprocess.run(
        rollout_command(urls["loaded"], plan, "verify", "--format", "json"),
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(verify.stdout)
    print(
        f"  verify: {report['owners_checked']} owners, {report['job_violations']} violations of the job's own,"
        f" {report['platform_violations']} caused by the platform's writes; {left} owners still deferred"
    )
    loaded.dispose()

    # 3. One project row held for 60 s from the start of the run, with the platform load going on
    # (on every project but the held one: writes on that one wait for its holder, not for the job).
    held_engine = create_engine(urls["held"], pool_size=WRITERS + 2)
    victim = _scalar(
        held_engine,
        "SELECT p.id FROM projects p JOIN users u ON u.id = p.owner_id WHERE p.organization_id IS NULL"
        " AND p.status <> 'deleted' AND u.deleted_at IS NULL ORDER BY p.owner_id LIMIT 1 OFFSET 100",
    )
    holder = held_engine.connect()
    tx = holder.begin()
    holder.execute(text("SELECT 1 FROM projects WHERE id = :p FOR UPDATE"), {"p": victim})
    owner = holder.execute(text("SELECT owner_id FROM projects WHERE id = :p"), {"p": victim}).scalar()
    projects, environments, users = _sample(held_engine)
    with held_engine.connect() as conn:
        held_environments = {
            r[0]
            for r in conn.execute(text("SELECT id FROM environments WHERE project_id = :p"), {"p": victim})
        }
    load = Load(
        held_engine,
        [p for p in projects if p != victim],
        [e for e in environments if e not in held_environments],
        users,
    )
    load.start()
    time.sleep(WARMUP_S)
    process, began = _rollout(urls["held"], plan, "run", "--wave", "everyone")
    time.sleep(30)
    done_at_30 = int(
        _scalar(held_engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'") or 0
    )
    time.sleep(30)
    tx.commit()
    holder.close()
    out, err = process.communicate()
    ended = time.monotonic()
    took = ended - began
    time.sleep(1)
    load.stop()
    during = load.between(began, ended)
    state = _scalar(held_engine, f"SELECT state FROM rollout_owners WHERE owner_id = {owner}")
    total = int(_scalar(held_engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'") or 0)
    print(
        f"  a project of owner {owner} held for 60 s: {done_at_30} of {total} owners ({100 * done_at_30 / max(total, 1):.1f} %)"
        f" migrated 30 s into the hold; the run took {took:.1f} s, exit {process.returncode}; the owner ended {state}"
    )
    print(f"    platform during the held run: {_stats(during)}")
    print(
        f"    p99 / alone: {_p99(during) / _p99(alone) if alone else float('nan'):.2f};"
        f" {total / took:.0f} owners/s over the run, the 60 s hold included"
    )
    held_engine.dispose()


def stop_during_lock_wait(url: str, plan_dir: Path) -> None:
    """SIGTERM while a batch waits on a lock (an organization name another transaction is inserting,
    with a 60 s `lock_timeout`): seconds from the signal to the process's exit."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, username, email, created_at) VALUES (990000001, 'zz-late', 'z@x', now())"
            )
        )
        conn.execute(
            text(
                "INSERT INTO projects (id, title, region, owner_id, status, created_at)"
                " VALUES ('zz-late-p', 'Late', 'eu-1', 990000001, 'active', now())"
            )
        )
    plan = plan_dir / "waiting.toml"
    plan.write_text(
        '[rollout]\nlock_timeout = "60s"\nstatement_timeout = "120s"\n\n[[waves]]\nname = "everyone"\npercent = 100\n'
    )
    holder = engine.connect()
    tx = holder.begin()
    holder.execute(
        text(
            "INSERT INTO organizations (name, label, owner_id, created_at) VALUES ('zz-late', 'Z', 1, now())"
        )
    )
    process, _ = _rollout(url, plan, "run", "--wave", "everyone")
    deadline = time.monotonic() + 60
    while not _scalar(
        engine,
        "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'rollout' AND wait_event_type = 'Lock'",
    ):
        if time.monotonic() > deadline or process.poll() is not None:
            print("  SIGTERM during a lock wait: the run never waited")
            break
        time.sleep(0.05)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate()
    took = time.monotonic() - sent
    tx.rollback()
    holder.close()
    engine.dispose()
    print(
        f"  SIGTERM during a lock wait: exit {process.returncode} after {took:.2f} s (at most 5 asked); {out.strip()}"
    )
