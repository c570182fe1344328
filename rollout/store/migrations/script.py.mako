"""${message}"""

from rollout.store.schema_version import run_file

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}


def upgrade() -> None:
    run_file("${up_revision}_name.sql")
