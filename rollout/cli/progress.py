"""The progress bar of a run on a terminal: owners done of those the run will attempt, rate, time left."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import click

from rollout import logs
from rollout.operations.run import ProgressFactory


class Bar:
    """Owners done out of those selected, with rate and time left, on stderr."""

    def __init__(self, total: int | None) -> None:
        self._bar: Any = click.progressbar(
            length=total or 0,
            label="owners",
            color=not os.environ.get("NO_COLOR"),
            file=sys.stderr,
            show_pos=True,
            show_eta=True,
            item_show_func=lambda rate: rate,
        )
        self._started = time.monotonic()
        self._done = 0
        self._bar.__enter__()
        logs.bar_shown(True)

    def update(self, owners: int) -> None:
        self._done += owners
        rate = self._done / max(time.monotonic() - self._started, 1e-6)
        self._bar.update(owners, f"{rate:,.0f} owners/s")

    def finish(self) -> None:
        self._bar.__exit__(None, None, None)
        logs.bar_shown(False)


def progress_bar() -> ProgressFactory | None:
    """A bar on a terminal; nothing when stderr goes to a file or a pipe."""
    return Bar if sys.stderr.isatty() else None
