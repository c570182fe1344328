"""What a batch of owners would change: computed once by `migration.compute_batch`, rendered by
the dry-run report, checked against an approved report, carried out by `apply.apply_batch`."""

from __future__ import annotations

from dataclasses import dataclass, field

from rollout.engine.states import BlockedReason


@dataclass(frozen=True)
class OwnerChanges:
    """What migrating one owner does."""

    owner_id: int
    username: str
    organization_name: str
    organization_label: str
    organization_id: int | None  # the reused organization; None when one is created
    projects: tuple[str, ...]
    members_to_add: tuple[int, ...]
    owner_permissions_to_add: tuple[str, ...]
    owner_is_member: bool
    billing_account_id: int | None
    access_digests: tuple[tuple[str, str], ...] = field(repr=False)

    @property
    def existing(self) -> bool:
        return self.organization_id is not None

    @property
    def nothing_to_do(self) -> bool:
        """Nothing to write: what a migrated owner with no late write looks like."""
        return (
            self.existing
            and self.owner_is_member
            and not (self.projects or self.members_to_add or self.owner_permissions_to_add)
            and self.billing_account_id is None
        )


@dataclass(frozen=True)
class BlockedOwner:
    owner_id: int
    username: str
    reason: BlockedReason


@dataclass(frozen=True)
class BatchChanges:
    owners: tuple[OwnerChanges, ...]
    blocked: tuple[BlockedOwner, ...]
    deferred: tuple[int, ...] = ()  # another transaction held rows these owners need
    deferred_names: frozenset[str] = frozenset()  # their names' bases, which later owners must not take first
    lock_seconds: float = 0.0


@dataclass(frozen=True)
class Drift:
    """An owner of an approved report whose changes no longer match it: skipped, with why."""

    owner_id: int
    why: str


@dataclass
class ChangeTotals:
    """What a stream of batches adds up to: the dry-run report's summary."""

    owners: int = 0
    organizations_to_create: int = 0
    organizations_reused: int = 0
    projects: int = 0
    members_to_add: int = 0
    billing_accounts: int = 0
    blocked: int = 0
    blocked_by_reason: dict[str, int] = field(default_factory=dict)
    already_migrated: int = 0

    def add(self, batch: BatchChanges) -> None:
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
            reason = str(blocked.reason)
            self.blocked_by_reason[reason] = self.blocked_by_reason.get(reason, 0) + 1
