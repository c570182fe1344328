"""`rollout rollback`: undo what the job did for some owners (SPEC 8), from what it recorded.

The dry run executes the very same statements and rolls the transaction back, so what it prints is
what a real rollback does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Connection, Engine

from rollout import db
from rollout.clock import utcnow
from rollout.errors import DatabaseUnavailable, UsageError
from rollout.selection import PAGE_SIZE, chunks
from rollout.sql import query

log = structlog.get_logger("rollout.rollback")


@dataclass(frozen=True)
class OwnerRollback:
    owner_id: int
    organization_id: int
    organization_name: str
    organization_created: bool
    organization_deleted: bool
    projects_returned: tuple[str, ...]
    projects_left: tuple[str, ...]  # moved elsewhere since, left where they are
    members_removed: tuple[int, ...]
    permissions_removed: tuple[tuple[int, str], ...]
    billing_account_returned: int | None


@dataclass
class RollbackReport:
    dry_run: bool
    owners: list[OwnerRollback] = field(default_factory=list)
    not_migrated: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "owners": [
                {
                    "owner_id": o.owner_id,
                    "organization": {
                        "id": o.organization_id,
                        "name": o.organization_name,
                        "created_by_job": o.organization_created,
                        "deleted": o.organization_deleted,
                    },
                    "projects_returned": list(o.projects_returned),
                    "projects_left": list(o.projects_left),
                    "members_removed": list(o.members_removed),
                    "permissions_removed": [list(p) for p in o.permissions_removed],
                    "billing_account_returned": o.billing_account_returned,
                }
                for o in self.owners
            ],
            "not_migrated": self.not_migrated,
            "failed": [{"owner_id": owner_id, "error": error} for owner_id, error in self.failed],
        }


class _DryRun(Exception):
    def __init__(self, result: list[OwnerRollback]) -> None:
        self.result = result


def _rows(conn: Connection, name: str, **params: Any) -> Any:
    return conn.execute(query(name, conn.dialect.name), params)


def _rollback_batch(conn: Connection, owner_ids: Sequence[int], run_id: str) -> list[OwnerRollback]:
    owners = list(_rows(conn, "rollback_owners", owner_ids=list(owner_ids)))
    ids = [o.owner_id for o in owners]
    if not ids:
        return []
    projects: dict[int, list[tuple[str, bool]]] = defaultdict(list)
    for r in _rows(conn, "recorded_projects", owner_ids=ids):
        projects[r.owner_id].append((r.project_id, bool(r.still_there)))
    members: dict[int, list[int]] = defaultdict(list)
    for r in _rows(conn, "recorded_members", owner_ids=ids):
        members[r.owner_id].append(r.user_id)
    permissions: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for r in _rows(conn, "recorded_permissions", owner_ids=ids):
        permissions[r.owner_id].append((r.user_id, r.permission))

    created = [o.organization_id for o in owners if o.organization_created]
    _rows(conn, "return_projects", owner_ids=ids)
    _rows(conn, "return_billing_accounts", owner_ids=ids)
    kept = [r.id for r in _rows(conn, "organizations_in_use", organization_ids=created)]
    for statement in (
        "remove_added_permissions",
        "remove_permissions_of_added_members",
        "remove_added_members",
    ):
        _rows(conn, statement, owner_ids=ids, kept_organization_ids=kept)
    _rows(conn, "delete_unused_organizations", organization_ids=created)
    remaining = {r.id for r in _rows(conn, "existing_organizations", organization_ids=created)}
    for statement in ("forget_moved_projects", "forget_added_members", "forget_added_permissions"):
        _rows(conn, statement, owner_ids=ids)
    _rows(conn, "record_rolled_back", owner_ids=ids, run_id=run_id, now=utcnow())

    return [
        OwnerRollback(
            owner_id=o.owner_id,
            organization_id=o.organization_id,
            organization_name=o.organization_name,
            organization_created=bool(o.organization_created),
            organization_deleted=bool(o.organization_created) and o.organization_id not in remaining,
            projects_returned=tuple(p for p, there in projects[o.owner_id] if there),
            projects_left=tuple(p for p, there in projects[o.owner_id] if not there),
            members_removed=tuple(
                u for u in members[o.owner_id] if not (u == o.owner_id and o.organization_id in kept)
            ),
            permissions_removed=tuple(
                (u, p)
                for u, p in permissions[o.owner_id]
                if not (u == o.owner_id and o.organization_id in kept)
            ),
            billing_account_returned=o.billing_account_id,
        )
        for o in owners
    ]


def wave_migrated_owners(engine: Engine, wave: str) -> Iterator[int]:
    """The owners a wave's runs migrated, in user-id order, page by page."""
    after = -1
    while True:

        def page(conn: Connection, after: int = after) -> list[int]:
            rows = _rows(conn, "rollback_owner_page", wave=wave, after_id=after, page_size=PAGE_SIZE)
            return [r.owner_id for r in rows]

        ids = db.transaction(engine, page)
        yield from ids
        if len(ids) < PAGE_SIZE:
            return
        after = ids[-1]


def rollback(
    engine: Engine,
    owner_ids: Iterator[int] | Sequence[int],
    *,
    run_id: str,
    dry_run: bool,
    batch_size: int = 500,
) -> RollbackReport:
    """Rolls owners back a batch per transaction; with `dry_run` every transaction is rolled back.

    An owner whose rollback fails (its billing account cannot go back because the user has a new
    one, say) is isolated as in a migration: the batch is split until that owner is alone, and it is
    reported as failed, still migrated.
    """
    report = RollbackReport(dry_run)
    for batch in chunks(owner_ids, batch_size):
        _rollback_isolated(engine, batch, run_id, dry_run, report)
    return report


def _rollback_isolated(
    engine: Engine, batch: list[int], run_id: str, dry_run: bool, report: RollbackReport
) -> None:
    def work(conn: Connection) -> list[OwnerRollback]:
        done = _rollback_batch(conn, batch, run_id)
        if dry_run:
            raise _DryRun(done)
        return done

    try:
        done = db.transaction(engine, work)
    except _DryRun as dry:
        done = dry.result
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        if len(batch) == 1:
            error = f"{type(exc).__name__}: {db.describe(exc)}"
            report.failed.append((batch[0], error))
            log.error("rollback.owner_failed", owner_id=batch[0], error=error)
            return
        middle = len(batch) // 2
        _rollback_isolated(engine, batch[:middle], run_id, dry_run, report)
        _rollback_isolated(engine, batch[middle:], run_id, dry_run, report)
        return
    report.owners.extend(done)
    handled = {o.owner_id for o in done}
    report.not_migrated.extend(i for i in batch if i not in handled)
    if not dry_run and done:
        log.info(
            "rollback.batch",
            owners=len(done),
            organizations_deleted=sum(o.organization_deleted for o in done),
        )


def check_owner(engine: Engine, owner_id: int) -> None:
    if not db.transaction(engine, lambda conn: db.user_exists(conn, owner_id)):
        raise UsageError(f"unknown owner {owner_id}: no such user")
