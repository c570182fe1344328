"""Transient database errors retry the whole transaction, on PostgreSQL where they happen."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from structlog.testing import capture_logs

from tests.support import Platform, run_wave, scalar


def test_a_serialization_failure_is_retried_not_counted_as_failed(engine: Engine) -> None:
    """A batch whose first two attempts die with SQLSTATE 40001 commits on the third: every owner
    migrated, none failed, and no batch split."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLSTATE 40001 is PostgreSQL's; SQLite's busy errors are covered by the same predicate")
    with engine.begin() as conn:
        p = Platform(conn)
        for owner in range(1, 6):
            p.user(owner)
            p.project(f"p{owner}", owner)
        # A sequence is not transactional: it counts attempts across rollbacks.
        conn.execute(text("CREATE SEQUENCE attempts"))
        conn.execute(
            text(
                "CREATE FUNCTION flaky() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF nextval('attempts') <= 2 THEN RAISE EXCEPTION 'could not serialize' USING ERRCODE = '40001'; END IF; "
                "RETURN NEW; END $$"
            )
        )
        conn.execute(
            text("CREATE TRIGGER flaky BEFORE UPDATE ON projects FOR EACH STATEMENT EXECUTE FUNCTION flaky()")
        )
    with capture_logs() as logged:
        summary = run_wave(engine, batch_size=10)
    assert (summary.counts.migrated, summary.counts.failed, summary.counts.batches) == (5, 0, 1)
    retries = [e for e in logged if e["event"] == "db.retry"]
    assert [e["attempt"] for e in retries] == [1, 2] and all("serialize" in e["error"] for e in retries)
    assert scalar(engine, "SELECT COUNT(*) FROM projects WHERE organization_id IS NULL") == 0
    assert scalar(engine, "SELECT last_value FROM attempts") == 3
