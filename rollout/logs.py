"""structlog set-up: JSON lines off a terminal, readable lines on one, on stderr.

stdout is left to reports, so that `rollout plan --format json > wave.json` stays clean.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(log_format: str | None = None, verbosity: int = 0) -> None:
    """`verbosity`: -1 quiet (warnings and up), 0 info, 1 debug."""
    if log_format is None:
        log_format = "console" if sys.stderr.isatty() else "json"
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    renderer: structlog.typing.Processor
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def bind(run_id: str, wave: str | None) -> None:
    """Every later event carries the run id and the wave (so that a run can be followed in any log store)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(run_id=run_id, wave=wave)
