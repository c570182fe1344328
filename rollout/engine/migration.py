"""Migrating one batch of owners: what it would change, computed once, then applied.

`compute_batch` reads the platform tables (locking the moving projects when asked) and returns the
`BatchChanges`; the dry-run report renders them and `apply_batch` carries them out, so the report
and the migration cannot disagree. Each step is a handful of statements for the whole batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from rollout.engine import ledger, naming
from rollout.engine.changes import BatchChanges, BlockedOwner, OwnerChanges, access_digest
from rollout.engine.states import PERMISSIONS, BlockedReason
from rollout.errors import ConcurrentChange
from rollout.store.queries import execute_rows, rows


@dataclass(frozen=True)
class _Owner:
    id: int
    username: str
    display_name: str | None
    deleted: bool


def compute_batch(
    conn: Connection,
    owner_ids: Sequence[int],
    *,
    lock: bool,
    reserved_names: set[str] | None = None,
    planned_names: Mapping[int, str] | None = None,
) -> BatchChanges:
    """What migrating these owners does now.

    With `lock`, the moving projects are locked first and everything is read after the lock, inside
    the caller's transaction. `reserved_names` carries names handed out by earlier batches of a dry
    run, which are not in the database; a real run leaves it empty.
    """
    owner_ids = sorted(set(owner_ids))
    projects_by_owner: dict[int, list[str]] = defaultdict(list)
    for row in rows(conn, "lock_projects" if lock else "legacy_projects", owner_ids=owner_ids):
        projects_by_owner[row.owner_id].append(row.id)

    users = {
        row.id: _Owner(row.id, row.username, row.display_name, bool(row.deleted))
        for row in rows(conn, "owner_users", owner_ids=owner_ids)
    }
    organizations: dict[int, list[Any]] = defaultdict(list)
    for row in rows(conn, "owned_organizations", owner_ids=owner_ids):
        organizations[row.owner_id].append(row)
    owner_billing = {row.user_id: row.id for row in rows(conn, "owner_billing_accounts", owner_ids=owner_ids)}
    single_orgs = [orgs[0].id for orgs in organizations.values() if len(orgs) == 1]
    billed_orgs = {
        row.organization_id
        for row in rows(conn, "organization_billing_accounts", organization_ids=single_orgs)
    }

    blocked: list[BlockedOwner] = []
    movable: list[_Owner] = []
    for owner_id in owner_ids:
        user = users.get(owner_id)
        if user is None or not projects_by_owner.get(owner_id):
            continue  # no longer a legacy owner: migrated meanwhile, or projects moved or deleted
        orgs = organizations.get(owner_id, [])
        reason: BlockedReason | None = None
        if user.deleted:
            reason = BlockedReason.OWNER_DELETED
        elif len(orgs) >= 2:
            reason = BlockedReason.SEVERAL_ORGANIZATIONS
        elif orgs and owner_id in owner_billing and orgs[0].id in billed_orgs:
            reason = BlockedReason.BILLING_CONFLICT
        if reason:
            blocked.append(BlockedOwner(owner_id, user.username, reason))
        else:
            movable.append(user)

    project_ids = [p for owner in movable for p in projects_by_owner[owner.id]]
    project_rows: dict[str, list[Any]] = defaultdict(list)
    for row in rows(conn, "project_access_of", project_ids=project_ids):
        project_rows[row.project_id].append(row)
    environment_rows: dict[str, list[Any]] = defaultdict(list)
    for row in rows(conn, "environment_access_of", project_ids=project_ids):
        environment_rows[row.project_id].append(row)

    reused = {owner.id: organizations[owner.id][0] for owner in movable if organizations.get(owner.id)}
    reused_ids = [org.id for org in reused.values()]
    existing_members: dict[int, set[int]] = defaultdict(set)
    for row in rows(conn, "organization_members_of", organization_ids=reused_ids):
        existing_members[row.organization_id].add(row.user_id)
    owner_permissions: dict[int, set[str]] = defaultdict(set)
    for row in rows(conn, "member_permissions_of", organization_ids=reused_ids, user_ids=[o for o in reused]):
        if reused.get(row.user_id) is not None and reused[row.user_id].id == row.organization_id:
            owner_permissions[row.user_id].add(row.permission)

    names = _new_names(conn, [o for o in movable if o.id not in reused], reserved_names, planned_names or {})

    changes = []
    for owner in movable:
        org = reused.get(owner.id)
        members = existing_members[org.id] if org is not None else set()
        projects = projects_by_owner[owner.id]
        to_add: set[int] = set()
        digests = []
        for project_id in projects:
            p_rows = project_rows.get(project_id, [])
            e_rows = environment_rows.get(project_id, [])
            to_add.update(r.user_id for r in p_rows if r.active)
            to_add.update(r.user_id for r in e_rows if r.active)
            digests.append(
                (project_id, access_digest(p_rows, [(r.environment_id, r.user_id, r.role) for r in e_rows]))
            )
        to_add -= members
        to_add.discard(owner.id)
        held = owner_permissions.get(owner.id, set())
        changes.append(
            OwnerChanges(
                owner_id=owner.id,
                username=owner.username,
                organization_name=org.name if org is not None else names[owner.id],
                organization_label=org.label if org is not None else _label(owner),
                organization_id=org.id if org is not None else None,
                projects=tuple(projects),
                members_to_add=tuple(sorted(to_add)),
                owner_permissions_to_add=tuple(p for p in PERMISSIONS if p not in held),
                owner_is_member=owner.id in members,
                billing_account_id=owner_billing.get(owner.id),
                access_digests=tuple(digests),
            )
        )
    return BatchChanges(tuple(changes), tuple(blocked))


def _label(owner: _Owner) -> str:
    if owner.display_name is not None and owner.display_name.strip():
        return owner.display_name
    return owner.username


def _new_names(
    conn: Connection, owners: Sequence[_Owner], reserved: set[str] | None, planned: Mapping[int, str]
) -> dict[int, str]:
    def taken(candidates: Collection[str]) -> Collection[str]:
        return {row.name for row in rows(conn, "organization_names_taken", names=sorted(candidates))}

    kept = {}
    if planned:
        wanted = {o.id: planned[o.id] for o in owners if o.id in planned}
        unavailable = set(taken(wanted.values()))
        kept = {owner_id: name for owner_id, name in wanted.items() if name not in unavailable}
    reserved = reserved if reserved is not None else set()
    reserved.update(kept.values())
    bases = [(o.id, naming.base_name(o.username, o.id)) for o in owners if o.id not in kept]
    return kept | naming.assign_names(bases, taken, reserved)


@dataclass(frozen=True)
class Applied:
    """The outcome of a committed batch, for logs and counts."""

    migrated: int
    blocked: int
    organizations_created: int
    projects_moved: int
    members_added: int
    billing_accounts_moved: int


def apply_batch(
    conn: Connection, changes: BatchChanges, *, run_id: str, wave: str | None, now: datetime
) -> Applied:
    """Carries out changes computed with `lock=True` in the same transaction, with their checkpoints."""
    new = [o for o in changes.owners if not o.existing]
    execute_rows(
        conn,
        "insert_organization",
        [{"name": o.organization_name, "label": o.organization_label, "owner_id": o.owner_id} for o in new],
        now=now,
    )
    org_of = {o.owner_id: o.organization_id for o in changes.owners if o.organization_id is not None}
    if new:
        created = rows(conn, "organizations_of_owners", owner_ids=[o.owner_id for o in new])
        org_of.update({row.owner_id: row.id for row in created})
    if len(org_of) != len(changes.owners):
        raise ConcurrentChange("an organization of a batch owner vanished before the batch committed")

    members = []  # the owner (when not a member yet) and the collaborators, all recorded as added
    permissions = []
    for o in changes.owners:
        org_id = org_of[o.owner_id]
        joining = ([] if o.owner_is_member else [o.owner_id]) + list(o.members_to_add)
        members += [{"organization_id": org_id, "user_id": u, "owner_id": o.owner_id} for u in joining]
        permissions += [
            {"organization_id": org_id, "user_id": o.owner_id, "permission": p, "owner_id": o.owner_id}
            for p in o.owner_permissions_to_add
        ]
    execute_rows(conn, "insert_member", members, now=now)
    ledger.record_added_members(conn, members, run_id=run_id)
    execute_rows(conn, "insert_permission", permissions)
    ledger.record_added_permissions(conn, permissions, run_id=run_id)

    projects = [
        {"project_id": p, "owner_id": o.owner_id, "organization_id": org_of[o.owner_id]}
        for o in changes.owners
        for p in o.projects
    ]
    moved = execute_rows(conn, "move_projects", projects)
    if moved != len(projects):
        raise ConcurrentChange(f"{len(projects) - moved} projects changed before they could be moved")
    ledger.record_moved_projects(
        conn,
        [
            {
                "project_id": p,
                "owner_id": o.owner_id,
                "organization_id": org_of[o.owner_id],
                "access_digest": d,
            }
            for o in changes.owners
            for p, d in o.access_digests
        ],
        run_id=run_id,
    )

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
    return Applied(
        migrated=len(changes.owners),
        blocked=len(changes.blocked),
        organizations_created=len(new),
        projects_moved=len(projects),
        members_added=sum(len(o.members_to_add) for o in changes.owners),
        billing_accounts_moved=len(billing),
    )
