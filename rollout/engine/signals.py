"""Stop signals: the first SIGTERM/SIGINT asks the loop to stop after its batch, the second aborts
the batch under way (it rolls back)."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class Aborted(BaseException):
    """A second stop signal: the batch under way is rolled back."""


class StopSignals:
    """Installed for the duration of a run, on the main thread (a runner on another thread is
    stopped by its owner)."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        # Nothing here may take a lock (a log line would: the signal can arrive while this very
        # thread holds the logger's write lock). The loop reports the stop.
        if self.requested:
            raise Aborted(signal.Signals(signum).name)
        self.requested = True
        self.signal_name = signal.Signals(signum).name
