"""Migrating an owner step by step on hand-built data, on SQLite and PostgreSQL, asserting platform rows."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from structlog.testing import capture_logs

from rollout.cli import exits
from rollout.engine.waveplan import Wave
from tests.support import (
    Platform,
    inject_failure,
    remove_failure,
    rows,
    run_owner,
    run_wave,
    scalar,
    snapshot,
)

ALL_PERMISSIONS = {"plans", "billing", "projects:create", "members"}


def org_of(engine: Engine, owner_id: int) -> tuple[int, str, str]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT id, name, label FROM organizations WHERE owner_id = :o"), {"o": owner_id}
        ).one()
    return int(row.id), row.name, row.label


def members(engine: Engine, org_id: int) -> set[int]:
    with engine.connect() as conn:
        return {
            r[0]
            for r in conn.execute(
                text("SELECT user_id FROM organization_members WHERE organization_id = :o"), {"o": org_id}
            )
        }


def permissions(engine: Engine, org_id: int) -> set[tuple[int, str]]:
    with engine.connect() as conn:
        return {
            (r[0], r[1])
            for r in conn.execute(
                text(
                    "SELECT user_id, permission FROM organization_member_permissions WHERE organization_id = :o"
                ),
                {"o": org_id},
            )
        }


@pytest.fixture
def alice(engine: Engine) -> Engine:
    """Alice (1) owns an active and a suspended project with collaborators on both levels, a deleted
    project, and a billing account with subscriptions, invoices and vouchers."""
    with engine.begin() as conn:
        p = Platform(conn)
        p.user(1, "Alice Smith", display_name="Alice S.")
        for uid in (2, 3, 4, 6):
            p.user(uid)
        p.user(5, deleted=True)
        p.project(
            "p1",
            1,
            access={2: "admin", 3: "viewer", 1: "admin"},
            environments={"production": {4: "contributor", 5: "viewer"}, "staging": {2: "admin"}},
        )
        p.project("p2", 1, status="suspended", environments={"dev-1": {6: "viewer"}})
        p.project("p3", 1, status="deleted", access={3: "admin"})
        p.billing(user_id=1, projects=("p1", "p2"), invoices=3, vouchers=2)
    return engine


def test_owner_gets_an_organization_with_every_permission_and_nobody_else_any(alice: Engine) -> None:
    """One organization named from the username, labelled with the display name; the
    owner is a member holding all four permissions; no other member holds any."""
    summary = run_wave(alice)
    assert exits.for_run(summary) == 0 and summary.counts.migrated == 1
    org_id, name, label = org_of(alice, 1)
    assert (name, label) == ("alice-smith", "Alice S.")
    assert permissions(alice, org_id) == {(1, p) for p in ALL_PERMISSIONS}


def test_projects_move_and_keep_their_owner(alice: Engine) -> None:
    """Active and suspended projects get the organization; owner_id is unchanged; a deleted
    project is left as it was."""
    run_wave(alice)
    org_id, _, _ = org_of(alice, 1)
    assert rows(alice, "projects", "id") and [(r[0], r[3], r[4]) for r in rows(alice, "projects")] == [
        ("p1", 1, org_id),
        ("p2", 1, org_id),
        ("p3", 1, None),
    ]


def test_collaborators_become_members_but_deleted_users_do_not(alice: Engine) -> None:
    """Project and environment grantees become members without permissions; a deleted
    user with an environment grant does not; nor do grantees of the deleted project only."""
    run_wave(alice)
    org_id, _, _ = org_of(alice, 1)
    assert members(alice, org_id) == {1, 2, 3, 4, 6}
    assert all(user == 1 for user, _ in permissions(alice, org_id))


def test_access_rows_are_untouched_and_billing_moves_with_its_children(alice: Engine) -> None:
    """`project_access` and `environment_access` identical, byte for byte; the billing account
    moves to the organization; subscriptions, invoices and vouchers are not modified."""
    before = snapshot(
        alice, ("project_access", "environment_access", "subscriptions", "invoices", "vouchers")
    )
    run_wave(alice)
    assert snapshot(alice, tuple(before)) == before
    org_id, _, _ = org_of(alice, 1)
    assert [(r[1], r[2]) for r in rows(alice, "billing_accounts")] == [(None, org_id)]


@pytest.fixture
def blocked(engine: Engine) -> Engine:
    """One owner for each blocked reason of the naming rules, and one who is fine."""
    with engine.begin() as conn:
        p = Platform(conn)
        for uid in (10, 20, 30, 40, 99):
            p.user(uid, deleted=(uid == 10))
        p.project("gone", 10, access={99: "viewer"})
        p.organization("twenty-a", 20, members={20: ("plans",)})
        p.organization("twenty-b", 20)
        p.project("several", 20, access={99: "viewer"})
        org30 = p.organization("thirty", 30, members={30: ("plans", "billing", "projects:create", "members")})
        p.billing(organization_id=org30)
        p.project("conflict", 30, access={99: "viewer"})
        p.billing(user_id=30, projects=("conflict",))
        p.project("fine", 40)
    return engine


def test_blocked_owners_are_recorded_with_their_reason_and_never_touched(blocked: Engine) -> None:
    """`owner-deleted`, `owns-several-organizations and billing-conflict owners are recorded
    with that exact reason and nothing of theirs changes; the others migrate."""
    before = snapshot(blocked)
    summary = run_wave(blocked)
    assert (summary.counts.migrated, summary.counts.blocked, exits.for_run(summary)) == (1, 3, 0)
    after = snapshot(blocked)
    for table in ("users", "project_access", "environment_access", "billing_accounts"):
        assert after[table] == before[table], table
    old_orgs = {r[0] for r in before["organizations"]}
    for table in ("organizations", "organization_members", "organization_member_permissions"):
        assert [r for r in after[table] if r[0] in old_orgs] == before[table], table
    assert [r for r in after["projects"] if r[0] != "fine"] == [
        r for r in before["projects"] if r[0] != "fine"
    ]
    reasons = rows(blocked, "rollout_owners", "owner_id")
    assert {(r[0], r[1], r[8]) for r in reasons} == {
        (10, "blocked", "owner-deleted"),
        (20, "blocked", "owns-several-organizations"),
        (30, "blocked", "billing-conflict"),
        (40, "migrated", None),
    }


def test_an_organization_the_owner_already_owns_is_reused(engine: Engine) -> None:
    """The projects move into the one organization the owner owns; its existing members stay,
    the owner's missing permissions are added and recorded, the job records it did not create it."""
    with engine.begin() as conn:
        p = Platform(conn)
        for uid in (1, 2, 3):
            p.user(uid)
        org = p.organization("acme", 1, members={1: ("plans",), 2: ()})
        p.project("in-org", 1, organization_id=org, access={2: "viewer"})
        p.project("legacy", 1, access={3: "admin"})
    run_wave(engine)
    assert scalar(engine, "SELECT COUNT(*) FROM organizations") == 1
    assert scalar(engine, "SELECT organization_id FROM projects WHERE id = 'legacy'") == org
    assert members(engine, org) == {1, 2, 3}
    assert permissions(engine, org) == {(1, p) for p in ALL_PERMISSIONS}
    assert scalar(engine, "SELECT organization_created FROM rollout_owners WHERE owner_id = 1") in (0, False)
    with engine.connect() as conn:
        recorded = {r[0] for r in conn.execute(text("SELECT permission FROM rollout_added_permissions"))}
        added = {r[0] for r in conn.execute(text("SELECT user_id FROM rollout_added_members"))}
    assert recorded == ALL_PERMISSIONS - {"plans"}
    assert added == {3}


def test_a_late_arrival_joins_the_organization_on_the_next_run(alice: Engine) -> None:
    """A legacy project created after the owner was migrated moves into the same
    organization on the next run, and its collaborators become members."""
    run_wave(alice)
    org_id, _, _ = org_of(alice, 1)
    with alice.begin() as conn:
        Platform(conn).user(7)
        Platform(conn).project("late", 1, access={7: "viewer"})
    summary = run_wave(alice)
    assert summary.counts.migrated == 1
    assert scalar(alice, "SELECT organization_id FROM projects WHERE id = 'late'") == org_id
    assert scalar(alice, "SELECT COUNT(*) FROM organizations WHERE owner_id = 1") == 1
    assert 7 in members(alice, org_id)
    assert scalar(alice, "SELECT organization_created FROM rollout_owners WHERE owner_id = 1") in (1, True)


def test_a_second_run_changes_nothing(alice: Engine, engine: Engine) -> None:
    """Re-running is safe; a finished wave run again leaves every platform table as it was."""
    run_wave(alice)
    before = snapshot(alice)
    summary = run_wave(alice)
    assert summary.counts.attempted == 0
    assert snapshot(alice) == before


def test_a_failing_owner_is_isolated_and_leaves_nothing_half_done(engine: Engine) -> None:
    """An exception in the middle of a batch fails only its owner, recorded with the error;
    the rest of the batch migrates; the failed owner has no organization and no changed row; it is
    retried only with --retry-failed, after which the wave completes."""
    with engine.begin() as conn:
        p = Platform(conn)
        p.user(100)
        for owner in range(1, 11):
            p.user(owner)
            p.project(f"p{owner}", owner, access={100: "viewer"})
            p.billing(user_id=owner, projects=(f"p{owner}",))
    inject_failure(engine, "NEW.id = 'p5'")
    with capture_logs() as logged:
        summary = run_wave(engine, batch_size=10)
    assert (summary.counts.migrated, summary.counts.failed, exits.for_run(summary)) == (9, 1, 1)
    # Owners 1-10, owner 5 failing: 10 splits into 1-5 and 6-10, 1-5 into 1-2 and 3-5, 3-5 into 3
    # and 4-5, 4-5 into 4 and 5 alone. The others commit in four batches.
    assert [e["owners"] for e in logged if e["event"] == "batch.split"] == [10, 5, 3, 2]
    failed = [e for e in logged if e["event"] == "owner.failed"]
    assert [e["owner_id"] for e in failed] == [5] and "injected failure" in failed[0]["error"]
    committed = [e for e in logged if e["event"] == "batch.committed"]
    assert [e["owners"] for e in committed] == [2, 1, 1, 5] and sum(e["migrated"] for e in committed) == 9
    assert all({"owners", "duration_s", "rate_owners_per_s", "projects_moved"} <= set(e) for e in committed)
    assert scalar(engine, "SELECT COUNT(*) FROM organizations WHERE owner_id = 5") == 0
    assert scalar(engine, "SELECT organization_id FROM projects WHERE id = 'p5'") is None
    assert (
        scalar(
            engine,
            "SELECT user_id FROM billing_accounts WHERE id = (SELECT billing_account_id FROM subscriptions WHERE project_id = 'p5')",
        )
        == 5
    )
    assert scalar(engine, "SELECT state FROM rollout_owners WHERE owner_id = 5") == "failed"
    assert "injected failure" in scalar(engine, "SELECT error FROM rollout_owners WHERE owner_id = 5")

    remove_failure(engine)
    assert run_wave(engine).counts.attempted == 0
    summary = run_wave(engine, retry_failed=True)
    assert (summary.counts.migrated, exits.for_run(summary)) == (1, 0)
    assert scalar(engine, "SELECT COUNT(*) FROM projects WHERE organization_id IS NULL") == 0


COLLIDING = {3: "Alice", 5: "alice!", 8: "ALICE_", 9: "Ålice", 12: "alice"}


@pytest.mark.parametrize("batch_size", [1, 2, 500])
def test_colliding_names_follow_user_id_order_whatever_the_batch_size(
    engine: Engine, batch_size: int
) -> None:
    """An existing organization holds 'alice'; owners whose usernames all fold to 'alice' are
    named -2, -3, ... in order of user id, the same for every batch size."""
    with engine.begin() as conn:
        p = Platform(conn)
        p.user(1, "someone-else")
        p.organization("alice", 1, members={1: tuple(ALL_PERMISSIONS)})
        for uid, username in COLLIDING.items():
            p.user(uid, username)
            p.project(f"p{uid}", uid)
    run_wave(engine, batch_size=batch_size)
    with engine.connect() as conn:
        names = dict(conn.execute(text("SELECT owner_id, name FROM organizations WHERE owner_id <> 1")).all())
    assert names == {3: "alice-2", 5: "alice-3", 8: "alice-4", 9: "alice-5", 12: "alice-6"}


def test_names_are_given_across_runs_in_the_order_waves_reach_owners(engine: Engine) -> None:
    """A later wave never renames; the owner a wave reaches first keeps the plain name."""
    with engine.begin() as conn:
        p = Platform(conn)
        for uid, username in COLLIDING.items():
            p.user(uid, username)
            p.project(f"p{uid}", uid)
    run_wave(engine, Wave(name="canary", owners=(9,)))
    run_wave(engine)
    with engine.connect() as conn:
        names = dict(conn.execute(text("SELECT owner_id, name FROM organizations")).all())
    assert names == {9: "alice", 3: "alice-2", 5: "alice-3", 8: "alice-4", 12: "alice-5"}


def test_run_owner_migrates_one_owner_only(alice: Engine) -> None:
    """`run --owner` migrates exactly that owner."""
    with alice.begin() as conn:
        Platform(conn).user(50)
        Platform(conn).project("other", 50)
    summary = run_owner(alice, 1)
    assert summary.counts.migrated == 1
    assert scalar(alice, "SELECT organization_id FROM projects WHERE id = 'other'") is None
