"""Beside a live platform: its writes during a batch wait for the batch and are swept after it;
its writes after a migration are swept by the next run; a held row defers its owner, never fails it.

The batch window is opened from the database side: a trigger sleeps inside the batch's transaction
when it records a chosen owner, after every read and write of the batch and before its commit.
Platform writes made meanwhile, from other connections, go through the platform's own SQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from structlog.testing import capture_logs

from rollout.engine.states import OwnerState
from rollout.engine.waveplan import RolloutSettings, Wave
from rollout.operations.verify import Cause, verify
from tests.support import EVERYONE, T0, Platform, run_wave, scalar

FAST_RETRIES = RolloutSettings(batch_size=10, retry_deferred_for=timedelta(seconds=30))


def sweep(engine: Engine) -> None:
    """`rollout sweep` in process: every migrated owner with late platform writes."""
    from rollout.engine.history import new_run_id
    from rollout.engine.runner import Runner
    from rollout.engine.selection import sweep_owners
    from rollout.engine.states import RunMode

    Runner(engine, FAST_RETRIES, run_id=new_run_id(), mode=RunMode.SWEEP, wave=None).run(
        sweep_owners(engine, None, FAST_RETRIES.salt)
    )


def member(engine: Engine, organization_id: int, user_id: int) -> bool:
    sql = "SELECT COUNT(*) FROM organization_members WHERE organization_id = :o AND user_id = :u"
    with engine.connect() as conn:
        return bool(conn.execute(text(sql), {"o": organization_id, "u": user_id}).scalar())


def postgresql_only(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite's batch holds the whole database")


def wave_in_background(engine: Engine) -> tuple[threading.Thread, dict[str, object]]:
    """The wave run on a thread (FAST_RETRIES); its summary lands in the dict under `summary`."""
    result: dict[str, object] = {}
    run = threading.Thread(target=lambda: result.update(summary=run_wave(engine, settings=FAST_RETRIES)))
    run.start()
    return run, result


def until_migrated(engine: Engine, owners: int) -> None:
    """Waits (20 s at most) until the ledger has that many migrated owners."""
    deadline = time.monotonic() + 20
    while scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'") < owners:
        assert time.monotonic() < deadline, "the rest of the wave did not go on"
        time.sleep(0.05)


@pytest.fixture
def window(engine: Engine) -> Iterator[Callable[[int, float], None]]:
    """`open(owner, seconds)`: the batch that records `owner` sleeps that long before it commits."""
    postgresql_only(engine)

    def open_window(owner_id: int, seconds: float) -> None:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE FUNCTION test_window() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    f"IF NEW.owner_id = {owner_id} AND NEW.state = 'migrated' THEN PERFORM pg_sleep({seconds}); END IF; "
                    "RETURN NEW; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER test_window BEFORE INSERT ON rollout_owners "
                    "FOR EACH ROW EXECUTE FUNCTION test_window()"
                )
            )

    yield open_window


def in_window(engine: Engine, timeout: float = 20) -> None:
    """Waits until a session of the job sleeps in the window."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if scalar(engine, "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"):
            return
        time.sleep(0.05)
    raise AssertionError("the batch never reached its window")


class Writer(threading.Thread):
    """One platform write, committed from its own connection; remembers how long it waited."""

    def __init__(self, engine: Engine, sql: str) -> None:
        super().__init__(daemon=True)
        self.engine, self.sql, self.waited = engine, sql, 0.0

    def run(self) -> None:
        started = time.monotonic()
        with self.engine.begin() as conn:
            conn.execute(text(self.sql), {"t0": T0})
        self.waited = time.monotonic() - started


def platform(engine: Engine) -> None:
    """Owners 1 to 4 with a project each; 1's has an environment; 300 collaborates on 1's."""
    with engine.begin() as conn:
        p = Platform(conn)
        for user in (1, 2, 3, 4, 200, 300):
            p.user(user)
        p.project("p1", 1, access={300: "viewer"}, environments={"production": {300: "admin"}})
        p.project("p2", 2)
        p.project("p3", 3)
        p.project("p4", 4)


