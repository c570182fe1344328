"""Rollback restores exactly what was there, from what the job recorded."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

from rollout.engine.history import new_run_id
from rollout.engine.waveplan import RolloutSettings, Wave, WavePlan
from rollout.operations.rollback import rollback, wave_migrated_owners
from tests.support import Platform, run_owner, run_wave, scalar, snapshot

PERMS = ("plans", "billing", "projects:create", "members")


def build(engine: Engine) -> None:
    """Owner 1 gets a new organization; owner 2 owns 'acme' (member 9, owner holds 'plans' only) and
    has a legacy project; owner 3 is another owner, untouched by the rollbacks."""
    with engine.begin() as conn:
        p = Platform(conn)
        for uid in (1, 2, 3, 7, 8, 9):
            p.user(uid)
        p.project("a1", 1, access={7: "admin"}, environments={"production": {8: "viewer"}})
        p.project("a2", 1, status="suspended")
        p.billing(user_id=1, projects=("a1",))
        acme = p.organization("acme", 2, members={2: ("plans",), 9: ()})
        p.project("b0", 2, organization_id=acme, access={9: "viewer"})
        p.project("b1", 2, access={7: "viewer", 9: "admin"})
        p.billing(user_id=2, projects=("b1",))
        p.project("c1", 3, access={7: "viewer"})


def test_rollback_of_a_created_organization_restores_the_exact_prior_tables(engine: Engine) -> None:
    """The projects go back, the members and permissions the job added go, the billing account goes
    back to the user and the organization the job created is deleted: every platform table is as
    before for that owner; the owner is recorded rolled-back."""
    build(engine)
    before = snapshot(engine)
    run_wave(engine, Wave(name="w", owners=(1,)))
    assert scalar(engine, "SELECT COUNT(*) FROM organizations WHERE owner_id = 1") == 1
    report = rollback(engine, [1], run_id=new_run_id(), dry_run=False)
    assert report.owners[0].organization_deleted
    assert snapshot(engine) == before
    assert scalar(engine, "SELECT state FROM rollout_owners WHERE owner_id = 1") == "rolled-back"


def test_rollback_of_a_reused_organization_leaves_what_was_there_before(engine: Engine) -> None:
    """Rolling back an owner whose organization was reused keeps the organization, its earlier
    members and the owner's earlier permission; only what the job added goes."""
    build(engine)
    before = snapshot(engine)
    run_wave(engine, Wave(name="w", owners=(2,)))
    assert scalar(engine, "SELECT COUNT(*) FROM organization_member_permissions WHERE user_id = 2") == 4
    report = rollback(engine, [2], run_id=new_run_id(), dry_run=False)
    assert not report.owners[0].organization_deleted
    assert snapshot(engine) == before


def test_a_wave_rollback_undoes_every_owner_of_the_wave_and_nothing_else(engine: Engine) -> None:
    """`rollback --wave` takes the owners that wave's runs migrated; an owner migrated by another
    wave keeps its organization."""
    build(engine)
    before = snapshot(engine)
    run_wave(engine, Wave(name="first", owners=(1, 2)))
    run_wave(engine, Wave(name="second", owners=(3,)))
    after_second = snapshot(engine)
    plan = WavePlan(
        Path("w.toml"),
        RolloutSettings(),
        (Wave(name="first", owners=(1, 2)), Wave(name="second", owners=(3,))),
    )
    report = rollback(
        engine, wave_migrated_owners(engine, plan, plan.wave("first")), run_id=new_run_id(), dry_run=False
    )
    assert sorted(o.owner_id for o in report.owners) == [1, 2]
    now = snapshot(engine)
    assert [r for r in now["projects"] if r[3] in (1, 2)] == [r for r in before["projects"] if r[3] in (1, 2)]
    assert [r for r in now["projects"] if r[3] == 3] == [r for r in after_second["projects"] if r[3] == 3]
    assert scalar(engine, "SELECT COUNT(*) FROM organizations WHERE owner_id = 3") == 1


