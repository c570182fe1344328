"""`rollout verify`: the invariants for every owner the job migrated, set-based. Read-only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from rollout.engine.batches import keyset_pages
from rollout.engine.changes import access_digest
from rollout.store import queries
from rollout.store.engine import transaction


@dataclass(frozen=True)
class Violation:
    owner_id: int
    invariant: int
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    wave: str | None
    owners_checked: int
    violations: tuple[Violation, ...]

    @property
    def ok(self) -> bool:
        return not self.violations


def _structural(conn: Connection, wave: str | None) -> list[Violation]:
    found: list[Violation] = []
    for r in queries.rows(conn, "verify_one_organization", wave=wave):
        found.append(
            Violation(
                r.owner_id,
                1,
                f"owns {r.organizations} organizations"
                + ("" if r.recorded else ", not the one the job recorded"),
            )
        )
    for r in queries.rows(conn, "verify_owner_permissions", wave=wave):
        detail = (
            "is not a member of the organization"
            if not r.memberships
            else f"holds {r.permissions} of the 4 owner permissions"
        )
        found.append(Violation(r.owner_id, 1, detail))
    for r in queries.rows(conn, "verify_projects_moved", wave=wave):
        where = "no organization" if r.organization_id is None else f"organization {r.organization_id}"
        found.append(Violation(r.owner_id, 2, f"project {r.project_id} is in {where}"))
    for r in queries.rows(conn, "verify_members", wave=wave):
        found.append(
            Violation(r.owner_id, 3, f"user {r.user_id} has access to {r.project_id} but is not a member")
        )
    for r in queries.rows(conn, "verify_no_other_permissions", wave=wave):
        found.append(Violation(r.owner_id, 4, f"member {r.user_id} holds permission {r.permission}"))
    for r in queries.rows(conn, "verify_billing", wave=wave):
        holder = f"user {r.user_id}" if r.user_id is not None else f"organization {r.organization_id}"
        found.append(Violation(r.owner_id, 6, f"billing account {r.billing_account_id} belongs to {holder}"))
    for r in queries.rows(conn, "verify_billing_recorded_missing", wave=wave):
        found.append(Violation(r.owner_id, 6, f"billing account {r.billing_account_id} no longer exists"))
    return found


def _access_violations(engine: Engine, wave: str | None) -> Iterator[Violation]:
    """Invariant 5, page by page of moved projects: their access rows hash to what was recorded."""

    def page(conn: Connection, after: str, page_size: int) -> list[tuple[str, Violation | None]]:
        moved = queries.rows(conn, "moved_projects_page", wave=wave, after=after, page_size=page_size)
        ids = [r.project_id for r in moved]
        project_rows: dict[str, list[Any]] = defaultdict(list)
        for row in queries.rows(conn, "project_access_of", project_ids=ids):
            project_rows[row.project_id].append(row)
        environment_rows: dict[str, list[Any]] = defaultdict(list)
        for row in queries.rows(conn, "environment_access_of", project_ids=ids):
            environment_rows[row.project_id].append((row.environment_id, row.user_id, row.role))
        checked: list[tuple[str, Violation | None]] = []
        for r in moved:
            digest = access_digest(project_rows[r.project_id], environment_rows[r.project_id])
            violation = None
            if digest != r.access_digest:
                violation = Violation(
                    r.owner_id, 5, f"access rows of project {r.project_id} changed since migration"
                )
            checked.append((r.project_id, violation))
        return checked

    for _, violation in keyset_pages(engine, page, lambda item: item[0], ""):
        if violation is not None:
            yield violation


def verify(engine: Engine, wave: str | None = None) -> VerifyReport:
    """Every violation, each naming its owner and invariant."""

    def structural(conn: Connection) -> tuple[int, list[Violation]]:
        checked = queries.scalar(conn, "migrated_owner_count", wave=wave)
        return int(checked or 0), _structural(conn, wave)

    checked, violations = transaction(engine, structural)
    violations.extend(_access_violations(engine, wave))
    violations.sort(key=lambda v: (v.owner_id, v.invariant, v.detail))
    return VerifyReport(wave, checked, tuple(violations))
