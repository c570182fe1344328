"""`rollout pause` and `rollout resume`: the switch in the database that running workers read
between batches and new runs read first."""

from __future__ import annotations

from sqlalchemy import Engine

from rollout.engine import ledger
from rollout.store.engine import transaction


def set_paused(engine: Engine, paused: bool, reason: str | None, operator: str) -> None:
    """Pauses (with the reason, or the one given before) or resumes; who and when are recorded."""
    transaction(engine, lambda conn: ledger.set_paused(conn, paused, reason, operator))
