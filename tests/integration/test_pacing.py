"""The job yields to the database: it waits while the operator's health query says no, ends a run
throttled too long as `throttled` (work kept), and a lock timeout defers an owner, never fails it."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from structlog.testing import capture_logs

from rollout.engine.history import LastInvocations
from rollout.engine.states import RunOutcome
from rollout.engine.waveplan import RolloutSettings
from rollout.operations.metrics import MetricsSnapshot
from rollout.render.metrics import registry_of
from tests.support import Platform, run_wave, scalar


def owners(engine: Engine, count: int) -> None:
    with engine.begin() as conn:
        p = Platform(conn)
        for owner in range(1, count + 1):
            p.user(owner)
            p.project(f"p{owner}", owner)
        conn.execute(text("CREATE TABLE hold_rollout (reason TEXT)"))
        conn.execute(text("INSERT INTO hold_rollout VALUES ('backup running')"))


HEALTH = "SELECT NOT EXISTS (SELECT 1 FROM hold_rollout)"


def test_the_run_waits_while_the_health_query_says_no(engine: Engine) -> None:
    """After its first batch the run finds the database unhealthy and waits, logging why; once the
    health query says yes again it migrates the rest."""
    owners(engine, 3)
    settings = RolloutSettings(batch_size=1, health_query=HEALTH)
    result = {}
    with capture_logs() as logged:
        run = threading.Thread(target=lambda: result.update(summary=run_wave(engine, settings=settings)))
        run.start()
        time.sleep(2.5)
        migrated_while_red = scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'")
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM hold_rollout"))
        run.join(timeout=30)
    assert migrated_while_red == 1
    summary = result["summary"]
    assert summary.counts.migrated == 3 and summary.outcome is RunOutcome.SUCCEEDED
    assert summary.counts.throttled_seconds >= 2
    throttles = [e for e in logged if e["event"] == "run.throttled"]
    assert throttles and all(e["reason"] == "health query did not return true" for e in throttles)
    assert {e["signal"] for e in throttles} == {"health_query"}
    assert scalar(engine, "SELECT MAX(throttled_seconds) FROM rollout_batches") >= 2
    # Counted in the metrics, by signal.
    assert summary.throttles == (("health_query", len(throttles)),)
    registry = registry_of(MetricsSnapshot((), False, LastInvocations(None, None, None), summary))
    assert registry.get_sample_value("rollout_run_throttles", {"signal": "health_query"}) == len(throttles)
    assert registry.get_sample_value("rollout_run_throttles", {"signal": "replication_lag"}) == 0


def test_a_run_throttled_longer_than_max_throttle_ends_throttled_keeping_its_work(engine: Engine) -> None:
    owners(engine, 3)
    settings = RolloutSettings(batch_size=1, health_query=HEALTH, max_throttle=timedelta(seconds=2))
    summary = run_wave(engine, settings=settings)
    assert summary.outcome is RunOutcome.THROTTLED and summary.counts.migrated == 1
    assert scalar(engine, "SELECT outcome FROM rollout_runs") == "throttled"
    assert scalar(engine, "SELECT COUNT(*) FROM projects WHERE organization_id IS NOT NULL") == 1


def test_a_health_query_that_fails_counts_as_unhealthy(engine: Engine) -> None:
    owners(engine, 2)
    settings = RolloutSettings(
        batch_size=1, health_query="SELECT * FROM no_such_table", max_throttle=timedelta(seconds=1)
    )
    with capture_logs() as logged:
        summary = run_wave(engine, settings=settings)
    assert summary.outcome is RunOutcome.THROTTLED
    assert any("health query failed" in e.get("reason", "") for e in logged)


def test_a_lock_timeout_defers_the_owner_and_spends_no_error_budget(engine: Engine) -> None:
    """The name an owner's organization would take is being inserted by a platform transaction that
    stays open: the batch's insert waits `lock_timeout` (1 s), the owner is deferred, not failed (a
    zero error budget would have halted the run), and the run migrates it once the name is free."""
    if engine.dialect.name != "postgresql":
        pytest.skip("a lock wait inside a statement is PostgreSQL's")
    with engine.begin() as conn:
        Platform(conn).named_owners({1: "alice", 2: "bob"})
    platform = engine.connect()
    held = platform.begin()
    platform.execute(
        text("INSERT INTO organizations (name, label, owner_id, created_at) VALUES ('alice', 'A', 2, now())")
    )
    settings = RolloutSettings(
        batch_size=2,
        lock_timeout=timedelta(seconds=1),
        max_failures=0,
        retry_deferred_for=timedelta(seconds=20),
    )
    result = {}
    with capture_logs() as logged:
        run = threading.Thread(target=lambda: result.update(summary=run_wave(engine, settings=settings)))
        run.start()
        deadline = time.monotonic() + 20
        while (
            scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE owner_id = 1 AND state = 'deferred'")
            == 0
        ):
            assert time.monotonic() < deadline, "owner 1 was never deferred"
            time.sleep(0.05)
        held.rollback()
        platform.close()
        run.join(timeout=60)
    summary = result["summary"]
    assert (summary.counts.migrated, summary.counts.failed, summary.outcome) == (2, 0, RunOutcome.SUCCEEDED)
    assert scalar(engine, "SELECT name FROM organizations WHERE owner_id = 1") == "alice"
    assert [e["owner_id"] for e in logged if e["event"] == "owner.deferred"] == [1]


def slow_owner(engine: Engine, owner_id: int) -> None:
    """Owner `owner_id`'s project update sleeps 2 s (a trigger)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER slow BEFORE UPDATE ON projects FOR EACH ROW"
                f" WHEN (NEW.owner_id = {owner_id}) EXECUTE FUNCTION slow()"
            )
        )


@pytest.mark.parametrize(
    ("smallest", "retry_for", "deferred_whole"),
    [(1, 3, True), (4, 0, False)],
    ids=["above-the-smallest-size", "at-the-smallest-size"],
)
def test_a_statement_timeout_defers_the_batch_whole_until_it_cannot_shrink(
    engine: Engine, smallest: int, retry_for: int, deferred_whole: bool
) -> None:
    """One owner's project update is slow (2 s) and the batch's statements get 1 s. A batch of four
    that can still shrink is deferred whole (no split: each half would time out again), the size
    halves, and the deferred round migrates the others. A batch already at the smallest size is
    split like any failing one: the owner slow even alone is deferred alone, the others go through
    in the same pass. Either way the slow owner is deferred, never failed."""
    if engine.dialect.name != "postgresql":
        pytest.skip("statement_timeout is PostgreSQL's")
    owners(engine, 4)
    slow_owner(engine, 3)
    settings = RolloutSettings(
        batch_size=4,
        min_batch_size=smallest,
        statement_timeout=timedelta(seconds=1),
        max_failures=0,
        retry_deferred_for=timedelta(seconds=retry_for),
    )
    with capture_logs() as logged:
        summary = run_wave(engine, settings=settings)
    events = [e["event"] for e in logged]
    if deferred_whole:
        assert "batch.split" not in events
        assert next(e["owners"] for e in logged if e["event"] == "batch.deferred") == 4
    else:
        assert "batch.deferred" not in events and "batch.split" in events
        assert [e["owner_id"] for e in logged if e["event"] == "owner.deferred"] == [3]
    assert (summary.counts.migrated, summary.counts.failed, summary.deferred) == (3, 0, (3,))
    assert scalar(engine, "SELECT state FROM rollout_owners WHERE owner_id = 3") == "deferred"
    assert scalar(engine, "SELECT COUNT(*) FROM projects WHERE organization_id IS NOT NULL") == 3
