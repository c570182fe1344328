"""The approved-report check of `run --from-plan`: what still matches the report runs, the rest is
drifted with a reason, and a report changed after it was generated is refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rollout.engine.changes import BatchChanges, BlockedOwner, OwnerChanges
from rollout.engine.states import BlockedReason, OwnerState
from rollout.errors import UsageError
from rollout.operations.approved import ApprovedReport
from rollout.operations.dryrun import Fingerprint, blocked_entry, owner_entry


def owner(owner_id: int, *, name: str | None = None, projects: tuple[str, ...] = ("p",)) -> OwnerChanges:
    return OwnerChanges(
        owner_id=owner_id,
        username=f"user{owner_id}",
        organization_name=name or f"user{owner_id}",
        organization_label=f"User {owner_id}",
        organization_id=None,
        projects=tuple(f"{p}{owner_id}" for p in projects),
        members_to_add=(),
        owner_permissions_to_add=("plans", "billing", "projects:create", "members"),
        owner_is_member=False,
        billing_account_id=None,
        access_digests=(),
    )


def report_of(changes: BatchChanges, wave: str = "w") -> dict[str, Any]:
    fp = Fingerprint(wave)
    owners = [owner_entry(o) for o in changes.owners]
    blocked = [blocked_entry(b) for b in changes.blocked]
    for entry in owners:
        fp.owner(entry)
    for entry in blocked:
        fp.blocked(entry)
    return {"wave": wave, "owners": owners, "blocked": blocked, "fingerprint": fp.hexdigest()}


APPROVED = BatchChanges(
    (owner(1), owner(2), owner(3)), (BlockedOwner(4, "user4", BlockedReason.OWNER_DELETED),)
)


def test_unchanged_owners_are_admitted_and_changed_ones_drift_with_the_reason() -> None:
    """Owner 1 unchanged runs; 2 has another project; 3 is blocked now; 4, blocked in the report,
    is migratable now but was never approved."""
    report = ApprovedReport(report_of(APPROVED), "r.json")
    report.to_attempt({}, retry_failed=False)
    now = BatchChanges(
        (owner(1), owner(2, projects=("p", "q")), owner(4)),
        (BlockedOwner(3, "user3", BlockedReason.BILLING_CONFLICT),),
    )
    admitted, drifted = report.admit(now, [1, 2, 3, 4])
    assert [o.owner_id for o in admitted.owners] == [1]
    why = {d.owner_id: d.why for d in drifted}
    assert why[2] == "changed since the report: projects"
    assert why[3] == "blocked now: billing-conflict"
    assert why[4] == "no longer blocked, but the report did not plan its migration"


def test_an_owner_gone_from_the_legacy_data_drifts_unless_an_earlier_run_of_the_report_migrated_it() -> None:
    report = ApprovedReport(report_of(APPROVED), "r.json")
    report.to_attempt({1: OwnerState.MIGRATED}, retry_failed=False)
    _, drifted = report.admit(BatchChanges((), ()), [1, 2])
    assert [(d.owner_id, d.why) for d in drifted] == [(2, "no legacy project left (changed meanwhile)")]


def test_the_report_owners_attempted_follow_the_recorded_states() -> None:
    """Rolled-back owners wait for `run --owner`; failed ones for --retry-failed."""
    report = ApprovedReport(report_of(APPROVED), "r.json")
    states = {2: OwnerState.ROLLED_BACK, 3: OwnerState.FAILED}
    assert report.to_attempt(states, retry_failed=False) == [1, 4]
    assert report.to_attempt(states, retry_failed=True) == [1, 3, 4]


def test_the_planned_names_are_those_of_new_organizations() -> None:
    report = ApprovedReport(report_of(BatchChanges((owner(1, name="acme-2"),), ())), "r.json")
    assert report.planned_names() == {1: "acme-2"}


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: r["owners"][0]["organization"].update(name="admin"),
        lambda r: r["owners"].pop(),
        lambda r: r["blocked"].clear(),
        lambda r: r.update(wave="other"),
    ],
)
def test_a_report_changed_after_it_was_generated_is_refused(edit: Any) -> None:
    report = copy.deepcopy(report_of(APPROVED))
    edit(report)
    with pytest.raises(UsageError, match="fingerprint mismatch"):
        ApprovedReport(report, "r.json")


@pytest.mark.parametrize("document", [[], {"wave": "w"}, {"wave": "w", "owners": [{}], "fingerprint": "x"}])
def test_what_is_not_a_report_is_a_usage_error(document: Any) -> None:
    with pytest.raises(UsageError, match="not a JSON report"):
        ApprovedReport(document, "r.json")
