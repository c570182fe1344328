"""structlog set-up: JSON lines off a terminal, readable lines on one, on stderr.

stdout is left to reports, so that `rollout plan --format json > wave.json` stays clean. Off a
terminal (or with `--log-format json`) every line on stderr is one JSON object: log events, and the
messages a person would read on a terminal (an error, an owner that failed) as events too.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog

_json = not sys.stderr.isatty()
_bar_shown = False
_configured: tuple[str, int] = ("json" if _json else "console", 0)


class _Lines:
    """Writes a log line on stderr; on a terminal with a progress bar shown, clears the bar's line
    first, so that the bar and a log line never share a line (the bar draws itself again below)."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def msg(self, message: str) -> None:
        if _bar_shown:
            self._file.write("\r\x1b[K")
        self._file.write(message + "\n")
        self._file.flush()

    log = debug = info = warning = error = critical = msg


def configure(log_format: str | None = None, verbosity: int = 0) -> None:
    """`verbosity`: -1 quiet (warnings and up), 0 info, 1 debug. Colours on a terminal, unless
    NO_COLOR is set (https://no-color.org)."""
    global _json, _configured
    if log_format is None:
        log_format = "console" if sys.stderr.isatty() else "json"
    _json = log_format == "json"
    _configured = (log_format, verbosity)
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    renderer: structlog.typing.Processor
    if _json:
        renderer = structlog.processors.JSONRenderer()
    else:
        colors = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: _Lines(sys.stderr),
        cache_logger_on_first_use=False,
    )


def configured() -> tuple[str, int]:
    """The format and verbosity in force: a worker process is configured the same."""
    return _configured


def is_json() -> bool:
    """Whether stderr carries JSON lines (then every message on it is an event)."""
    return _json


def bar_shown(shown: bool) -> None:
    """The progress bar tells the log writer whether it holds the terminal's last line."""
    global _bar_shown
    _bar_shown = shown


def bind(run_id: str, wave: str | None) -> None:
    """Every later event carries the run id and the wave (so that a run can be followed in any log store)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(run_id=run_id, wave=wave)


def error_line(message: str, exit_code: int, **fields: Any) -> str:
    """The last line of a command that failed: a sentence on a terminal, an event off one (even
    when logging was not set up yet, say for a bad option)."""
    if not _json:
        return f"rollout: error: {message}"
    event = {
        **structlog.contextvars.get_contextvars(),
        "event": "rollout.error",
        "error": message,
        "exit_code": exit_code,
        **fields,
        "level": "error",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    return json.dumps(event, default=str)
