"""Stop signals. The first SIGTERM/SIGINT asks the run to stop after its batch; if the batch is
still running `GRACE_SECONDS` later (waiting on a lock, say), its statement is cancelled and it
rolls back. A second signal rolls the batch back at once. Either way the run ends `interrupted`
within seconds.

The handler only sets flags: it runs on the main thread between two bytecodes, possibly while
that thread holds a lock (the logger's, say), so it must not take one. A watchdog thread does the
cancelling, and every wait of the run sleeps in short slices that look at the flags.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

GRACE_SECONDS = 2.0
_SLICE = 0.1


_early: list[str] = []  # signals a worker process received before its run's handlers were in place


def keep_early_signals() -> None:
    """In a worker process (`run --workers N`): a stop signal that comes before the run installs
    its handlers (while it starts, counts the waves) is kept, and the run honours it as soon as it
    does (it stops before its first batch); one that comes after the run is ignored."""

    def keep(signum: int, _frame: FrameType | None) -> None:
        _early.append(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, keep)


class Aborted(BaseException):
    """The batch under way must roll back: a second signal, or the first one's grace ran out."""


class StopSignals:
    """Installed for the duration of a run. `cancel` is called (from the watchdog thread) with
    nothing while no statement may need cancelling; the runner gives it the work to do."""

    def __init__(self, cancel: Callable[[], None] | None = None, grace: float = GRACE_SECONDS) -> None:
        self.requested = False
        self.aborted = False
        self.signal_name = ""
        self._requested_at = 0.0
        self._cancel = cancel
        self._grace = grace
        self._previous: dict[int, Any] = {}
        self._done = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="rollout-stop-watchdog", daemon=True)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        # Off the main thread (a runner in a test thread) the owner calls `request` instead.
        self._watchdog.start()
        for name in _early:
            self.request(name)
        _early.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._done.set()
        self._watchdog.join(timeout=1)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.request(signal.Signals(signum).name)

    def request(self, name: str) -> None:
        """A stop: the first asks, the second aborts."""
        if self.requested:
            self.aborted = True
            return
        self.signal_name = name
        self._requested_at = time.monotonic()
        self.requested = True

    def sleep(self, seconds: float) -> bool:
        """Sleeps up to `seconds`; True when a stop cut it short."""
        deadline = time.monotonic() + seconds
        while not self.requested:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(_SLICE, left))
        return True

    def _watch(self) -> None:
        while not self._done.wait(_SLICE):
            if not self.requested:
                continue
            if not self.aborted and time.monotonic() - self._requested_at >= self._grace:
                self.aborted = True
            if self.aborted and self._cancel is not None:
                self._cancel()
