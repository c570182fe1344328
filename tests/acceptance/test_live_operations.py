"""Stopping and throttling a run beside a live platform, through the real `rollout` command."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.acceptance.test_operations import finish, start
from tests.support import Platform, scalar, write_plan

WAITING_PLAN = """
[rollout]
batch_size = 10
lock_timeout = "60s"

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
        p = Platform(conn)
        p.user(1, "alice")
        p.user(2, "bob")
        p.project("p1", 1)
        p.project("p2", 2)
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