def test_writes_committed_inside_a_batch_wait_for_it_and_are_honoured_after_one_sweep(
    engine: Engine, window: Callable[[int, float], None]
) -> None:
    """An environment grant on a moving project, a billing account and an organization created for
    owners of the batch, a collaborator and an owner soft-deleted: each waits for the batch's locks
    and lands after its commit; one sweep honours the grant and the billing account (a second finds
    nothing left); `verify` then reports no violation of the job's own, and the second organization
    as the platform's."""
    platform(engine)
    window(3, 2.0)
    run = threading.Thread(target=lambda: run_wave(engine, settings=FAST_RETRIES))
    run.start()
    in_window(engine)
    env = scalar(engine, "SELECT id FROM environments WHERE project_id = 'p1'")
    writers = [
        Writer(
            engine,
            f"INSERT INTO environment_access (environment_id, user_id, role) VALUES ({env}, 200, 'viewer')",
        ),
        Writer(engine, "INSERT INTO billing_accounts (id, user_id) VALUES (900, 2)"),
        Writer(
            engine,
            "INSERT INTO organizations (name, label, owner_id, created_at) VALUES ('third', 'T', 3, :t0)",
        ),
        Writer(engine, "UPDATE users SET deleted_at = :t0 WHERE id = 300"),
        Writer(engine, "UPDATE users SET deleted_at = :t0 WHERE id = 4"),
    ]
    for writer in writers:
        writer.start()
    run.join(timeout=60)
    for writer in writers:
        writer.join(timeout=30)
    # Every write waited for the batch: it could not land in the middle of it.
    assert all(w.waited > 0.5 for w in writers), [round(w.waited, 2) for w in writers]
    # The owner soft-deleted meanwhile was active when the batch committed: it is migrated.
    assert scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'") == 4
    org1 = scalar(engine, "SELECT organization_id FROM projects WHERE id = 'p1'")
    org2 = scalar(engine, "SELECT organization_id FROM projects WHERE id = 'p2'")
    # The collaborator was active when the batch committed; the deletion came after.
    assert (
        scalar(
            engine,
            f"SELECT COUNT(*) FROM organization_members WHERE organization_id = {org1} AND user_id = 300",
        )
        == 1
    )
    # The grant landed after the batch, decided on the legacy model: no membership yet. One sweep
    # takes it in (and the billing account); a second finds nothing left.
    assert not member(engine, org1, 200)
    sweep(engine)
    before = scalar(engine, "SELECT COUNT(*) FROM rollout_added_members")
    sweep(engine)
    assert scalar(engine, "SELECT COUNT(*) FROM rollout_added_members") == before
    assert (
        scalar(
            engine,
            f"SELECT COUNT(*) FROM organization_members WHERE organization_id = {org1} AND user_id = 200",
        )
        == 1
    )
    assert scalar(engine, "SELECT organization_id FROM billing_accounts WHERE id = 900") == org2
    assert scalar(engine, "SELECT user_id FROM billing_accounts WHERE id = 900") is None
    report = verify(engine)
    assert report.count(Cause.JOB) == 0, report.violations
    drift = {(v.owner_id, v.name) for v in report.violations}
    assert (3, "owns-one-organization") in drift
    # The sweep recorded what it did: the member it added is undone by a rollback like the rest.
    assert (
        scalar(
            engine,
            f"SELECT COUNT(*) FROM rollout_added_members WHERE organization_id = {org1} AND user_id = 200",
        )
        == 1
    )


