"""How fast a run goes: batches sized toward a target duration, and pauses while the database's
health signals are red (GitLab's batched background migrations and gh-ost's throttling are the
models). The rules are pure; `HealthProbe` reads the signals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection

from rollout.engine.waveplan import RolloutSettings
from rollout.errors import first_line
from rollout.store import queries

GROWTH = 1.2  # at most this much bigger per batch: grow carefully, shrink at once
SMOOTHING = 0.3  # weight of the newest batch in the per-owner time
CONTENTION_PAUSE = 0.5  # after a batch that made sessions wait: this share of its duration, lock-free


@dataclass
class BatchSizer:
    """The next batch's size, toward `target_seconds`, from the time per owner of recent batches."""

    size: int
    smallest: int
    largest: int
    target_seconds: float
    per_owner_seconds: float | None = None
    shrunk: bool = False  # the batch under way ran out of time: its duration teaches nothing

    @classmethod
    def for_settings(cls, settings: RolloutSettings) -> BatchSizer:
        smallest, largest = settings.batch_bounds
        return cls(
            min(max(settings.batch_size, smallest), largest), smallest, largest, settings.target_batch_seconds
        )

    def observe(self, owners: int, seconds: float) -> int:
        """Learns from a batch of `owners` that took `seconds`; returns the next size. A batch that
        was shrunk on its way (it ran out of time) is not learnt from: the size was halved instead."""
        if self.shrunk:
            self.shrunk = False
            return self.size
        if owners <= 0 or seconds <= 0:
            return self.size
        sample = seconds / owners
        if self.per_owner_seconds is None:
            self.per_owner_seconds = sample
        else:
            self.per_owner_seconds = SMOOTHING * sample + (1 - SMOOTHING) * self.per_owner_seconds
        # A batch that overran shrinks the next one at once, whatever the average says.
        per_owner = max(self.per_owner_seconds, sample if seconds > self.target_seconds else 0.0)
        wanted = int(self.target_seconds / per_owner)
        self.size = max(self.smallest, min(self.largest, wanted, max(self.size + 1, int(self.size * GROWTH))))
        return self.size

    def shrink(self) -> int:
        """After a batch ran out of time: half the size, and its time is not learnt from."""
        self.size = max(self.smallest, self.size // 2)
        self.shrunk = True
        return self.size


@dataclass(frozen=True)
class Health:
    """Why the job should wait before its next batch, if it should."""

    red: bool
    reason: str | None = None
    signal: str = ""  # which one: a name from THROTTLE_SIGNALS, for the metrics


# Why a run waits, as the metrics count it: `rollout_run_throttles{signal=...}`.
THROTTLE_SIGNALS = ("max_owners_per_second", "waiting_sessions", "replication_lag", "health_query")


def pause_for_rate(owners_done: int, elapsed_seconds: float, max_per_second: float | None) -> float:
    """How long to wait so that the run stays at or under `max_per_second` owners per second."""
    if max_per_second is None or owners_done <= 0:
        return 0.0
    return max(0.0, owners_done / max_per_second - elapsed_seconds)


class HealthProbe:
    """The database's health signals, read between batches.

    Red when a standby's replay lag exceeds `max_replication_lag`, or when the operator's
    `health_query` does not return true (an error counts as red); and, for one pause, when the last
    batch saw more than `max_waiting_sessions` platform sessions waiting on its locks just before it
    committed. The lag is read by
    the caller with the rest of what it reads between batches; the health query runs here, in a
    read-only transaction of its own.
    """

    def __init__(
        self, settings: RolloutSettings, transaction: Callable[[Callable[[Connection], object]], object]
    ) -> None:
        self.settings = settings
        self.transaction = transaction

    def contention(self, waiting_sessions: int) -> Health:
        """Whether the last batch made more platform sessions wait than allowed. The batch has
        committed since, so the run pauses a moment (a lock-free window) rather than backing off."""
        limit = self.settings.max_waiting_sessions
        if limit is not None and waiting_sessions > limit:
            return Health(
                True,
                f"{waiting_sessions} platform sessions waited on the last batch's locks",
                "waiting_sessions",
            )
        return Health(False)

    def check(self, replication_lag: object) -> Health:
        """The lasting signals: replication lag and the operator's health query."""
        seconds = float(replication_lag) if isinstance(replication_lag, int | float | Decimal) else None
        allowed = self.settings.max_replication_lag
        if allowed is not None and seconds is not None and seconds > allowed.total_seconds():
            return Health(
                True,
                f"replication lag {seconds:.1f} s over {allowed.total_seconds():.0f} s",
                "replication_lag",
            )
        if self.settings.health_query is not None:
            try:
                healthy = self.transaction(
                    lambda conn: queries.operator_check(conn, self.settings.health_query or "")
                )
            except Exception as exc:
                return Health(True, f"health query failed: {first_line(exc)}", "health_query")
            if healthy is not True:
                return Health(True, "health query did not return true", "health_query")
        return Health(False)
