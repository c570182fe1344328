"""The wave plan: its waves, its `[rollout]` settings, the owners' buckets and the error budget.

`rollout.engine.planfile` reads it from the TOML file; nothing here touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from hashlib import sha256
from pathlib import Path

from rollout.errors import UsageError

BUCKETS = 10_000
"""Owners are spread over this many buckets; a percent `p` covers buckets below `round(p * 100)`."""

MAX_BATCH_SIZE = 10_000
"""The largest `batch_size` accepted: one transaction over more owners holds its locks too long."""


RESERVED_NAMES = (
    "about", "admin", "administrator", "api", "app", "assets", "auth", "billing", "blog", "cdn", "dashboard",
    "docs", "help", "login", "logout", "mail", "new", "oauth", "org", "orgs", "root", "security", "settings",
    "signup", "static", "staff", "status", "support", "system", "team", "www",
)  # fmt: skip
"""The default `reserved_names`: paths and words of a platform's own that an organization named by
a username could shadow or impersonate."""


def bucket(salt: str, user_id: int) -> int:
    """The owner's bucket in `[0, 10000)`: stable for a given salt, independent of every other owner."""
    return int.from_bytes(sha256(f"{salt}:{user_id}".encode()).digest()[:8], "big") % BUCKETS


def percent_threshold(percent: float) -> int:
    """The number of buckets a percent covers: an owner is inside when `bucket < percent_threshold`."""
    return round(percent * 100)


@dataclass(frozen=True)
class RolloutSettings:
    """The `[rollout]` table of the plan; each field has its documented default (docs/plan-file.md).

    `batch_size` is where a run starts; each next batch is sized toward `target_batch_seconds`,
    within `min_batch_size` (default a tenth of `batch_size`) and `max_batch_size` (default
    `batch_size`, so that a plan that says nothing never grows past what it asked for).
    """

    salt: str = "organizations-2021"
    batch_size: int = 500
    error_budget: float = 0.01
    min_attempts: int = 100
    max_failures: int = 50
    # Living beside the platform (docs/migrating-an-owner.md, "Concurrency").
    lock_timeout: timedelta = timedelta(seconds=3)
    statement_timeout: timedelta = timedelta(seconds=60)
    target_batch_seconds: float = 2.0
    min_batch_size: int | None = None
    max_batch_size: int | None = None
    retry_deferred_for: timedelta = timedelta(minutes=2)
    # Yielding to the database.
    max_replication_lag: timedelta | None = timedelta(seconds=10)
    max_waiting_sessions: int | None = 3
    health_query: str | None = None
    max_owners_per_second: float | None = None
    max_throttle: timedelta = timedelta(minutes=10)
    # Names no organization the job creates may take: handled like names already taken.
    reserved_names: tuple[str, ...] = RESERVED_NAMES
    # Several workers (docs/workers.md): a claim whose worker stopped renewing it this long is
    # taken over by another worker.
    claim_ttl: timedelta = timedelta(minutes=2)

    @property
    def batch_bounds(self) -> tuple[int, int]:
        """(smallest, largest) batch the adaptive size may choose."""
        largest = self.max_batch_size if self.max_batch_size is not None else self.batch_size
        smallest = self.min_batch_size if self.min_batch_size is not None else max(1, self.batch_size // 10)
        return min(smallest, largest), largest

    def pinned(self, batch_size: int) -> RolloutSettings:
        """These settings with a fixed batch size (`run --batch-size N`): no adaptation."""
        return replace(self, batch_size=batch_size, min_batch_size=batch_size, max_batch_size=batch_size)

    def over_budget(self, failed: int, attempted: int) -> bool:
        """More than `error_budget` of the attempted owners failed, once `min_attempts` were
        attempted; or `max_failures` failed, whatever the share ("always after this many"; 0 means
        at the first failure). No failure is ever over budget."""
        if failed == 0:
            return False
        if failed >= self.max_failures:
            return True
        return attempted >= self.min_attempts and failed > self.error_budget * attempted


@dataclass(frozen=True)
class Wave:
    """One `[[waves]]` entry, validated.

    `percent` is in `[0, 100]`; `not_before` is timezone-aware UTC. `owners` and `percent` decide
    which legacy owners the wave admits (`admits_bucket`); `regions` and `max_projects` then filter
    on the owners' data and `exclude_owners` removes owners last, both in the selection.
    """

    name: str
    owners: tuple[int, ...] = ()
    percent: float | None = None
    regions: tuple[str, ...] | None = None
    max_projects: int | None = None
    exclude_owners: frozenset[int] = frozenset()
    not_before: datetime | None = None
    soak: timedelta | None = None
    _owner_set: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_owner_set", frozenset(self.owners))

    @property
    def threshold(self) -> int | None:
        """Buckets below this are in the wave by percent; None when the wave has no percent."""
        return None if self.percent is None else percent_threshold(self.percent)

    def admits_bucket(self, salt: str, user_id: int, known_bucket: int | None = None) -> bool:
        """Whether the owner is listed in `owners` or falls inside `percent`; filters are not applied.
        `known_bucket` spares the hash when the caller checks one owner against several waves."""
        if user_id in self._owner_set:
            return True
        threshold = self.threshold
        if threshold is None:
            return False
        return (known_bucket if known_bucket is not None else bucket(salt, user_id)) < threshold

    def excludes(self, user_id: int) -> bool:
        """Whether `exclude_owners` keeps this owner out of the wave, whatever else admits them."""
        return user_id in self.exclude_owners


@dataclass(frozen=True)
class WavePlan:
    """A loaded plan file: its settings and its waves in file order (the order `run --auto` follows)."""

    path: Path
    settings: RolloutSettings
    waves: tuple[Wave, ...]
    fingerprint: str = ""  # sha256 of the file's bytes: which plan a run followed

    @property
    def wave_names(self) -> tuple[str, ...]:
        """The wave names in file order."""
        return tuple(wave.name for wave in self.waves)

    def wave(self, name: str) -> Wave:
        """The wave called `name`; a `UsageError` listing the known waves when there is none."""
        for wave in self.waves:
            if wave.name == name:
                return wave
        raise UsageError(f"unknown wave {name!r}; {self.path} has: {', '.join(self.wave_names)}")
