"""Alembic's environment: migrations run on the connection (and in the transaction) the caller
opened, recording the revision in `rollout_schema_version`."""

from __future__ import annotations

from alembic import context

from rollout.store.schema_version import VERSION_TABLE

context.configure(
    connection=context.config.attributes["connection"],
    version_table=VERSION_TABLE,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
