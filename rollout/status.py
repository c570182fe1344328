"""Where the rollout stands: per wave counts, the pause switch, recent runs, failed owners."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from rollout import db, ledger
from rollout.clock import utcnow
from rollout.dialect import as_datetime
from rollout.plan import Plan, Settings, bucket
from rollout.selection import candidates, counts_as_migrated, migrated_owners, selects
from rollout.sql import query


@dataclass(frozen=True)
class WaveStatus:
    """`migrated` counts the migrated owners the wave migrated or admits by list or percent; the
    other counts are of the legacy owners the wave selects now."""

    wave: str
    selected: int
    migrated: int
    failed: int
    blocked: int
    rolled_back: int
    remaining: int
    completed_at: str | None = None

    @property
    def complete(self) -> bool:
        return self.remaining == 0


@dataclass(frozen=True)
class Status:
    waves: tuple[WaveStatus, ...]
    paused: bool
    pause_reason: str | None
    runs: tuple[dict[str, Any], ...]
    failed_owners: tuple[dict[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "waves": [asdict(w) | {"complete": w.complete} for w in self.waves],
            "paused": self.paused,
            "pause_reason": self.pause_reason,
            "runs": list(self.runs),
            "failed_owners": list(self.failed_owners),
        }


_BUCKET_OF_STATE = {"failed": "failed", "blocked": "blocked", "rolled-back": "rolled_back"}


def wave_counts(engine: Engine, plan: Plan) -> list[WaveStatus]:
    """One pass over the legacy owners, counted for every wave at once."""
    tallies = {w.name: Counter[str]() for w in plan.waves}
    for candidate in candidates(engine):
        for wave in plan.waves:
            if selects(wave, plan.settings.salt, candidate):
                tallies[wave.name][_BUCKET_OF_STATE.get(candidate.state or "", "remaining")] += 1
                # A migrated owner's late project: the owner is already among the migrated.
                tallies[wave.name]["late"] += candidate.migrated_before

    done = Counter[str]()
    salt = plan.settings.salt
    for owner_id, by in migrated_owners(engine):
        owner_bucket = bucket(salt, owner_id)
        for wave in plan.waves:
            if counts_as_migrated(wave, salt, owner_id, by, owner_bucket):
                done[wave.name] += 1
    completed = {c.wave: c for c in completed_waves(engine)}
    result = []
    for wave in plan.waves:
        t = tallies[wave.name]
        result.append(
            WaveStatus(
                wave=wave.name,
                selected=max(done[wave.name] + t["failed"] + t["blocked"] + t["remaining"] - t["late"], 0),
                migrated=done[wave.name],
                failed=t["failed"],
                blocked=t["blocked"],
                rolled_back=t["rolled_back"],
                remaining=t["remaining"],
                completed_at=completed[wave.name].completed_at.isoformat()
                if wave.name in completed
                else None,
            )
        )
    return result


def over_budget(settings: Settings, failed: int, attempted: int) -> bool:
    """SPEC 4: more than `error_budget` of the attempted owners failed, once `min_attempts` were
    attempted; or `max_failures` failed, whatever the share."""
    if failed >= settings.max_failures:
        return True
    return attempted >= settings.min_attempts and failed > settings.error_budget * attempted


@dataclass(frozen=True)
class CompletedWave:
    wave: str
    completed_at: datetime
    migrated: int
    failed: int
    blocked: int

    def over_budget(self, settings: Settings) -> bool:
        """Whether the wave's failures exceed the error budget of SPEC 4."""
        return over_budget(settings, self.failed, self.migrated + self.failed)


def completed_waves(engine: Engine) -> list[CompletedWave]:
    def read(conn: Connection) -> list[CompletedWave]:
        return [
            CompletedWave(r.wave, as_datetime(r.completed_at) or utcnow(), r.migrated, r.failed, r.blocked)
            for r in conn.execute(query("completed_waves", conn.dialect.name))
        ]

    return db.transaction(engine, read)


def record_completions(engine: Engine, waves: list[WaveStatus]) -> None:
    """Dates the first completion of every complete wave (soak counts from it; a later call keeps the
    date) and refreshes its counts, so that failures retried since no longer count against it."""
    new = [w for w in waves if w.complete]
    if not new:
        return
    now = utcnow()
    db.transaction(
        engine,
        lambda conn: conn.execute(
            query("record_wave_completed", conn.dialect.name),
            [
                {"wave": w.wave, "now": now, "migrated": w.migrated, "failed": w.failed, "blocked": w.blocked}
                for w in new
            ],
        ),
    )


def status(engine: Engine, plan: Plan, runs: int = 10) -> Status:
    def read(conn: Connection) -> tuple[ledger.Control, list[dict[str, Any]], list[dict[str, Any]]]:
        failed = []
        for row in conn.execute(query("failed_owners", conn.dialect.name)):
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
        return ledger.control(conn), ledger.recent_runs(conn, runs), failed

    control, recent, failed = db.transaction(engine, read)
    return Status(
        tuple(wave_counts(engine, plan)), control.paused, control.reason, tuple(recent), tuple(failed)
    )
