"""Migrating one batch of owners: what it would change, computed once, then applied.

`compute_batch` reads the platform tables (locking the moving projects when asked) and returns the
`BatchChanges`; the dry-run report renders them and `engine.apply.apply_batch` carries them out,
so the report and the migration cannot disagree. Each step is a handful of statements for the whole batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence

from sqlalchemy import Connection

from rollout.engine import naming
from rollout.engine.batchread import (
    BatchRead,
    Owner,
    Reader,
    held_environments,
    read_access,
    read_collaborators,
    read_owners,
)
from rollout.engine.changes import BatchChanges, BlockedOwner, OwnerChanges
from rollout.engine.states import PERMISSIONS, BlockedReason
from rollout.store.queries import rows


def compute_batch(
    conn: Connection,
    owner_ids: Sequence[int],
    *,
    lock: bool,
    reserved_names: set[str] | None = None,
    planned_names: Mapping[int, str] | None = None,
    held_names: Collection[str] = frozenset(),
    forbidden_names: Collection[str] = frozenset(),
) -> BatchChanges:
    """What migrating these owners does now.

    With `lock`, the rows the batch depends on are locked first (`batchread`) and everything is
    read after the locks, inside the caller's transaction; owners with a row held elsewhere are
    deferred. `reserved_names` carries names handed out by earlier batches of a dry run, which are
    not in the database; a real run leaves it empty. An owner who needs a new organization and
    whose name's base is in `held_names` (a deferred owner's, who comes first in user-id order) is
    deferred too, so that names are handed out in user-id order whatever was deferred.

    An owner already migrated is looked at again for what the platform wrote since (late writes):
    legacy projects move into its organization, active users with access to the projects the job
    moved become members, a billing account on the user moves when the organization has none.
    """
    owner_ids = sorted(set(owner_ids))
    reader = Reader(conn, lock=lock)
    read = read_owners(reader, owner_ids)
    candidates, blocked = _triage(read, owner_ids)

    moving = {p: o.id for o in candidates for p in read.projects.get(o.id, [])}
    read.deferred.update(moving[p] for p in held_environments(reader, moving))
    candidates = [o for o in candidates if o.id not in read.deferred]
    reused = {o.id: read.organizations[o.id][0] for o in candidates if read.organizations.get(o.id)}
    reused_ids = [org.id for org in reused.values()]

    scanned = [p for o in candidates for p in _scanned_projects(read, o.id)]
    access = read_access(conn, scanned)
    existing_members: dict[int, set[int]] = defaultdict(set)
    for row in rows(conn, "organization_members_of", organization_ids=reused_ids):
        existing_members[row.organization_id].add(row.user_id)
    owner_permissions: dict[int, set[str]] = defaultdict(set)
    for row in rows(conn, "member_permissions_of", organization_ids=reused_ids, user_ids=list(reused)):
        if reused.get(row.user_id) is not None and reused[row.user_id].id == row.organization_id:
            owner_permissions[row.user_id].add(row.permission)

    # The grantees not yet members become members, unless deleted; an owner who would add one that
    # another transaction holds is deferred.
    to_add: dict[int, set[int]] = {}
    for owner in candidates:
        users = set().union(*(access.grantees(p) for p in _scanned_projects(read, owner.id)))
        org = reused.get(owner.id)
        to_add[owner.id] = users - (existing_members[org.id] if org is not None else set()) - {owner.id}
    collaborators = read_collaborators(reader, (u for users in to_add.values() for u in users))
    for owner_id, users in to_add.items():
        users -= collaborators.deleted
        if users & collaborators.held:
            read.deferred.add(owner_id)

    # Names go in user-id order: a name planned for the owner (a wave's job reserved it) is kept;
    # an owner without one whose name a deferred owner may yet take waits.
    planned_for = {
        r.owner_id: r.name
        for r in rows(conn, "reserved_names_of", owner_ids=[o.id for o in candidates if o.id not in reused])
    }
    waiting = set(held_names) | _base_names(read, read.deferred - planned_for.keys())
    for owner in candidates:
        if (
            owner.id not in reused
            and owner.id not in planned_for
            and naming.base_name(owner.username, owner.id) in waiting
        ):
            read.deferred.add(owner.id)
    candidates = [o for o in candidates if o.id not in read.deferred]
    names = _new_names(
        conn,
        [o for o in candidates if o.id not in reused],
        reserved_names,
        planned_names or {},
        frozenset(forbidden_names),
        planned_for,
    )

    changes = []
    for owner in candidates:
        org = reused.get(owner.id)
        projects = read.projects.get(owner.id, [])
        held = owner_permissions.get(owner.id, set())
        billing = read.billing.get(owner.id)
        owner_changes = OwnerChanges(
            owner_id=owner.id,
            username=owner.username,
            organization_name=org.name if org is not None else names[owner.id],
            organization_label=org.label if org is not None else _label(owner) or names[owner.id],
            organization_id=org.id if org is not None else None,
            projects=tuple(projects),
            members_to_add=tuple(sorted(to_add[owner.id])),
            owner_permissions_to_add=tuple(p for p in PERMISSIONS if p not in held),
            owner_is_member=org is not None and owner.id in existing_members[org.id],
            # A migrated owner's late account stays on the user while the organization has one.
            billing_account_id=None if org is not None and org.id in read.billed_organizations else billing,
            access_digests=tuple((p, access.digest(p)) for p in projects),
        )
        if owner.id in read.recorded and owner_changes.nothing_to_do:
            continue
        changes.append(owner_changes)
    return BatchChanges(
        tuple(changes),
        tuple(blocked),
        deferred=tuple(sorted(read.deferred)),
        deferred_names=frozenset(_base_names(read, read.deferred - planned_for.keys())),
        lock_seconds=reader.lock_seconds,
    )


def _triage(read: BatchRead, owner_ids: Sequence[int]) -> tuple[list[Owner], list[BlockedOwner]]:
    """The owners the batch holds that have something to migrate, and the blocked ones.

    Reasons are checked in the order owner-deleted, owns-several-organizations, billing-conflict.
    A migrated owner is never blocked by a late billing account (it stays on the user); one deleted
    since is reported as owner-deleted, and its late writes are left to the platform.
    """
    candidates: list[Owner] = []
    blocked: list[BlockedOwner] = []
    for owner_id in owner_ids:
        if not read.holds(owner_id):
            continue
        user = read.users[owner_id]
        migrated = owner_id in read.recorded
        legacy = bool(read.projects.get(owner_id))
        if not legacy and not migrated:
            continue  # no longer a legacy owner: migrated meanwhile, or projects moved or deleted
        orgs = read.organizations.get(owner_id, [])
        reason = None
        if user.deleted:
            reason = BlockedReason.OWNER_DELETED
        elif len(orgs) >= 2:
            reason = BlockedReason.SEVERAL_ORGANIZATIONS
        elif not migrated and orgs and owner_id in read.billing and orgs[0].id in read.billed_organizations:
            reason = BlockedReason.BILLING_CONFLICT
        if reason is None:
            candidates.append(user)
        else:
            blocked.append(BlockedOwner(owner_id, user.username, reason))
    return candidates, blocked


def _scanned_projects(read: BatchRead, owner_id: int) -> list[str]:
    """The projects whose access holders become members: the moving ones and, for a migrated
    owner, those the job moved before that are still in place."""
    return [*read.projects.get(owner_id, []), *read.moved_in_place.get(owner_id, [])]


def deferred_name_bases(conn: Connection, owner_ids: Sequence[int]) -> set[str]:
    """The name bases of owners deferred outside a batch's reads (their batch timed out)."""
    return {
        naming.base_name(row.username, row.id) for row in rows(conn, "owner_users", owner_ids=list(owner_ids))
    }


