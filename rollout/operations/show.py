"""`rollout show --owner ID`: everything the ledger knows of one owner, for support. Read-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from rollout.engine.batchread import read_access
from rollout.errors import UsageError
from rollout.store import queries
from rollout.store.dialect import as_datetime
from rollout.store.engine import transaction


@dataclass(frozen=True)
class OwnerStory:
    owner_id: int
    username: str
    user_deleted: bool
    state: str | None  # None: the job never touched this owner
    wave: str | None
    run_id: str | None
    migrated_at: str | None
    updated_at: str | None
    organization: dict[str, Any] | None
    projects: list[dict[str, Any]] = field(default_factory=list)
    members_added: list[dict[str, Any]] = field(default_factory=list)
    permissions_added: list[dict[str, Any]] = field(default_factory=list)
    billing_account: dict[str, Any] | None = None
    blocked_reason: str | None = None
    last_error: str | None = None
    failed_attempts: int = 0
    legacy_projects_now: list[str] = field(default_factory=list)
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)


def _when(value: Any) -> str | None:
    moment = as_datetime(value)
    return moment.isoformat(timespec="seconds") if moment else None


def show_owner(engine: Engine, owner_id: int) -> OwnerStory:
    """The owner's state, wave, run and when; the organization (created or reused, as it is now);
    each project moved (where it is now, whether its access rows are what they were); the members and
    permissions the job added; the billing account moved; failures; its rollbacks; and the runs that
    touched it."""

    def read(conn: Connection) -> OwnerStory:
        row = queries.one(conn, "owner_record", owner_id=owner_id)
        if row is None:
            raise UsageError(f"unknown owner {owner_id}: no such user")
        moved = queries.rows(conn, "owner_moved_projects", owner_id=owner_id)
        ids = [m.project_id for m in moved]
        access = read_access(conn, ids)
        members = queries.rows(conn, "owner_added_members", owner_id=owner_id)
        permissions = queries.rows(conn, "owner_added_permissions", owner_id=owner_id)
        legacy = [r.id for r in queries.rows(conn, "legacy_projects", owner_ids=[owner_id])]
        rollbacks = queries.rows(conn, "owner_rollbacks", owner_id=owner_id)
        run_ids = {
            row.run_id,
            *(m.run_id for m in moved),
            *(m.run_id for m in members),
            *(b.run_id for b in rollbacks),
            *(b.migrated_by_run for b in rollbacks),
        } - {None}
        runs = queries.rows(conn, "runs_of", run_ids=sorted(run_ids)) if run_ids else []
        organization = None
        if row.organization_id is not None:
            organization = {
                "id": row.organization_id,
                "name": row.organization_name,
                "created_by_job": bool(row.organization_created),
                "name_now": row.organization_now,
                "exists": row.organization_now is not None,
            }
        billing = None
        if row.billing_account_id is not None:
            billing = {
                "id": row.billing_account_id,
                "user_id_now": row.billing_user_id,
                "organization_id_now": row.billing_organization_id,
            }
        return OwnerStory(
            owner_id=owner_id,
            username=row.username,
            user_deleted=row.deleted_at is not None,
            state=row.state,
            wave=row.wave,
            run_id=row.run_id,
            migrated_at=_when(row.migrated_at),
            updated_at=_when(row.updated_at),
            organization=organization,
            projects=[
                {
                    "project_id": m.project_id,
                    "moved_into": m.organization_id,
                    "organization_now": m.organization_now,
                    "run_id": m.run_id,
                    "access_digest": m.access_digest,
                    "access_unchanged": access.digest(m.project_id) == m.access_digest,
                }
                for m in moved
            ],
            members_added=[
                {"user_id": m.user_id, "run_id": m.run_id, "still_member": bool(m.still_member)}
                for m in members
            ],
            permissions_added=[
                {"user_id": p.user_id, "permission": p.permission, "run_id": p.run_id} for p in permissions
            ],
            billing_account=billing,
            blocked_reason=row.reason,
            last_error=row.error,
            failed_attempts=row.attempts or 0,
            legacy_projects_now=legacy,
            rollbacks=[
                {
                    "run_id": b.run_id,
                    "rolled_back_at": _when(b.rolled_back_at),
                    "operator": b.operator,
                    "migrated_by_run": b.migrated_by_run,
                    "organization_id": b.organization_id,
                    "organization_name": b.organization_name,
                    "organization_created": bool(b.organization_created),
                    "projects_moved": b.projects,
                }
                for b in rollbacks
            ],
            runs=[
                {
                    "id": r.id,
                    "mode": r.mode,
                    "wave": r.wave,
                    "started_at": _when(r.started_at),
                    "finished_at": _when(r.finished_at),
                    "outcome": r.outcome,
                    "operator": r.operator,
                }
                for r in runs
            ],
        )

    return transaction(engine, read)
