"""`rollout db indexes` and the index preflight of `plan` and `run` (`rollout.store.indexes`)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from rollout.store import indexes
from rollout.store.engine import transaction
from rollout.store.indexes import Index


def missing_indexes(engine: Engine) -> list[Index]:
    """The platform lookups of the job that no index serves."""
    return transaction(engine, indexes.missing)


def build_indexes(engine: Engine, announce: Callable[[Index], None]) -> list[Index]:
    """Builds the missing indexes one at a time; `announce` is told of each before it starts."""
    return indexes.build_missing(engine, announce)
