"""The job's notion of now: aware UTC, in one place, so that every recorded time agrees."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
