"""The job's schema, versioned with Alembic: each revision runs a file of `sql/schema/migrations/`."""
