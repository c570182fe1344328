"""Jobs, claims and reserved names: several workers and hosts on one wave."""

from rollout.store.schema_version import run_file

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    run_file("0003_workers.sql")
