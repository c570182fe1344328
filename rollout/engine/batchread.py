"""The reads of one batch, after the lock protocol (docs/migrating-an-owner.md, "Concurrency").

With `lock`, on PostgreSQL, every row whose concurrent change would make the batch's writes wrong is
locked without waiting, in one global order: the owners' user rows, their legacy projects, their
billing accounts, their organizations, the moving projects' environments, then the collaborators
about to become members. An owner with any such row held by another transaction is *deferred*: left
out of this batch, untouched, and tried again later. Everything is read from the locked rows, so
nothing the batch decides on can change before it commits. Without `lock` (the dry run) and on
SQLite (whose batch holds the database's write lock from its first read) the same reads run plain.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row

from rollout.engine import ledger
from rollout.store import dialect, queries


@dataclass(frozen=True)
class Owner:
    id: int
    username: str
    display_name: str | None
    deleted: bool


@dataclass
class BatchRead:
    """What a batch read, for the owners it holds; `deferred` are the others."""

    users: dict[int, Owner] = field(default_factory=dict)
    projects: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    billing: dict[int, int] = field(default_factory=dict)
    organizations: dict[int, list[Any]] = field(default_factory=lambda: defaultdict(list))
    billed_organizations: set[int] = field(default_factory=set)  # of single organizations read
    recorded: dict[int, int] = field(default_factory=dict)  # migrated owner -> recorded organization
    moved_in_place: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    deferred: set[int] = field(default_factory=set)
    usernames: dict[int, str] = field(default_factory=dict)  # of every owner, deferred ones included
    lock_seconds: float = 0.0

    def holds(self, owner_id: int) -> bool:
        return owner_id in self.users and owner_id not in self.deferred


class Reader:
    """Runs a batch's reads, locking when asked and possible, and times the locking ones."""

    def __init__(self, conn: Connection, *, lock: bool) -> None:
        self.conn = conn
        self.lock = lock and dialect.has_row_locks(conn)
        self.lock_seconds = 0.0

    def rows(self, name: str, /, *, plain: bool = False, **params: Any) -> Sequence[Row[Any]]:
        """`name`, or its locking twin `lock_<name>` (unless `plain`); nothing to ask when a list
        parameter is empty."""
        if any(isinstance(v, list) and not v for v in params.values()):
            return []
        if plain or not self.lock:
            return queries.rows(self.conn, name, **params)
        started = time.monotonic()
        try:
            return queries.rows(self.conn, f"lock_{name}", **params)
        finally:
            self.lock_seconds += time.monotonic() - started


def read_owners(reader: Reader, owner_ids: Sequence[int]) -> BatchRead:
    """Locks and reads the owners' users, legacy projects, billing accounts and organizations."""
    read = BatchRead()
    for row in reader.rows("owner_users", owner_ids=list(owner_ids)):
        read.usernames[row.id] = row.username
        if not row.locked:
            read.deferred.add(row.id)
        else:
            read.users[row.id] = Owner(row.id, row.username, row.display_name, bool(row.deleted))
    held = [o for o in owner_ids if o in read.users]
    for row in reader.rows("legacy_projects", owner_ids=held):
        if row.locked:
            read.projects[row.owner_id].append(row.id)
        else:
            read.deferred.add(row.owner_id)
    for row in reader.rows("owner_billing_accounts", owner_ids=held):
        if row.locked:
            read.billing[row.user_id] = row.id
        else:
            read.deferred.add(row.user_id)
    for row in reader.rows("owned_organizations", owner_ids=held):
        if row.locked:
            read.organizations[row.owner_id].append(row)
        else:
            read.deferred.add(row.owner_id)
    held = [o for o in held if o not in read.deferred]
    single = [orgs[0].id for owner, orgs in read.organizations.items() if len(orgs) == 1 and owner in held]
    read.billed_organizations = {
        r.organization_id
        for r in reader.rows("organization_billing_accounts", organization_ids=single, plain=True)
    }
    if held:
        read.recorded = ledger.migrated_owners_of(reader.conn, held)
        for r in ledger.moved_projects_in_place(reader.conn, list(read.recorded)):
            read.moved_in_place[r.owner_id].append(r.project_id)
    read.lock_seconds = reader.lock_seconds
    return read


def held_environments(reader: Reader, projects: Iterable[str]) -> set[str]:
    """Of these projects, those with an environment another transaction holds."""
    return {row.project_id for row in reader.rows("project_environments", project_ids=list(projects))}


@dataclass(frozen=True)
class Collaborators:
    """Of the users about to become members: those that could not be locked (another transaction
    holds them) and those deleted."""

    held: set[int]
    deleted: set[int]


def read_collaborators(reader: Reader, user_ids: Iterable[int]) -> Collaborators:
    """Locks (FOR SHARE) the active users about to become members, and says which could not be
    added: deleted, or held by another transaction."""
    held: set[int] = set()
    deleted: set[int] = set()
    for row in reader.rows("collaborators", user_ids=sorted(set(user_ids))):
        (deleted if row.deleted else held).add(row.id)
    return Collaborators(held=held, deleted=deleted)


# The digest of a project without any grant: that of no lines (`access_of_projects`).
NO_ACCESS_DIGEST = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class ProjectAccess:
    """What the database says of some projects' access rows (`access_of_projects`): the digest of
    each project's grants, and its grantees (users with a grant on the project or one of its
    environments). The rows themselves stay in the database."""

    digests: dict[str, str]
    grantees_of: dict[str, str]  # project -> its grantees' ids, comma-separated

    def grantees(self, project_id: str) -> set[int]:
        """The users with a grant on the project or one of its environments, deleted ones included."""
        grantees = self.grantees_of.get(project_id)
        return {int(u) for u in grantees.split(",")} if grantees else set()

    def digest(self, project_id: str) -> str:
        """The project's access digest, as the job records it when it moves the project and
        compares it afterwards (docs/data-model.md)."""
        return self.digests.get(project_id, NO_ACCESS_DIGEST)


def read_access(conn: Connection, project_ids: Sequence[str]) -> ProjectAccess:
    """The access digests and grantees of these projects, one statement for all of them."""
    access = ProjectAccess({}, {})
    for row in queries.rows(conn, "access_of_projects", project_ids=list(project_ids)):
        access.digests[row.project_id] = row.digest
        if row.grantees:
            access.grantees_of[row.project_id] = row.grantees
    return access
