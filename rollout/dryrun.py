"""The dry run of a wave (SPEC 7): the batches a run would migrate now, computed by the migration's
own `compute_batch`, read-only, streamed batch by batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine

from rollout import db, dialect
from rollout.migration import BatchPlan, compute_batch
from rollout.plan import Plan, Wave, bucket
from rollout.selection import chunks, counts_as_migrated, migrated_owners, wave_owners


@dataclass
class Summary:
    """The report's summary; keys and names as in SPEC 7."""

    owners: int = 0
    organizations_to_create: int = 0
    organizations_reused: int = 0
    projects: int = 0
    members_to_add: int = 0
    billing_accounts: int = 0
    blocked: int = 0
    already_migrated: int = 0
    blocked_by_reason: Counter[str] = field(default_factory=Counter)

    def add(self, batch: BatchPlan) -> None:
        for owner in batch.owners:
            self.owners += 1
            if owner.existing:
                self.organizations_reused += 1
            else:
                self.organizations_to_create += 1
            self.projects += len(owner.projects)
            self.members_to_add += len(owner.members_to_add)
            self.billing_accounts += owner.billing_account_id is not None
        for blocked in batch.blocked:
            self.blocked += 1
            self.blocked_by_reason[blocked.reason] += 1

    def as_dict(self) -> dict[str, object]:
        return {
            "owners": self.owners,
            "organizations_to_create": self.organizations_to_create,
            "organizations_reused": self.organizations_reused,
            "projects": self.projects,
            "members_to_add": self.members_to_add,
            "billing_accounts": self.billing_accounts,
            "blocked": self.blocked,
            "blocked_by_reason": dict(sorted(self.blocked_by_reason.items())),
            "already_migrated": self.already_migrated,
        }


def batches(engine: Engine, plan: Plan, wave: Wave, *, retry_failed: bool = False) -> Iterator[BatchPlan]:
    """What `rollout run --wave` would do now, batch by batch, in the same order and batches."""
    reserved: set[str] = set()
    settings = plan.settings
    for owner_ids in chunks(
        wave_owners(engine, wave, settings.salt, retry_failed=retry_failed), settings.batch_size
    ):

        def compute(conn: Connection, owner_ids: list[int] = owner_ids) -> BatchPlan:
            dialect.read_only(conn)
            return compute_batch(conn, owner_ids, lock=False, reserved_names=reserved)

        yield db.transaction(engine, compute)


def already_migrated(engine: Engine, plan: Plan, wave: Wave) -> int:
    """Owners the job migrated who count under this wave (see `selection.counts_as_migrated`)."""
    salt = plan.settings.salt
    return sum(
        counts_as_migrated(wave, salt, owner_id, by, bucket(salt, owner_id))
        for owner_id, by in migrated_owners(engine)
    )
