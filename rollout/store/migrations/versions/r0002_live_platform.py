"""Deferred owners, throttled runs, and the batch history."""

from rollout.store.schema_version import run_file

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    run_file("0002_live_platform.sql")
