"""Stopping and throttling a run beside a live platform, through the real `rollout` command."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from tests.acceptance.test_operations import finish, start
from tests.support import Platform, rollout, scalar, write_plan

WAITING_PLAN = """
[rollout]
batch_size = 10
lock_timeout = "60s"
statement_timeout = "120s"

[[waves]]
name = "everyone"
percent = 100
"""


def test_sigterm_while_the_batch_waits_on_a_lock_exits_within_seconds(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """A platform transaction is creating an organization with the very name the batch wants, and
    the batch waits on it (up to its 60 s `lock_timeout`). SIGTERM: the waiting statement is
    cancelled, the batch rolls back, the run is recorded `interrupted`, exit 0, within 5 seconds."""
    if engine.dialect.name != "postgresql":
        pytest.skip("a lock wait inside a statement is PostgreSQL's; SQLite waits for the whole database")
    with engine.begin() as conn:
        Platform(conn).named_owners({1: "alice", 2: "bob"})
    platform = engine.connect()
    held = platform.begin()
    platform.execute(
        text("INSERT INTO organizations (name, label, owner_id, created_at) VALUES ('alice', 'A', 2, now())")
    )
    process = start(db_url, write_plan(tmp_path, WAITING_PLAN), "--wave", "everyone")
    try:
        deadline = time.monotonic() + 30
        while not scalar(
            engine,
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'rollout' AND wait_event_type = 'Lock'",
        ):
            assert time.monotonic() < deadline and process.poll() is None, "the batch never waited"
            time.sleep(0.05)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, err = finish(process, timeout=15)
        took = time.monotonic() - sent
    finally:
        held.rollback()
        platform.close()
    assert process.returncode == 0, err
    assert took < 5, f"exited {took:.1f} s after SIGTERM"
    assert "interrupted" in out and "rolled back" in out
    assert scalar(engine, "SELECT outcome FROM rollout_runs") == "interrupted"
    assert scalar(engine, "SELECT COUNT(*) FROM organizations") == 0
    assert scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'") == 0


DEFERRING_PLAN = """
[rollout]
batch_size = 10
retry_deferred_for = "1s"

[[waves]]
name = "everyone"
percent = 100
"""


def test_a_deferred_owner_shows_in_the_summary_status_and_metrics(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """An owner whose user row a platform transaction holds past the run's retries: the run
    succeeds (exit 0) and names it, `status` counts it `deferred` and the wave incomplete, the
    metrics file says so; the next run, once the row is free, completes the wave."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    with engine.begin() as conn:
        p = Platform(conn)
        for owner in (1, 2, 3):
            p.user(owner)
            p.project(f"p{owner}", owner)
    plan = write_plan(tmp_path, DEFERRING_PLAN)
    metrics = tmp_path / "rollout.prom"
    holder = engine.connect()
    held = holder.begin()
    holder.execute(text("SELECT 1 FROM users WHERE id = 2 FOR UPDATE"))
    try:
        result = rollout(
            "run", "--wave", "everyone", "--metrics-file", str(metrics), db_url=db_url, plan=plan
        )
    finally:
        held.rollback()
        holder.close()
    assert result.returncode == 0, result.stderr
    assert "2 migrated" in result.stdout and "1 deferred" in result.stdout
    assert "deferred (rows held by other transactions; later runs try again): 2" in result.stderr
    status = json.loads(rollout("status", "--format", "json", db_url=db_url, plan=plan, check=True).stdout)
    wave = status["waves"][0]
    assert (wave["deferred"], wave["remaining"], wave["complete"]) == (1, 0, False)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.read_text())
        for s in family.samples
    }
    assert samples[("rollout_owners", (("state", "deferred"), ("wave", "everyone")))] == 1
    assert samples[("rollout_run_owners", (("outcome", "deferred"),))] == 1
    assert ("rollout_estimated_seconds_left", (("wave", "everyone"),)) in samples
    again = rollout("run", "--wave", "everyone", db_url=db_url, plan=plan)
    assert again.returncode == 0 and "1 migrated" in again.stdout
    status = json.loads(rollout("status", "--format", "json", db_url=db_url, plan=plan, check=True).stdout)
    assert status["waves"][0]["complete"] is True


def test_rollout_sweep_applies_the_rules_to_late_platform_writes(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """After the wave, the platform grants access on a moved project to a non-member: `rollout
    sweep` makes them a member (exit 0, one line saying so) and a second sweep finds nothing."""
    with engine.begin() as conn:
        p = Platform(conn)
        p.user(1)
        p.user(50)
        p.project("p1", 1)
    plan = write_plan(tmp_path, DEFERRING_PLAN)
    assert rollout("run", "--wave", "everyone", db_url=db_url, plan=plan).returncode == 0
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO project_access (project_id, user_id, role) VALUES ('p1', 50, 'admin')")
        )
    swept = rollout("sweep", db_url=db_url, plan=plan)
    assert swept.returncode == 0, swept.stderr
    assert "1 swept" in swept.stdout
    org = scalar(engine, "SELECT organization_id FROM projects WHERE id = 'p1'")
    assert (
        scalar(
            engine,
            f"SELECT COUNT(*) FROM organization_members WHERE organization_id = {org} AND user_id = 50",
        )
        == 1
    )
    assert "in 0 batches" in rollout("sweep", db_url=db_url, plan=plan, check=True).stdout
