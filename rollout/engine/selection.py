"""Which owners a wave selects, streamed page by page in user-id order.

Selection is recomputed at every run from the data as it is then, so late arrivals join the next
run. Pages are read in short transactions of their own (`batches.keyset_pages`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from rollout.engine import ledger
from rollout.engine.batches import PAGE_SIZE, chunks, keyset_pages
from rollout.engine.states import OwnerState, attempted_by_waves
from rollout.engine.waveplan import Wave, bucket
from rollout.store import queries
from rollout.store.dialect import as_datetime, is_lock_timeout
from rollout.store.engine import transaction

log = structlog.get_logger("rollout.selection")

# How long refreshing the owner tables' statistics waits for them, and may take (`ANALYZE` reads a
# sample: seconds at most).
STATISTICS_LOCK_WAIT = "2s"
STATISTICS_TIMEOUT = "60s"


@dataclass(frozen=True)
class Candidate:
    """An owner of legacy projects as a page of the selection sees it."""

    owner_id: int
    legacy_projects: int
    in_regions: int
    state: OwnerState | None  # as recorded; blocked or failed for a migrated owner's late project
    migrated_before: bool = False  # the job migrated this owner; these are late arrivals


def candidates(engine: Engine, wave: Wave | None = None, *, after: int = -1) -> Iterator[Candidate]:
    """Every owner of a legacy project (or only those a wave lists by id), in user-id order, from
    the first after `after`."""
    listed_only = wave is not None and wave.percent is None
    regions = list(wave.regions or []) if wave is not None else []
    listed = list(wave.owners) if wave is not None and listed_only else []

    def page(conn: Connection, after: int, page_size: int) -> list[Candidate]:
        name = "listed_owner_page" if listed_only else "legacy_owner_page"
        rows = queries.rows(conn, name, after_id=after, page_size=page_size, regions=regions, listed=listed)
        return [
            Candidate(
                r.owner_id,
                r.legacy_projects,
                r.in_regions or 0,
                OwnerState(r.state) if r.state is not None else None,
                bool(r.migrated_before),
            )
            for r in rows
        ]

    return keyset_pages(engine, page, lambda c: c.owner_id, after)


def refresh_statistics(engine: Engine) -> None:
    """Samples the job's owner tables for the planner, after a run filled them (`ANALYZE`: a
    sample, not a scan). The pages of migrated owners depend on it: without statistics each page
    costs the whole table. It waits at most STATISTICS_LOCK_WAIT for the tables (a VACUUM another
    session runs on them holds what `ANALYZE` needs), then leaves them to autovacuum."""

    def analyse(conn: Connection) -> None:
        queries.execute(
            conn, "limit_waits", lock_timeout=STATISTICS_LOCK_WAIT, statement_timeout=STATISTICS_TIMEOUT
        )
        queries.execute(conn, "refresh_owner_statistics")

    try:
        transaction(engine, analyse, attempts=1)
    except DBAPIError as exc:
        if not is_lock_timeout(exc):
            raise
        log.warning(
            "statistics.skipped",
            detail="another session holds the job's owner tables: their statistics are left to autovacuum",
        )


def migrated_owners(engine: Engine) -> Iterator[tuple[int, str | None]]:
    """(owner id, wave that migrated it) of every owner the job migrated, in user-id order."""
    return keyset_pages(engine, ledger.migrated_owner_page, lambda row: row[0], -1)


def counts_as_migrated(
    wave: Wave, salt: str, owner_id: int, migrated_by: str | None, owner_bucket: int
) -> bool:
    """Whether a migrated owner counts under a wave: the wave migrated it, or the wave admits it by
    list or percent (its filters on legacy projects cannot apply to an owner who has none left)."""
    if migrated_by == wave.name:
        return True
    return wave.admits_bucket(salt, owner_id, owner_bucket) and not wave.excludes(owner_id)


def selects(wave: Wave, salt: str, candidate: Candidate) -> bool:
    """Whether the wave selects this owner, whatever the job has recorded for it."""
    if not wave.admits_bucket(salt, candidate.owner_id):
        return False
    if wave.regions is not None and candidate.in_regions == 0:
        return False
    if wave.max_projects is not None and candidate.legacy_projects > wave.max_projects:
        return False
    return not wave.excludes(candidate.owner_id)


def wave_owners(engine: Engine, wave: Wave, salt: str, *, retry_failed: bool) -> Iterator[int]:
    """The owner ids a run of the wave attempts now, in user-id order (blocked owners included:
    every run looks at them again; they do not count against `--max-owners`)."""
    for candidate in candidates(engine, wave):
        if selects(wave, salt, candidate) and attempted_by_waves(candidate.state, retry_failed=retry_failed):
            yield candidate.owner_id


def sweep_owners(
    engine: Engine, wave: Wave | None, salt: str, *, migrated_before: datetime | None = None
) -> Iterator[int]:
    """Migrated owners with late platform writes to sweep, in user-id order: all of them or those
    counted under a wave, and with `migrated_before` only those migrated before that moment (a
    wave's run sweeps the owners earlier runs migrated; `rollout sweep` every one). The owners are
    chosen page by page, then probed set-based, so the cost follows the owners swept. The pages read
    `rollout_owners` as the runs left it, so its statistics are refreshed first."""
    refresh_statistics(engine)

    def page(conn: Connection, after: int, page_size: int) -> list[tuple[int, str | None, datetime | None]]:
        rows = queries.rows(conn, "sweep_owner_page", after_id=after, page_size=page_size)
        return [(r.owner_id, r.wave, as_datetime(r.migrated_at)) for r in rows]

    wanted = (
        owner_id
        for owner_id, by, at in keyset_pages(engine, page, lambda row: row[0], -1)
        if (migrated_before is None or (at is not None and at < migrated_before))
        and (wave is None or counts_as_migrated(wave, salt, owner_id, by, bucket(salt, owner_id)))
    )
    for ids in chunks(wanted, PAGE_SIZE):
        yield from _with_late_writes(engine, ids)


def _with_late_writes(engine: Engine, owner_ids: list[int]) -> list[int]:
    return [
        r.owner_id
        for r in transaction(engine, lambda conn: queries.rows(conn, "sweep_candidates", owner_ids=owner_ids))
    ]


def unknown_owners(conn: Connection, wave: Wave) -> tuple[int, ...]:
    """The owner ids a wave lists that are not users at all: named in the dry run and `status`
    rather than silently selecting nobody."""
    if not wave.owners:
        return ()
    found = {r.id for r in queries.rows(conn, "existing_users", user_ids=list(wave.owners))}
    return tuple(o for o in wave.owners if o not in found)