def test_dry_run_writes_nothing_and_reports_what_a_rollback_does(engine: Engine) -> None:
    """--dry-run: every table, the job's included, unchanged; its report equals the real one's."""
    build(engine)
    run_wave(engine)
    tables = (
        *snapshot(engine),
        "rollout_owners",
        "rollout_moved_projects",
        "rollout_added_members",
        "rollout_added_permissions",
    )
    before = snapshot(engine, tables)
    dry = rollback(engine, [1, 2], run_id="dry", dry_run=True)
    assert snapshot(engine, tables) == before
    real = rollback(engine, [1, 2], run_id="real", dry_run=False)
    assert dry.owners == real.owners and len(real.owners) == 2


def test_a_rolled_back_owner_is_skipped_by_its_wave_and_migrated_again_by_run_owner(engine: Engine) -> None:
    """Waves skip rolled-back owners; `run --owner` migrates them again on purpose, with a fresh
    organization, and verify-relevant records are rebuilt."""
    build(engine)
    run_wave(engine)
    rollback(engine, [1], run_id=new_run_id(), dry_run=False)
    assert run_wave(engine).counts.attempted == 0
    assert scalar(engine, "SELECT organization_id FROM projects WHERE id = 'a1'") is None
    summary = run_owner(engine, 1)
    assert summary.counts.migrated == 1
    assert scalar(engine, "SELECT state FROM rollout_owners WHERE owner_id = 1") == "migrated"
    assert scalar(engine, "SELECT organization_created FROM rollout_owners WHERE owner_id = 1") in (1, True)
    with engine.connect() as conn:
        org = conn.execute(text("SELECT organization_id FROM projects WHERE id = 'a1'")).scalar()
        assert org is not None
        assert (
            conn.execute(text("SELECT COUNT(*) FROM rollout_moved_projects WHERE owner_id = 1")).scalar() == 2
        )


def test_an_owner_whose_rollback_fails_is_isolated_and_reported(engine: Engine) -> None:
    """Owner 1's billing account cannot go back (the user opened a new one since): owner 1 is reported
    failed and stays migrated, untouched; owner 2 in the same batch is rolled back."""
    build(engine)
    run_wave(engine, Wave(name="w", owners=(1, 2)))
    with engine.begin() as conn:
        Platform(conn).billing(user_id=1, id=900)
    report = rollback(engine, [1, 2], run_id=new_run_id(), dry_run=False)
    assert [o.owner_id for o in report.owners] == [2]
    assert [owner for owner, _ in report.failed] == [1]
    assert scalar(engine, "SELECT state FROM rollout_owners WHERE owner_id = 1") == "migrated"
    assert (
        scalar(engine, "SELECT COUNT(*) FROM projects WHERE owner_id = 1 AND organization_id IS NOT NULL")
        == 2
    )
    assert scalar(engine, "SELECT state FROM rollout_owners WHERE owner_id = 2") == "rolled-back"


def test_an_organization_kept_because_it_is_in_use_keeps_its_owner(engine: Engine) -> None:
    """A project was put into the job's organization by someone else since: the organization survives
    the rollback, and its owner stays a member with every permission; collaborators the job added go."""
    build(engine)
    run_wave(engine, Wave(name="w", owners=(1,)))
    org = scalar(engine, "SELECT id FROM organizations WHERE owner_id = 1")
    with engine.begin() as conn:
        Platform(conn).project("new-flow", 1, organization_id=org)
    report = rollback(engine, [1], run_id=new_run_id(), dry_run=False)
    assert not report.owners[0].organization_deleted
    assert 1 not in report.owners[0].members_removed
    with engine.connect() as conn:
        members = {
            r[0]
            for r in conn.execute(
                text("SELECT user_id FROM organization_members WHERE organization_id = :o"), {"o": org}
            )
        }
        perms = {
            r[0]
            for r in conn.execute(
                text(
                    "SELECT permission FROM organization_member_permissions WHERE organization_id = :o AND user_id = 1"
                ),
                {"o": org},
            )
        }
    assert members == {1}
    assert perms == set(PERMS)
    assert scalar(engine, "SELECT organization_id FROM projects WHERE id = 'a1'") is None


