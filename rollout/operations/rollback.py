"""`rollout rollback`: undo what the job did for some owners, from what it recorded.

The dry run executes the very same statements and rolls the transaction back, so what it prints is
what a real rollback does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import structlog
from sqlalchemy import Connection, Engine

from rollout.engine import history, ledger
from rollout.engine.batches import chunks, isolate
from rollout.engine.selection import counts_as_migrated, migrated_owners
from rollout.engine.states import RunMode, RunOutcome
from rollout.engine.waveplan import Wave, WavePlan, bucket
from rollout.errors import DatabaseUnavailable, PermissionDenied, UsageError, describe
from rollout.store import queries
from rollout.store.engine import transaction

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


class _DryRun(Exception):
    def __init__(self, result: list[OwnerRollback]) -> None:
        self.result = result


def _rollback_batch(conn: Connection, owner_ids: Sequence[int], run_id: str) -> list[OwnerRollback]:
    owners = ledger.migrated_records(conn, owner_ids)
    ids = [o.owner_id for o in owners]
    if not ids:
        return []
    work = ledger.recorded_work(conn, ids)
    projects: dict[int, list[tuple[str, bool]]] = defaultdict(list)
    for r in work["projects"]:
        projects[r.owner_id].append((r.project_id, bool(r.still_there)))
    members: dict[int, list[int]] = defaultdict(list)
    for r in work["members"]:
        members[r.owner_id].append(r.user_id)
    permissions: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for r in work["permissions"]:
        permissions[r.owner_id].append((r.user_id, r.permission))

    created = [o.organization_id for o in owners if o.organization_created]
    queries.execute(conn, "return_projects", owner_ids=ids)
    queries.execute(conn, "return_billing_accounts", owner_ids=ids)
    kept = [r.id for r in queries.rows(conn, "organizations_in_use", organization_ids=created)]
    for statement in (
        "remove_added_permissions",
        "remove_permissions_of_added_members",
        "remove_added_members",
    ):
        queries.execute(conn, statement, owner_ids=ids, kept_organization_ids=kept)
    queries.execute(conn, "delete_unused_organizations", organization_ids=created)
    remaining = {r.id for r in queries.rows(conn, "existing_organizations", organization_ids=created)}
    ledger.record_rolled_back(conn, ids, run_id=run_id)

    def stays(owner_id: int, organization_id: int, user_id: int) -> bool:
        # The owner keeps membership and permissions in an organization that survives, being in use.
        return user_id == owner_id and organization_id in kept

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
                u for u in members[o.owner_id] if not stays(o.owner_id, o.organization_id, u)
            ),
            permissions_removed=tuple(
                (u, p) for u, p in permissions[o.owner_id] if not stays(o.owner_id, o.organization_id, u)
            ),
            billing_account_returned=o.billing_account_id,
        )
        for o in owners
    ]


def wave_migrated_owners(engine: Engine, plan: WavePlan, wave: Wave) -> Iterator[int]:
    """The migrated owners `status` counts under the wave: those its runs migrated and those it
    admits by list or percent (migrated by `run --owner`, by an approved report or another wave),
    in user-id order, page by page."""
    salt = plan.settings.salt
    for owner_id, by in migrated_owners(engine):
        if counts_as_migrated(wave, salt, owner_id, by, bucket(salt, owner_id)):
            yield owner_id


def rollback(
    engine: Engine,
    owner_ids: Iterable[int],
    *,
    run_id: str,
    dry_run: bool,
    batch_size: int = 500,
    wave: str | None = None,
    invocation: history.Invocation | None = None,
) -> RollbackReport:
    """Rolls owners back a batch per transaction; with `dry_run` every transaction is rolled back.

    An owner whose rollback fails (its billing account cannot go back because the user has a new
    one, say) is isolated as in a migration: the batch is split until that owner is alone, and it is
    reported as failed, still migrated.
    """
    report = RollbackReport(dry_run)

    def attempt(batch: Sequence[int]) -> None:
        def work(conn: Connection) -> list[OwnerRollback]:
            done = _rollback_batch(conn, batch, run_id)
            if dry_run:
                raise _DryRun(done)
            return done

        try:
            done = transaction(engine, work)
        except _DryRun as dry:
            done = dry.result
        report.owners.extend(done)
        handled = {o.owner_id for o in done}
        report.not_migrated.extend(i for i in batch if i not in handled)
        if not dry_run and done:
            log.info(
                "rollback.batch",
                owners=len(done),
                organizations_deleted=sum(o.organization_deleted for o in done),
            )

    def failed(owner_id: int, exc: Exception) -> None:
        error = describe(exc)
        report.failed.append((owner_id, error))
        log.error("rollback.owner_failed", owner_id=owner_id, error=error)

    who = invocation if not dry_run else None  # a dry run writes nothing, not even history
    if who is not None:
        transaction(
            engine,
            lambda conn: history.start_run(conn, run_id, mode=RunMode.ROLLBACK, wave=wave, invocation=who),
        )
    for batch in chunks(owner_ids, batch_size):
        isolate(batch, attempt, failed, passthrough=(DatabaseUnavailable, PermissionDenied))
    if who is not None:
        counts = history.RunCounts(
            attempted=len(report.owners) + len(report.failed), failed=len(report.failed)
        )
        outcome = RunOutcome.FAILED if report.failed else RunOutcome.SUCCEEDED
        message = f"owners rolled back: {len(report.owners)}"
        transaction(engine, lambda conn: history.finish_run(conn, run_id, outcome, counts, message))
    return report


def check_owner(engine: Engine, owner_id: int) -> None:
    """`UsageError` unless the user exists."""
    if transaction(engine, lambda conn: queries.one(conn, "user_exists", user_id=owner_id)) is None:
        raise UsageError(f"unknown owner {owner_id}: no such user")
