"""`rollout plan`: the dry run of a wave, computed by the migration's own `compute_batch`,
read-only, streamed batch by batch; and the content of its JSON report (the entries and the
fingerprint that `run --from-plan` checks)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine

from rollout.engine import selection
from rollout.engine.batches import chunks
from rollout.engine.changes import BatchChanges, BlockedOwner, OwnerChanges
from rollout.engine.migration import compute_batch
from rollout.engine.selection import counts_as_migrated, migrated_owners, wave_owners
from rollout.engine.waveplan import Wave, WavePlan, bucket
from rollout.store import queries
from rollout.store.engine import transaction

FINGERPRINT_PREFIX = "sha256:"


def batches(
    engine: Engine, plan: WavePlan, wave: Wave, *, retry_failed: bool = False
) -> Iterator[BatchChanges]:
    """What `rollout run --wave` would do now, batch by batch, in the same order and batches.

    The names handed to earlier batches are reserved for later ones, exactly as the run will have
    created them by then."""
    reserved: set[str] = set()
    settings = plan.settings
    for owner_ids in chunks(
        wave_owners(engine, wave, settings.salt, retry_failed=retry_failed), settings.batch_size
    ):

        def compute(conn: Connection, owner_ids: list[int] = owner_ids) -> BatchChanges:
            queries.execute(conn, "read_only")
            return compute_batch(
                conn, owner_ids, lock=False, reserved_names=reserved, forbidden_names=settings.reserved_names
            )

        yield transaction(engine, compute)


def already_migrated(engine: Engine, plan: WavePlan, wave: Wave) -> int:
    """Owners the job migrated who count under this wave (see `selection.counts_as_migrated`)."""
    salt = plan.settings.salt
    return sum(
        counts_as_migrated(wave, salt, owner_id, by, bucket(salt, owner_id))
        for owner_id, by in migrated_owners(engine)
    )


def unknown_owners(engine: Engine, wave: Wave) -> tuple[int, ...]:
    """The owner ids the wave lists that are not users (see `selection.unknown_owners`)."""
    return transaction(engine, lambda conn: selection.unknown_owners(conn, wave))


def owner_entry(owner: OwnerChanges) -> dict[str, Any]:
    """An owner as the JSON report shows it, and as `run --from-plan` compares it."""
    return {
        "owner_id": owner.owner_id,
        "username": owner.username,
        "organization": {
            "name": owner.organization_name,
            "label": owner.organization_label,
            "existing": owner.existing,
            "id": owner.organization_id,
        },
        "projects": list(owner.projects),
        "members_to_add": list(owner.members_to_add),
        "billing_account_id": owner.billing_account_id,
    }


def blocked_entry(blocked: BlockedOwner) -> dict[str, Any]:
    return {"owner_id": blocked.owner_id, "username": blocked.username, "reason": str(blocked.reason)}


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class Fingerprint:
    """A digest of the wave name, the owner entries in report order and the blocked entries in report
    order. Owners and blocked owners are digested apart, so the order in which a writer meets them
    (interleaved, batch by batch) does not matter."""

    def __init__(self, wave: str) -> None:
        self._wave = wave
        self._owners = hashlib.sha256()
        self._blocked = hashlib.sha256()

    def owner(self, entry: dict[str, Any]) -> None:
        self._owners.update(_canonical(entry))

    def blocked(self, entry: dict[str, Any]) -> None:
        self._blocked.update(_canonical(entry))

    def hexdigest(self) -> str:
        whole = hashlib.sha256(f"wave:{self._wave}\n".encode())
        whole.update(self._owners.digest() + self._blocked.digest())
        return FINGERPRINT_PREFIX + whole.hexdigest()


def fingerprint_of(report: dict[str, Any]) -> str:
    """The fingerprint a JSON report's content should carry."""
    fp = Fingerprint(str(report.get("wave")))
    for entry in report.get("owners", []):
        fp.owner(entry)
    for entry in report.get("blocked", []):
        fp.blocked(entry)
    return fp.hexdigest()
