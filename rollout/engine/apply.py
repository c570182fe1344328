"""Carrying out a batch's changes (`migration.compute_batch`'s, computed with locks in the same
transaction): organizations created, members and permissions added, projects and billing accounts
moved, each recorded in the ledger as the checkpoint of the batch. A row that changed since it was
read makes the batch retry whole (`ConcurrentChange`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from rollout.engine import ledger
from rollout.engine.changes import BatchChanges
from rollout.errors import ConcurrentChange
from rollout.store.queries import execute, execute_columns, execute_rows, execute_rows_returning


@dataclass(frozen=True)
class Applied:
    """The outcome of a committed batch, for logs and counts."""

    migrated: int
    blocked: int
    deferred: int
    organizations_created: int
    projects_moved: int
    members_added: int
    billing_accounts_moved: int


def apply_batch(
    conn: Connection, changes: BatchChanges, *, run_id: str, wave: str | None, now: datetime
) -> Applied:
    """Carries out changes computed with `lock=True` in the same transaction, with their checkpoints."""
    new = [o for o in changes.owners if not o.existing]
    created = execute_rows_returning(
        conn,
        "insert_organization",
        [{"name": o.organization_name, "label": o.organization_label, "owner_id": o.owner_id} for o in new],
        now=now,
    )
    org_of = {o.owner_id: o.organization_id for o in changes.owners if o.organization_id is not None}
    org_of.update({row.owner_id: row.id for row in created})
    if len(org_of) != len(changes.owners):
        raise ConcurrentChange("an organization of a batch owner vanished before the batch committed")

    # One list per column: the owner (when not a member yet) and the collaborators, all recorded as
    # added; the owner's permissions; the projects with their access digests.
    members: dict[str, list[Any]] = {"organization_id": [], "user_id": [], "owner_id": []}
    permissions: dict[str, list[Any]] = {
        "organization_id": [],
        "user_id": [],
        "permission": [],
        "owner_id": [],
    }
    projects: dict[str, list[Any]] = {
        "project_id": [],
        "owner_id": [],
        "organization_id": [],
        "access_digest": [],
    }
    for o in changes.owners:
        org_id = org_of[o.owner_id]
        joining = ([] if o.owner_is_member else [o.owner_id]) + list(o.members_to_add)
        members["organization_id"] += [org_id] * len(joining)
        members["user_id"] += joining
        members["owner_id"] += [o.owner_id] * len(joining)
        granted = o.owner_permissions_to_add
        permissions["organization_id"] += [org_id] * len(granted)
        permissions["user_id"] += [o.owner_id] * len(granted)
        permissions["permission"] += granted
        permissions["owner_id"] += [o.owner_id] * len(granted)
        digests = dict(o.access_digests)
        projects["project_id"] += o.projects
        projects["owner_id"] += [o.owner_id] * len(o.projects)
        projects["organization_id"] += [org_id] * len(o.projects)
        projects["access_digest"] += [digests[p] for p in o.projects]

    # Each platform write, then its ledger rows; on PostgreSQL the write records them itself (one
    # statement, migration.sql) and the `ledger.record_*` call has nothing left to do.
    execute_columns(conn, "insert_member", members, now=now, run_id=run_id)
    ledger.record_added_members(conn, members, run_id=run_id)
    execute_columns(conn, "insert_permission", permissions, run_id=run_id)
    ledger.record_added_permissions(conn, permissions, run_id=run_id)
    moved = execute_columns(conn, "move_projects", projects, run_id=run_id)
    if moved != len(projects["project_id"]):
        raise ConcurrentChange(
            f"{len(projects['project_id']) - moved} projects changed before they could be moved"
        )
    ledger.record_moved_projects(conn, projects, run_id=run_id)

    billing = [
        {
            "billing_account_id": o.billing_account_id,
            "owner_id": o.owner_id,
            "organization_id": org_of[o.owner_id],
        }
        for o in changes.owners
        if o.billing_account_id is not None
    ]
    if execute_rows(conn, "move_billing_accounts", billing) != len(billing):
        raise ConcurrentChange("a billing account changed before it could be moved")

    ledger.record_migrated(
        conn,
        [
            {
                "owner_id": o.owner_id,
                "organization_id": org_of[o.owner_id],
                "organization_name": o.organization_name,
                "organization_created": not o.existing,
                "billing_account_id": o.billing_account_id,
            }
            for o in changes.owners
        ],
        wave=wave,
        run_id=run_id,
        now=now,
    )
    ledger.record_blocked(
        conn,
        [{"owner_id": b.owner_id, "reason": str(b.reason)} for b in changes.blocked],
        wave=wave,
        run_id=run_id,
        now=now,
    )
    ledger.record_deferred(conn, changes.deferred, wave=wave, run_id=run_id, now=now)
    # A name planned for an owner is its organization's now (or it reused one); a blocked owner
    # gives its name up.
    released = [o.owner_id for o in changes.owners] + [b.owner_id for b in changes.blocked]
    if released:
        execute(conn, "release_names", owner_ids=released)
    return Applied(
        migrated=len(changes.owners),
        blocked=len(changes.blocked),
        deferred=len(changes.deferred),
        organizations_created=len(new),
        projects_moved=len(projects["project_id"]),
        members_added=sum(len(o.members_to_add) for o in changes.owners),
        billing_accounts_moved=len(billing),
    )
