"""What a batch of owners would change: computed once by `migration.compute_batch`, rendered by
the dry-run report, checked against an approved report, carried out by `apply.apply_batch`."""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

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


_first_two = operator.itemgetter(0, 1)


def access_digest(project_rows: Iterable[Sequence[Any]], environment_rows: Iterable[Sequence[Any]]) -> str:
    """A digest of a project's access rows, to prove later that the job did not modify them.

    `project_rows` are (project_id, user_id, role, …), `environment_rows` (environment_id, user_id,
    role, …); the order they come in does not matter. The digest is the SHA-256 of one line per
    row, `p|project|user|role` then `e|environment|user|role`, each sorted by its first two fields.
    """
    lines = [f"p|{r[0]}|{r[1]}|{r[2]}\n" for r in sorted(project_rows, key=_first_two)]
    lines += [f"e|{r[0]}|{r[1]}|{r[2]}\n" for r in sorted(environment_rows, key=_first_two)]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


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
