"""The job's own records of owners and waves: owner states, what was done for each owner, rollbacks,
wave completions, the pause switch (the run history is `history`).

Every function takes the caller's `Connection`, so that an owner's migration and its checkpoint
commit in one transaction.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Row

from rollout.clock import utcnow
from rollout.engine.states import OwnerState
from rollout.engine.waveplan import RolloutSettings
from rollout.errors import Halted
from rollout.store import queries
from rollout.store.dialect import as_datetime

ERROR_LENGTH = 2000


@dataclass(frozen=True)
class Control:
    paused: bool
    reason: str | None
    changed_at: datetime | None
    changed_by: str | None


@dataclass(frozen=True)
class CompletedWave:
    """A wave as it stood when a run last found it complete; soak counts from `completed_at`."""

    wave: str
    completed_at: datetime
    migrated: int
    failed: int
    blocked: int

    def over_budget(self, settings: RolloutSettings) -> bool:
        return settings.over_budget(self.failed, self.migrated + self.failed)


class WaveCounts(Protocol):
    """What a wave completion records (`tally.WaveStatus` is one)."""

    @property
    def wave(self) -> str: ...
    @property
    def migrated(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def blocked(self) -> int: ...
    @property
    def complete(self) -> bool: ...


# -- owners: what a batch records with its work


def record_migrated(
    conn: Connection, rows: Sequence[Mapping[str, Any]], *, wave: str | None, run_id: str, now: datetime
) -> None:
    """Owners migrated (rows: owner_id, organization_id, organization_name, organization_created,
    billing_account_id). A late arrival keeps what the first migration recorded."""
    queries.execute_rows(conn, "record_migrated_owner", rows, wave=wave, run_id=run_id, now=now)


def record_blocked(
    conn: Connection, rows: Sequence[Mapping[str, Any]], *, wave: str | None, run_id: str, now: datetime
) -> None:
    """Owners blocked (rows: owner_id, reason); a migrated owner stays migrated."""
    queries.execute_rows(conn, "record_blocked_owner", rows, wave=wave, run_id=run_id, now=now)


def record_deferred(
    conn: Connection, owner_ids: Sequence[int], *, wave: str | None, run_id: str, now: datetime
) -> None:
    """Owners whose rows another transaction held (see `states.TRANSITIONS` for what they become)."""
    queries.execute_rows(
        conn, "record_deferred_owner", [{"owner_id": o} for o in owner_ids], wave=wave, run_id=run_id, now=now
    )


def migrated_owners_of(conn: Connection, owner_ids: Sequence[int]) -> dict[int, int]:
    """The migrated owners among these, with the organization the job recorded for each."""
    return {
        r.owner_id: r.organization_id
        for r in queries.rows(conn, "migrated_owners_of", owner_ids=list(owner_ids))
        if r.state == OwnerState.MIGRATED
    }


def moved_projects_in_place(conn: Connection, owner_ids: Sequence[int]) -> Sequence[Row[Any]]:
    """(owner_id, project_id) of the projects the job moved for these owners that are still in the
    organization it moved them to."""
    if not owner_ids:
        return []
    return queries.rows(conn, "moved_projects_in_place", owner_ids=list(owner_ids))


def record_failure(conn: Connection, *, owner_id: int, wave: str | None, run_id: str, error: str) -> None:
    queries.execute(
        conn,
        "record_failed_owner",
        owner_id=owner_id,
        wave=wave,
        run_id=run_id,
        error=error[:ERROR_LENGTH],
        now=utcnow(),
    )


def record_moved_projects(conn: Connection, columns: Mapping[str, Sequence[Any]], *, run_id: str) -> None:
    """columns: project_id, owner_id, organization_id, access_digest."""
    queries.execute_columns(conn, "record_moved_project", columns, run_id=run_id)


def record_added_members(conn: Connection, columns: Mapping[str, Sequence[Any]], *, run_id: str) -> None:
    """columns: organization_id, user_id, owner_id."""
    queries.execute_columns(conn, "record_added_member", columns, run_id=run_id)


def record_added_permissions(conn: Connection, columns: Mapping[str, Sequence[Any]], *, run_id: str) -> None:
    """columns: organization_id, user_id, permission, owner_id."""
    queries.execute_columns(conn, "record_added_permission", columns, run_id=run_id)


def owner_states(conn: Connection, owner_ids: Sequence[int]) -> dict[int, OwnerState]:
    """What the job recorded for these owners (owners it never touched are absent)."""
    return {
        r.owner_id: OwnerState(r.state) for r in queries.rows(conn, "owner_states", owner_ids=list(owner_ids))
    }


def failed_owners(conn: Connection) -> list[dict[str, Any]]:
    """Failed owners, and migrated owners whose late project failed, with their last error."""
    failed = []
    for row in queries.rows(conn, "failed_owners"):
        updated = as_datetime(row.updated_at)
        failed.append(
            {
                "owner_id": row.owner_id,
                "wave": row.wave,
                "attempts": row.attempts,
                "error": row.error,
                "updated_at": updated.isoformat() if updated else None,
            }
        )
    return failed


def migrated_owner_page(conn: Connection, after: int, page_size: int) -> list[tuple[int, str | None]]:
    """(owner id, wave that migrated it) of migrated owners after `after`, in id order."""
    return [
        (r.owner_id, r.wave)
        for r in queries.rows(conn, "migrated_owner_page", after_id=after, page_size=page_size)
    ]


# -- rollback


def migrated_records(conn: Connection, owner_ids: Sequence[int]) -> Sequence[Row[Any]]:
    """What was recorded for the migrated owners among these, in id order."""
    return queries.rows(conn, "rollback_owners", owner_ids=list(owner_ids))


def recorded_work(conn: Connection, owner_ids: Sequence[int]) -> dict[str, Sequence[Row[Any]]]:
    """The projects moved (with whether each is still where the job put it), the members and the
    permissions the job added, for these owners."""
    ids = list(owner_ids)
    return {
        "projects": queries.rows(conn, "recorded_projects", owner_ids=ids),
        "members": queries.rows(conn, "recorded_members", owner_ids=ids),
        "permissions": queries.rows(conn, "recorded_permissions", owner_ids=ids),
    }


def record_rolled_back(conn: Connection, owner_ids: Sequence[int], *, run_id: str) -> None:
    """Keeps what the rollback undid (`rollout_rollbacks`), forgets what was done for these owners
    and records them rolled back."""
    ids = list(owner_ids)
    now = utcnow()
    queries.execute(conn, "record_rollback_history", owner_ids=ids, run_id=run_id, now=now)
    for statement in ("forget_moved_projects", "forget_added_members", "forget_added_permissions"):
        queries.execute(conn, statement, owner_ids=ids)
    queries.execute(conn, "record_rolled_back", owner_ids=ids, run_id=run_id, now=now)


# -- waves


def completed_waves(conn: Connection) -> dict[str, CompletedWave]:
    return {
        r.wave: CompletedWave(
            r.wave, as_datetime(r.completed_at) or utcnow(), r.migrated, r.failed, r.blocked
        )
        for r in queries.rows(conn, "completed_waves")
    }


def record_completions(conn: Connection, waves: Iterable[WaveCounts]) -> None:
    """Dates the first completion of every complete wave (soak counts from it; a later call keeps
    the date) and refreshes its counts, so that failures retried since no longer count against it."""
    now = utcnow()
    queries.execute_many(
        conn,
        "record_wave_completed",
        [
            {"wave": w.wave, "now": now, "migrated": w.migrated, "failed": w.failed, "blocked": w.blocked}
            for w in waves
            if w.complete
        ],
    )


# -- the pause switch and meta facts


def control(conn: Connection) -> Control:
    row = queries.one(conn, "get_control")
    if row is None:
        return Control(False, None, None, None)
    return Control(bool(row.paused), row.reason, as_datetime(row.changed_at), row.changed_by)


def refuse_if_paused(conn: Connection) -> None:
    """`Halted` (exit 4) while the rollout is paused: no run starts then."""
    switch = control(conn)
    if switch.paused:
        raise Halted(f"the rollout is paused ({switch.reason or 'no reason given'}); `rollout resume` first")


def set_paused(conn: Connection, paused: bool, reason: str | None, operator: str) -> None:
    """Pauses or resumes; a pause without a reason keeps the reason given before."""
    if paused and reason is None:
        reason = control(conn).reason
    queries.execute(
        conn,
        "set_control",
        paused=paused,
        reason=reason,
        now=utcnow(),
        changed_by=f"{operator}@{socket.gethostname()}",
    )


def get_meta(conn: Connection, key: str) -> str | None:
    value = queries.scalar(conn, "get_meta", key=key)
    return None if value is None else str(value)


def set_meta(conn: Connection, key: str, value: str) -> None:
    queries.execute(conn, "set_meta", key=key, value=value)