def _base_names(read: BatchRead, owner_ids: Collection[int]) -> set[str]:
    return {naming.base_name(read.usernames[o], o) for o in owner_ids if o in read.usernames}


def _label(owner: Owner) -> str | None:
    """The display name, else the username, when not blank; else None (the organization's name)."""
    for text in (owner.display_name, owner.username):
        if text is not None and text.strip():
            return text
    return None


def _new_names(
    conn: Connection,
    owners: Sequence[Owner],
    reserved: set[str] | None,
    planned: Mapping[int, str],
    forbidden: frozenset[str],
    reservations: Mapping[int, str],
) -> dict[int, str]:
    """A name for each owner's new organization: the one its wave's job reserved for it while no
    organization has taken it meanwhile; else the one an approved report planned when it is still
    free and follows the rule for that owner; else the first free one in user-id order. A name is
    free when no organization has it, no other owner has it reserved, and it is not `forbidden`
    (the plan's `reserved_names`)."""

    def taken(candidates: Collection[str], *, reservations_too: bool = True) -> Collection[str]:
        query = "names_taken" if reservations_too else "organization_names_taken"
        in_use = {row.name for row in rows(conn, query, names=sorted(candidates))}
        return in_use | (set(candidates) & forbidden)

    kept: dict[int, str] = {}
    own = {o.id: reservations[o.id] for o in owners if o.id in reservations}
    if own:
        gone = set(taken(own.values(), reservations_too=False))
        kept = {owner_id: name for owner_id, name in own.items() if name not in gone}
    if planned:
        wanted = {
            o.id: planned[o.id]
            for o in owners
            if o.id not in kept and o.id in planned and naming.follows_rule(planned[o.id], o.username, o.id)
        }
        unavailable = set(taken(wanted.values()))
        kept |= {owner_id: name for owner_id, name in wanted.items() if name not in unavailable}
    reserved = reserved if reserved is not None else set()
    reserved.update(kept.values())
    bases = [(o.id, naming.base_name(o.username, o.id)) for o in owners if o.id not in kept]
    return kept | naming.assign_names(bases, taken, reserved)
