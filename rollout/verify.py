"""`rollout verify`: the invariants of SPEC 9 for every owner the job migrated, set-based."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from rollout import db
from rollout.migration import access_digest
from rollout.sql import query

PAGE_SIZE = 5000


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "wave": self.wave,
            "owners_checked": self.owners_checked,
            "ok": self.ok,
            "violations": [asdict(v) for v in self.violations],
        }


def _rows(conn: Connection, name: str, **params: Any) -> Any:
    return conn.execute(query(name, conn.dialect.name), params)


def _structural(conn: Connection, wave: str | None) -> list[Violation]:
    found: list[Violation] = []
    for r in _rows(conn, "verify_one_organization", wave=wave):
        found.append(
            Violation(
                r.owner_id,
                1,
                f"owns {r.organizations} organizations"
                + ("" if r.recorded else ", not the one the job recorded"),
            )
        )
    for r in _rows(conn, "verify_owner_permissions", wave=wave):
        detail = (
            "is not a member of the organization"
            if not r.memberships
            else f"holds {r.permissions} of the 4 owner permissions"
        )
        found.append(Violation(r.owner_id, 1, detail))
    for r in _rows(conn, "verify_projects_moved", wave=wave):
        where = "no organization" if r.organization_id is None else f"organization {r.organization_id}"
        found.append(Violation(r.owner_id, 2, f"project {r.project_id} is in {where}"))
    for r in _rows(conn, "verify_members", wave=wave):
        found.append(
            Violation(r.owner_id, 3, f"user {r.user_id} has access to {r.project_id} but is not a member")
        )
    for r in _rows(conn, "verify_no_other_permissions", wave=wave):
        found.append(Violation(r.owner_id, 4, f"member {r.user_id} holds permission {r.permission}"))
    for r in _rows(conn, "verify_billing", wave=wave):
        holder = f"user {r.user_id}" if r.user_id is not None else f"organization {r.organization_id}"
        found.append(Violation(r.owner_id, 6, f"billing account {r.billing_account_id} belongs to {holder}"))
    for r in _rows(conn, "verify_billing_recorded_missing", wave=wave):
        found.append(Violation(r.owner_id, 6, f"billing account {r.billing_account_id} no longer exists"))
    return found


def _access_page(conn: Connection, wave: str | None, after: str) -> tuple[list[Violation], str | None]:
    page = list(_rows(conn, "moved_projects_page", wave=wave, after=after, page_size=PAGE_SIZE))
    if not page:
        return [], None
    ids = [r.project_id for r in page]
    project_rows: dict[str, list[Any]] = defaultdict(list)
    for row in _rows(conn, "project_access_of", project_ids=ids):
        project_rows[row.project_id].append(row)
    environment_rows: dict[str, list[Any]] = defaultdict(list)
    for row in _rows(conn, "environment_access_of", project_ids=ids):
        environment_rows[row.project_id].append((row.environment_id, row.user_id, row.role))
    found = [
        Violation(r.owner_id, 5, f"access rows of project {r.project_id} changed since migration")
        for r in page
        if access_digest(project_rows[r.project_id], environment_rows[r.project_id]) != r.access_digest
    ]
    return found, (ids[-1] if len(page) == PAGE_SIZE else None)


def verify(engine: Engine, wave: str | None = None) -> VerifyReport:
    """Every violation, each naming its owner and invariant; invariant 5 is read page by page."""

    def structural(conn: Connection) -> tuple[int, list[Violation]]:
        checked = _rows(conn, "migrated_owner_count", wave=wave).scalar_one()
        return checked, _structural(conn, wave)

    checked, violations = db.transaction(engine, structural)
    after: str | None = ""
    while after is not None:

        def page(conn: Connection, after: str = after) -> tuple[list[Violation], str | None]:
            return _access_page(conn, wave, after)

        found, after = db.transaction(engine, page)
        violations.extend(found)
    violations.sort(key=lambda v: (v.owner_id, v.invariant, v.detail))
    return VerifyReport(wave, checked, tuple(violations))
