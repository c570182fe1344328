"""`verify` passes after a clean run and names the owner and invariant of each breakage."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from rollout.operations.verify import verify
from tests.support import Platform, run_wave


@pytest.fixture
def migrated(engine: Engine) -> Engine:
    with engine.begin() as conn:
        p = Platform(conn)
        for uid in (1, 2, 7, 8):
            p.user(uid)
        p.project("a1", 1, access={7: "admin"}, environments={"production": {8: "viewer"}})
        p.billing(user_id=1, projects=("a1",))
        p.project("b1", 2, access={7: "viewer"})
    run_wave(engine)
    return engine


def org(engine: Engine, owner: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT id FROM organizations WHERE owner_id = :o"), {"o": owner}).scalar_one()
        )


BREAKAGES = {
    "a permission granted to a member": (
        4,
        "INSERT INTO organization_member_permissions (organization_id, user_id, permission) VALUES (:org, 7, 'billing')",
    ),
    "a project moved out": (2, "UPDATE projects SET organization_id = NULL WHERE id = 'a1'"),
    "a member removed": (3, "DELETE FROM organization_members WHERE organization_id = :org AND user_id = 8"),
    "an access row changed": (5, "UPDATE environment_access SET role = 'admin' WHERE user_id = 8"),
    "billing moved back": (
        6,
        "UPDATE billing_accounts SET organization_id = NULL, user_id = 1 WHERE organization_id = :org",
    ),
    "an owner permission revoked": (
        1,
        "DELETE FROM organization_member_permissions WHERE organization_id = :org AND permission = 'members'",
    ),
    "a second organization": (
        1,
        "INSERT INTO organizations (name, label, owner_id, created_at) SELECT 'second', 'S', 1, created_at FROM users WHERE id = 1",
    ),
}


def test_verify_passes_after_a_clean_run(migrated: Engine) -> None:
    """Every invariant holds for both migrated owners."""
    report = verify(migrated)
    assert report.ok and report.owners_checked == 2


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_verify_catches_each_broken_invariant_naming_the_owner(migrated: Engine, breakage: str) -> None:
    """One invariant broken on purpose for owner 1: exactly that owner and invariant are reported;
    owner 2 stays clean."""
    invariant, statement = BREAKAGES[breakage]
    organization = org(migrated, 1)
    with migrated.begin() as conn:
        conn.execute(text(statement), {"org": organization})
    report = verify(migrated)
    assert not report.ok
    assert {(v.owner_id, v.invariant) for v in report.violations} == {(1, invariant)}, report.violations
