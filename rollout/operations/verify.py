"""`rollout verify`: the invariants for every owner the job migrated, set-based. Read-only.

Each violation says whose write caused it. The job writes an owner's rows in the transaction that
records its migration, and after that only when a later run or `rollout sweep` applies the rules to
the platform's late writes; so a violation is the *platform's* when there is evidence of a write
after the migration that the job did not make (a row the job's records do not cover, a record of
the job's write that no longer holds, access rows that changed since), and the *job's* otherwise.
The rules per invariant are in docs/invariants.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine

from rollout.engine import naming
from rollout.engine.batches import chunks
from rollout.engine.batchread import read_access
from rollout.engine.selection import counts_as_migrated, migrated_owners
from rollout.engine.waveplan import Wave, WavePlan, bucket
from rollout.store import queries
from rollout.store.dialect import as_datetime
from rollout.store.engine import transaction


class Cause(StrEnum):
    JOB = "job"
    PLATFORM = "platform"


# invariant number -> name (docs/invariants.md); number 1 has two checks.
NAMES = {
    1: "owns-one-organization",
    2: "projects-in-organization",
    3: "collaborators-are-members",
    4: "no-other-permissions",
    5: "access-unchanged",
    6: "billing-in-organization",
    7: "organization-named-by-rule",
}
PAGE_SIZE = 2000
OWNER_PERMISSIONS = "owner-holds-all-permissions"


@dataclass(frozen=True)
class Violation:
    owner_id: int
    invariant: int
    name: str
    cause: Cause
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    wave: str | None
    owners_checked: int
    violations: tuple[Violation, ...]

    @property
    def ok(self) -> bool:
        return not self.violations

    def count(self, cause: Cause) -> int:
        return sum(v.cause is cause for v in self.violations)


def _v(owner_id: int, invariant: int, cause: Cause, detail: str, name: str | None = None) -> Violation:
    return Violation(owner_id, invariant, name or NAMES[invariant], cause, detail)


def _when(value: Any) -> str:
    moment = as_datetime(value)
    return moment.isoformat(timespec="seconds") if moment else "an unknown time"


def _structural(conn: Connection, owner_ids: list[int]) -> tuple[list[Violation], list[Any]]:
    found: list[Violation] = []
    for r in queries.rows(conn, "verify_one_organization", owner_ids=owner_ids):
        # The job creates or reuses exactly one organization and records it; another one, or the
        # recorded one gone, is someone else's write.
        detail = f"owns {r.organizations} organizations"
        if r.other_id is not None:
            detail += f"; organization {r.other_id} created {_when(r.other_created_at)}"
        if not r.recorded:
            detail += "; the one the job recorded is gone"
        found.append(_v(r.owner_id, 1, Cause.PLATFORM, detail))
    for r in queries.rows(conn, "verify_owner_permissions", owner_ids=owner_ids):
        # The migration's own transaction gives the owner membership and all four permissions.
        detail = (
            "is not a member of the organization (removed since the migration)"
            if not r.memberships
            else f"holds {r.permissions} of the 4 owner permissions (removed since the migration)"
        )
        found.append(_v(r.owner_id, 1, Cause.PLATFORM, detail, OWNER_PERMISSIONS))
    for r in queries.rows(conn, "verify_projects_moved", owner_ids=owner_ids):
        where = "no organization" if r.organization_id is None else f"organization {r.organization_id}"
        created, migrated = as_datetime(r.created_at), as_datetime(r.migrated_at)
        if r.moved:
            cause, why = Cause.PLATFORM, "the job moved it; it was moved again since"
        elif created is not None and migrated is not None and created > migrated:
            cause, why = (
                Cause.PLATFORM,
                f"created {_when(created)}, after the migration; the next sweep moves it",
            )
        else:
            cause, why = Cause.JOB, "it was there when the owner was migrated"
        found.append(_v(r.owner_id, 2, cause, f"project {r.project_id} is in {where} ({why})"))
    for r in queries.rows(conn, "verify_no_other_permissions", owner_ids=owner_ids):
        cause = Cause.JOB if r.granted else Cause.PLATFORM
        found.append(_v(r.owner_id, 4, cause, f"member {r.user_id} holds permission {r.permission}"))
    for r in queries.rows(conn, "verify_billing", owner_ids=owner_ids):
        holder = f"user {r.user_id}" if r.user_id is not None else f"organization {r.organization_id}"
        found.append(
            _v(r.owner_id, 6, Cause.PLATFORM, f"billing account {r.billing_account_id} belongs to {holder}")
        )
    for r in queries.rows(conn, "verify_billing_recorded_missing", owner_ids=owner_ids):
        found.append(
            _v(r.owner_id, 6, Cause.PLATFORM, f"billing account {r.billing_account_id} no longer exists")
        )
    for r in queries.rows(conn, "verify_organization_names", owner_ids=owner_ids):
        if not naming.follows_rule(r.name, r.username, r.owner_id):
            found.append(
                _v(
                    r.owner_id,
                    7,
                    Cause.JOB,
                    f"organization {r.organization_id} is named {r.name!r}, not a name the naming rule gives"
                    f" user {r.username!r} (or the user was renamed since)",
                )
            )
    return found, list(queries.rows(conn, "verify_members", owner_ids=owner_ids))


def _changed_access(conn: Connection, owner_ids: list[int]) -> list[tuple[int, str]]:
    """(owner, project) of every moved project of these owners whose access rows differ from the
    digest the job recorded when it moved it."""
    moved = queries.rows(conn, "moved_projects_of", owner_ids=owner_ids)
    ids = [r.project_id for r in moved]
    access = read_access(conn, ids)
    return [(r.owner_id, r.project_id) for r in moved if access.digest(r.project_id) != r.access_digest]


def _page(conn: Connection, owner_ids: list[int]) -> list[Violation]:
    violations, non_members = _structural(conn, owner_ids)
    changed = set()
    for owner_id, project_id in _changed_access(conn, owner_ids):
        changed.add(project_id)
        violations.append(
            _v(owner_id, 5, Cause.PLATFORM, f"access rows of project {project_id} changed since migration")
        )
    for r in non_members:
        if not r.moved:
            cause, why = Cause.PLATFORM, "a project the job did not move"
        elif r.added:
            cause, why = Cause.PLATFORM, "the job made them a member; the membership was removed since"
        elif r.project_id in changed:
            cause, why = Cause.PLATFORM, "access granted since the migration; the next sweep adds them"
        else:
            cause, why = Cause.JOB, "they had that access when the owner was migrated"
        violations.append(
            _v(
                r.owner_id,
                3,
                cause,
                f"user {r.user_id} has access to {r.project_id} but is not a member ({why})",
            )
        )
    return violations


def _check(engine: Engine, owner_ids: list[int]) -> list[Violation]:
    return transaction(engine, lambda conn: _page(conn, owner_ids))


def verify(engine: Engine, wave: Wave | None = None, plan: WavePlan | None = None) -> VerifyReport:
    """Every violation of the migrated owners (those `status` counts under `wave`, which needs its
    `plan`; or all), each naming its owner, invariant and cause; a page of owners per transaction."""
    salt = plan.settings.salt if plan is not None else ""
    assert wave is None or plan is not None, "a wave is counted with its plan's salt"
    owners = (
        owner_id
        for owner_id, by in migrated_owners(engine)
        if wave is None or counts_as_migrated(wave, salt, owner_id, by, bucket(salt, owner_id))
    )
    checked = 0
    violations: list[Violation] = []
    for page in chunks(owners, PAGE_SIZE):
        checked += len(page)
        violations.extend(_check(engine, page))
    violations.sort(key=lambda v: (v.owner_id, v.invariant, v.detail))
    return VerifyReport(wave.name if wave is not None else None, checked, tuple(violations))
