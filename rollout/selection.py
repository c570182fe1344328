"""Which owners a wave selects (SPEC 4), streamed page by page in user-id order.

Selection is recomputed at every run from the data as it is then, so late arrivals join the next
run. Pages are read in short transactions of their own: a long wave never holds a snapshot or a
lock while it streams, and memory stays flat.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from sqlalchemy import Connection, Engine

from rollout import db
from rollout.plan import Wave
from rollout.sql import query

PAGE_SIZE = 5000

SKIPPED_BY_WAVES = frozenset({"rolled-back"})


@dataclass(frozen=True)
class Candidate:
    """An owner of legacy projects as a page of the selection sees it."""

    owner_id: int
    legacy_projects: int
    in_regions: int
    state: str | None  # as the job recorded it; blocked or failed for a migrated owner's late project
    migrated_before: bool = False  # the job migrated this owner; these are late arrivals


def candidates(engine: Engine, wave: Wave | None = None, page_size: int = PAGE_SIZE) -> Iterator[Candidate]:
    """Every owner of a legacy project (or only those a wave lists by id), in user-id order."""
    listed_only = wave is not None and wave.percent is None
    regions = list(wave.regions or []) if wave is not None else []
    after = -1
    while True:

        def page(conn: Connection, after: int = after) -> list[Candidate]:
            name = "listed_owner_page" if listed_only else "legacy_owner_page"
            params: dict[str, object] = {"after_id": after, "page_size": page_size, "regions": regions}
            if listed_only:
                assert wave is not None
                params["listed"] = list(wave.owners)
            rows = conn.execute(query(name, conn.dialect.name), params)
            return [
                Candidate(r.owner_id, r.legacy_projects, r.in_regions or 0, r.state, bool(r.migrated_before))
                for r in rows
            ]

        rows = db.transaction(engine, page)
        yield from rows
        if len(rows) < page_size:
            return
        after = rows[-1].owner_id


def migrated_owners(engine: Engine, page_size: int = PAGE_SIZE) -> Iterator[tuple[int, str | None]]:
    """(owner id, wave that migrated it) of every owner the job migrated, in user-id order."""
    after = -1
    while True:

        def page(conn: Connection, after: int = after) -> list[tuple[int, str | None]]:
            rows = conn.execute(
                query("migrated_owner_page", conn.dialect.name), {"after_id": after, "page_size": page_size}
            )
            return [(r.owner_id, r.wave) for r in rows]

        rows = db.transaction(engine, page)
        yield from rows
        if len(rows) < page_size:
            return
        after = rows[-1][0]


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


def to_attempt(candidate: Candidate, *, retry_failed: bool) -> bool:
    """Whether a run should try a selected owner: rolled-back owners wait for `run --owner`,
    failed ones for `--retry-failed`."""
    if candidate.state in SKIPPED_BY_WAVES:
        return False
    return retry_failed or candidate.state != "failed"


def owner_states(engine: Engine, owner_ids: Iterable[int]) -> dict[int, str]:
    """What the job recorded for these owners (owners it never touched are absent)."""
    states: dict[int, str] = {}
    for batch in chunks(owner_ids, 500):

        def read(conn: Connection, batch: list[int] = batch) -> list[tuple[int, str]]:
            rows = conn.execute(query("owner_states", conn.dialect.name), {"owner_ids": batch})
            return [(r.owner_id, r.state) for r in rows]

        states.update(db.transaction(engine, read))
    return states


def chunks(ids: Iterable[int], size: int) -> Iterator[list[int]]:
    """Batches of `size` ids from a stream, the last one shorter."""
    iterator = iter(ids)
    while batch := list(islice(iterator, size)):
        yield batch


def wave_owners(engine: Engine, wave: Wave, salt: str, *, retry_failed: bool) -> Iterator[int]:
    """The owner ids a run of the wave attempts now, in user-id order."""
    for candidate in candidates(engine, wave):
        if selects(wave, salt, candidate) and to_attempt(candidate, retry_failed=retry_failed):
            yield candidate.owner_id