def test_a_wave_rollback_includes_owners_migrated_one_by_one_that_it_counts(engine: Engine) -> None:
    """An owner the wave lists but that was migrated with `run --owner` (no wave recorded) is
    counted under the wave by `status`, so `rollback --wave` undoes it too."""
    build(engine)
    run_owner(engine, 1)
    run_wave(engine, Wave(name="first", owners=(1, 2)))
    plan = WavePlan(Path("w.toml"), RolloutSettings(), (Wave(name="first", owners=(1, 2)),))
    assert scalar(engine, "SELECT wave FROM rollout_owners WHERE owner_id = 1") is None
    report = rollback(
        engine, wave_migrated_owners(engine, plan, plan.wave("first")), run_id=new_run_id(), dry_run=False
    )
    assert sorted(o.owner_id for o in report.owners) == [1, 2]
    # Owner 1's organization (created by the job) is gone; owner 2's own 'acme' stays.
    assert scalar(engine, "SELECT COUNT(*) FROM organizations WHERE owner_id = 1") == 0
    assert (
        scalar(
            engine,
            "SELECT COUNT(*) FROM projects WHERE owner_id IN (1, 2) AND id <> 'b0' AND organization_id IS NOT NULL",
        )
        == 0
    )


def test_rollback_undoes_what_a_sweep_did_too(engine: Engine) -> None:
    """After the migration the platform adds a legacy project, a grant to a non-member and a billing
    account on an owner's user; the next run's sweep moves the project, adds the member and moves
    the account. A rollback of the owners then leaves the platform exactly as the late writes left
    it: what the sweep did is undone like the rest, what the platform wrote stays."""
    with engine.begin() as conn:
        p = Platform(conn)
        for uid in (1, 2, 3, 200):
            p.user(uid)
        p.project("p1", 1)
        p.project("p2", 2)
        p.project("p3", 3)
    before = snapshot(engine)
    assert run_wave(engine).counts.migrated == 3
    with engine.begin() as conn:
        p = Platform(conn)
        p.project("p1-late", 1)
        conn.execute(
            text("INSERT INTO project_access (project_id, user_id, role) VALUES ('p2', 200, 'viewer')")
        )
        conn.execute(text("INSERT INTO billing_accounts (id, user_id) VALUES (30, 3)"))
    swept = run_wave(engine)
    # The late project makes owner 1 a legacy owner again (its late arrival); the others are swept.
    assert (swept.counts.migrated, swept.counts.swept) == (1, 2)
    assert scalar(engine, "SELECT organization_id IS NOT NULL FROM projects WHERE id = 'p1-late'")
    assert scalar(engine, "SELECT organization_id IS NOT NULL FROM billing_accounts WHERE id = 30")
    assert scalar(engine, "SELECT COUNT(*) FROM organization_members WHERE user_id = 200") == 1
    report = rollback(engine, [1, 2, 3], run_id=new_run_id(), dry_run=False)
    assert not report.failed and all(o.organization_deleted for o in report.owners)
    # What is left is the platform before the migration plus its own late rows, as it wrote them.
    assert scalar(engine, "SELECT organization_id FROM projects WHERE id = 'p1-late'") is None
    assert (
        scalar(engine, "SELECT user_id FROM billing_accounts WHERE id = 30 AND organization_id IS NULL") == 3
    )
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM project_access WHERE project_id = 'p2' AND user_id = 200"))
        conn.execute(text("DELETE FROM billing_accounts WHERE id = 30"))
        conn.execute(text("DELETE FROM projects WHERE id = 'p1-late'"))
    assert snapshot(engine) == before