def test_late_writes_by_legacy_code_paths_are_swept_by_the_next_run(engine: Engine) -> None:
    """After the migration the platform, through old code paths, adds a legacy project, grants
    project and environment access to non-members, and creates billing accounts on owners' users
    (one whose organization has none, one whose organization has one). The next run of the wave
    moves the project, adds the members and moves the first account; the second stays and is
    reported as the platform's, like an organization created for a migrated owner."""
    with engine.begin() as conn:
        p = Platform(conn)
        for user in (1, 2, 3, 4, 200, 201):
            p.user(user)
        p.project("p1", 1, environments={"production": {}})
        p.project("p2", 2)
        p.project("p3", 3)
        p.project("p4", 4)
        p.billing(user_id=4, projects=("p4",), id=40)
    assert run_wave(engine).counts.migrated == 4
    env = scalar(engine, "SELECT id FROM environments WHERE project_id = 'p1'")
    org = {o: scalar(engine, f"SELECT organization_id FROM projects WHERE id = 'p{o}'") for o in (1, 2, 3, 4)}
    with engine.begin() as conn:
        p = Platform(conn)
        p.project("p1-late", 1)
        conn.execute(
            text("INSERT INTO project_access (project_id, user_id, role) VALUES ('p2', 200, 'viewer')")
        )
        conn.execute(
            text(
                f"INSERT INTO environment_access (environment_id, user_id, role) VALUES ({env}, 201, 'admin')"
            )
        )
        p.billing(user_id=3, id=30)
        p.billing(user_id=4, id=41)
        conn.execute(
            text(
                "INSERT INTO organizations (name, label, owner_id, created_at) VALUES ('extra', 'E', 2, :t)"
            ),
            {"t": T0},
        )

    with capture_logs() as logged:
        summary = run_wave(engine)
    assert summary.counts.failed == 0
    assert scalar(engine, "SELECT organization_id FROM projects WHERE id = 'p1-late'") == org[1]
    assert (
        scalar(
            engine,
            f"SELECT COUNT(*) FROM organization_members WHERE organization_id = {org[1]} AND user_id = 201",
        )
        == 1
    )
    assert scalar(engine, "SELECT organization_id FROM billing_accounts WHERE id = 30") == org[3]
    assert scalar(engine, "SELECT user_id FROM billing_accounts WHERE id = 41") == 4
    # Owner 2 owns two organizations now: reported, never touched (its late grant waits with it).
    assert (
        scalar(
            engine,
            f"SELECT COUNT(*) FROM organization_members WHERE organization_id = {org[2]} AND user_id = 200",
        )
        == 0
    )
    assert scalar(engine, "SELECT state, reason FROM rollout_owners WHERE owner_id = 2") == "migrated"
    assert any(e["event"] == "batch.committed" for e in logged)

    report = verify(engine)
    assert report.count(Cause.JOB) == 0, report.violations
    platform_writes = {(v.owner_id, v.name) for v in report.violations}
    assert {(2, "owns-one-organization"), (4, "billing-in-organization")} <= platform_writes


def test_a_project_moved_back_to_legacy_by_hand_is_moved_again_not_failed(engine: Engine) -> None:
    """Someone sets a migrated project's organization back to NULL in SQL: the next run treats it
    as a late arrival and records it again, instead of failing on the ledger's own key."""
    with engine.begin() as conn:
        p = Platform(conn)
        p.user(1)
        p.project("p1", 1)
    run_wave(engine)
    org = scalar(engine, "SELECT organization_id FROM projects WHERE id = 'p1'")
    with engine.begin() as conn:
        conn.execute(text("UPDATE projects SET organization_id = NULL WHERE id = 'p1'"))
    summary = run_wave(engine)
    assert (summary.counts.failed, summary.counts.migrated) == (0, 1)
    assert scalar(engine, "SELECT organization_id FROM projects WHERE id = 'p1'") == org
    assert verify(engine).ok


def test_a_held_row_defers_its_owner_and_the_rest_of_the_wave_goes_on(engine: Engine) -> None:
    """A platform transaction holds one owner's project for a few seconds: the other owners of the
    wave are migrated meanwhile, that owner is deferred (never failed, never split down to), and the
    run migrates it at its end once the row is free."""
    postgresql_only(engine)
    with engine.begin() as conn:
        p = Platform(conn)
        for owner in range(1, 21):
            p.user(owner)
            p.project(f"p{owner}", owner)
    holder = engine.connect()
    held = holder.begin()
    holder.execute(text("SELECT 1 FROM projects WHERE id = 'p7' FOR UPDATE"))
    with capture_logs() as logged:
        run, result = wave_in_background(engine)
        until_migrated(engine, 19)
        assert (
            run.is_alive()
            and scalar(engine, "SELECT state FROM rollout_owners WHERE owner_id = 7") == "deferred"
        )
        time.sleep(1.5)
        held.commit()
        holder.close()
        run.join(timeout=60)
    summary = result["summary"]
    assert summary.counts.migrated == 20 and summary.counts.failed == 0 and summary.counts.deferred == 0  # type: ignore[attr-defined]
    assert scalar(engine, "SELECT state FROM rollout_owners WHERE owner_id = 7") == OwnerState.MIGRATED
    assert not [e for e in logged if e["event"] in ("batch.split", "owner.failed")]
    assert sum(e.get("deferred", 0) for e in logged if e["event"] == "batch.committed") >= 1


