"""The job's notion of now, in one place so that tests can move it instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime

_frozen: datetime | None = None


def utcnow() -> datetime:
    return _frozen if _frozen is not None else datetime.now(UTC)


def freeze(moment: datetime | None) -> None:
    """Pins `utcnow()` to a moment (None releases it); for tests and rehearsals."""
    global _frozen
    _frozen = moment
