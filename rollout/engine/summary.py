"""What a run is given and what it gives back: its limits, the progress display and approved-report
gate it may plug in, and its summary."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Protocol, runtime_checkable

from sqlalchemy import Connection

from rollout.engine.changes import BatchChanges, Drift
from rollout.engine.history import RunCounts
from rollout.engine.states import RunOutcome, StopReason


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (Linux), for the log: memory must stay flat."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


class Progress(Protocol):
    """What the loop tells a progress display (a bar on a terminal)."""

    def update(self, owners: int) -> None: ...

    def finish(self) -> None: ...


class ReportGate(Protocol):
    """An approved report the run must follow: the names it planned, and which owners of a batch
    still match it (the others are skipped as drifted)."""

    def planned_names(self) -> Mapping[int, str]: ...

    def admit(self, changes: BatchChanges, owner_ids: Sequence[int]) -> tuple[BatchChanges, list[Drift]]: ...


@runtime_checkable
class OwnerSource(Protocol):
    """Where a run's owners come from, batch by batch: a stream, or a wave job's claims."""

    def take(self, n: int) -> list[int]:
        """Up to `n` next owners, in user-id order; empty when there are no more."""
        ...

    def more(self) -> bool:
        """Whether owners are left (a run cut by `--max-owners` is partial)."""
        ...

    def settle(self, *, failing: bool) -> None:
        """Waits for the source's work in the background, if any, before the run ends; raises its
        error unless the run is `failing` already (then the error is logged)."""
        ...


class Stream:
    """An `OwnerSource` over an iterable of owner ids."""

    def __init__(self, owner_ids: Iterable[int]) -> None:
        self._owners: Iterator[int] = iter(owner_ids)
        self._next: list[int] = []

    def take(self, n: int) -> list[int]:
        batch = self._next[:n]
        self._next = self._next[n:]
        return batch + list(islice(self._owners, n - len(batch)))

    def more(self) -> bool:
        if not self._next:
            self._next = list(islice(self._owners, 1))
        return bool(self._next)

    def settle(self, *, failing: bool) -> None:
        """Nothing works in the background of a stream."""


@dataclass(frozen=True)
class Fellows:
    """What the other workers of a wave's job did, those at work since this one joined it: the
    owners they attempted and failed, and when the first of them started. The plan's error budget
    and `max_owners_per_second` hold for the workers together."""

    attempted: int = 0
    failed: int = 0
    started_at: datetime | None = None


class BatchHooks(Protocol):
    """What a wave job's claims do in each batch's record: checkpoint and renew their lease; and
    what the job's other workers did, read in the same round."""

    def concluded(self, conn: Connection, owner_ids: Sequence[int]) -> None: ...

    def renew(self, conn: Connection) -> None: ...

    def fellows(self, conn: Connection) -> Fellows: ...


@dataclass
class Limits:
    """When a run stops before its selection is exhausted."""

    max_owners: int | None = None
    time_budget: timedelta | None = None


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    outcome: RunOutcome
    counts: RunCounts
    stopped_by: StopReason | None = None  # why the run ended before its selection did
    stop_detail: str | None = None  # the signal, for a stop by signal
    failures: tuple[tuple[int, str], ...] = field(default=())
    drifted: tuple[Drift, ...] = field(default=())
    deferred: tuple[int, ...] = field(default=())  # owners whose rows stayed held
    duration_s: float = 0.0
    throttles: tuple[tuple[str, int], ...] = field(default=())  # pauses by health signal
    workers: tuple[tuple[str, RunCounts], ...] = field(default=())  # each worker's, for `--workers N`

    @property
    def stop_text(self) -> str | None:
        """Why the run stopped early, as the operator reads it."""
        if self.stopped_by is StopReason.ABORTED:
            return f"aborted by {self.stop_detail}: the batch under way was rolled back"
        return str(self.stopped_by) if self.stopped_by else None
