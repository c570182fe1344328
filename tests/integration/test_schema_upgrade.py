"""The job's schema moves forward by revisions without losing the ledger: a database made by the
first release (revision 0001, no version table) is upgraded in place; an outdated one is refused
with one line until it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from rollout.clock import utcnow
from rollout.errors import SchemaNotInitialised
from rollout.store import queries
from rollout.store.engine import make_engine
from rollout.store.schema import check_schema, init_schema
from rollout.store.schema_version import current, head
from tests.conftest import drop_pg_database, new_pg_database
from tests.support import rollout, write_plan


@pytest.fixture
def first_release(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    """An empty database with the platform tables and the job's tables as the first release made
    them, with a ledger in them: a migrated owner, a failed one, a finished run."""
    if request.node.callspec.params["backend"] == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        engine = make_engine(url, create=True)
    else:
        server, admin = request.getfixturevalue("pg_server"), request.getfixturevalue("pg_admin")
        url = new_pg_database(server, admin, "template0")
        request.addfinalizer(lambda: drop_pg_database(admin, url))
        engine = make_engine(url)
    with engine.begin() as conn:
        name = conn.dialect.name
        for statement in queries.script("platform.sql", name) + queries.script(
            "migrations/0001_initial.sql", name
        ):
            conn.exec_driver_sql(statement)
        now = utcnow()
        conn.execute(text("INSERT INTO rollout_meta (key, value) VALUES ('schema_version', '1')"))
        conn.execute(
            text(
                "INSERT INTO rollout_owners (owner_id, state, wave, organization_id, organization_name,"
                " organization_created, updated_at) VALUES (1, 'migrated', 'canary', 7, 'alice', TRUE, :now),"
                " (2, 'failed', 'canary', NULL, NULL, FALSE, :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO rollout_runs (id, mode, wave, host, pid, started_at, heartbeat_at, finished_at,"
                " outcome, migrated, failed) VALUES ('r1', 'wave', 'canary', 'h', 1, :now, :now, :now, 'failed', 1, 1)"
            ),
            {"now": now},
        )
    request.addfinalizer(engine.dispose)
    return engine


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_first_release_database_is_upgraded_keeping_its_ledger(
    first_release: Engine, backend: str, tmp_path: Path
) -> None:
    engine = first_release
    url = engine.url.render_as_string(hide_password=False)
    plan = write_plan(tmp_path, '[[waves]]\nname = "canary"\nowners = [1, 2]\n')
    with pytest.raises(SchemaNotInitialised, match="rollout db upgrade"):
        check_schema(engine)
    refused = rollout("status", db_url=url, plan=plan)
    assert refused.returncode == 2 and "run `rollout db upgrade`" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    upgraded = rollout("db", "upgrade", db_url=url, plan=plan)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"from revision 0001 to {head()}" in upgraded.stdout
    with engine.connect() as conn:
        assert current(conn) == head()
        owners = conn.execute(
            text("SELECT owner_id, state, organization_name FROM rollout_owners ORDER BY 1")
        ).all()
        run = conn.execute(text("SELECT outcome, migrated, failed, deferred, swept FROM rollout_runs")).one()
    assert [tuple(r) for r in owners] == [(1, "migrated", "alice"), (2, "failed", None)]
    assert tuple(run) == ("failed", 1, 1, 0, 0)
    check_schema(engine)
    # The new revision's words are accepted now.
    with engine.begin() as conn:
        conn.execute(text("UPDATE rollout_owners SET state = 'deferred' WHERE owner_id = 2"))
    again = rollout("db", "upgrade", db_url=url, plan=plan)
    assert again.returncode == 0 and "already at revision" in again.stdout


def test_init_on_an_empty_database_is_upgrade_to_the_newest_revision(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}", create=True)
    assert init_schema(engine, platform=True) == (None, head())
    assert init_schema(engine, platform=True) == (head(), head())
    check_schema(engine)
    engine.dispose()