def test_an_environment_grant_being_inserted_defers_its_owner_until_it_commits(engine: Engine) -> None:
    """A platform transaction is adding a grant on an environment of a moving project (its foreign
    key holds the environment row): that owner is deferred, the others are migrated, and once the
    grant commits the owner is migrated with the new grantee as a member and the grant in its
    project's digest."""
    postgresql_only(engine)
    with engine.begin() as conn:
        p = Platform(conn)
        for owner in range(1, 6):
            p.user(owner)
            p.project(f"p{owner}", owner, environments={"production": {}})
        p.user(300)
    env = scalar(engine, "SELECT id FROM environments WHERE project_id = 'p3'")
    holder = engine.connect()
    held = holder.begin()
    holder.execute(
        text(f"INSERT INTO environment_access (environment_id, user_id, role) VALUES ({env}, 300, 'admin')")
    )
    run, result = wave_in_background(engine)
    until_migrated(engine, 4)
    assert scalar(engine, "SELECT state FROM rollout_owners WHERE owner_id = 3") == "deferred"
    held.commit()
    holder.close()
    run.join(timeout=60)
    summary = result["summary"]
    assert summary.counts.migrated == 5 and summary.counts.failed == 0  # type: ignore[attr-defined]
    org = scalar(engine, "SELECT organization_id FROM projects WHERE id = 'p3'")
    assert member(engine, org, 300)
    assert verify(engine).ok


def test_a_held_deleted_grantee_defers_nobody(engine: Engine) -> None:
    """A deleted user with a grant on a moving project never becomes a member, so a platform
    transaction holding that user's row (here for the whole run) defers nobody: the owner is
    migrated at once, without that member."""
    postgresql_only(engine)
    with engine.begin() as conn:
        p = Platform(conn)
        p.user(1)
        p.user(300, deleted=True)
        p.user(301)
        p.project("p1", 1, access={300: "viewer", 301: "viewer"})
    holder = engine.connect()
    held = holder.begin()
    holder.execute(text("SELECT 1 FROM users WHERE id = 300 FOR UPDATE"))
    try:
        summary = run_wave(engine, settings=RolloutSettings(retry_deferred_for=timedelta(seconds=1)))
    finally:
        held.rollback()
        holder.close()
    assert (summary.outcome, summary.counts.migrated, summary.deferred) == ("succeeded", 1, ())
    org = scalar(engine, "SELECT organization_id FROM projects WHERE id = 'p1'")
    members = scalar(
        engine,
        f"SELECT string_agg(CAST(user_id AS TEXT), ',' ORDER BY user_id) FROM organization_members WHERE organization_id = {org}",
    )
    assert members == "1,301"


def test_an_owner_still_held_at_the_end_stays_deferred_for_later_runs(engine: Engine) -> None:
    """Held longer than the run retries: the owner ends `deferred` (shown by the summary), the run
    succeeds, and the next run migrates it."""
    postgresql_only(engine)
    with engine.begin() as conn:
        p = Platform(conn)
        for owner in (1, 2):
            p.user(owner)
            p.project(f"p{owner}", owner)
    holder = engine.connect()
    held = holder.begin()
    holder.execute(text("SELECT 1 FROM users WHERE id = 2 FOR UPDATE"))
    quick = RolloutSettings(retry_deferred_for=timedelta(seconds=1))
    summary = run_wave(engine, settings=quick)
    assert (summary.outcome, summary.counts.migrated, summary.deferred) == ("succeeded", 1, (2,))
    held.rollback()
    holder.close()
    assert run_wave(engine, Wave("everyone", percent=100)).counts.migrated == 1
    assert run_wave(engine, EVERYONE).counts.attempted == 0
