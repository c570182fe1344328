"""The job's tables as the first release made them."""

from rollout.store.schema_version import run_file

revision = "0001"
down_revision = None


def upgrade() -> None:
    run_file("0001_initial.sql")
