"""Databases for the tests: a SQLite file per test, and a PostgreSQL database per test cloned from a
migrated template.

PostgreSQL comes from TEST_DATABASE_URL (a server URL; .ci/run points it at the local server), else
from testcontainers; without either the PostgreSQL tests are skipped loudly, except under CI=true
where that is a failure.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from rollout.store.engine import make_engine
from rollout.store.schema import init_schema

BACKENDS = ("sqlite", "postgresql")


def _admin_url_from_libpq() -> str | None:
    """The server a psql user would reach: the libpq PG* environment (PGHOST, PGPORT, PGUSER,
    PGDATABASE, PGPASSWORD), else the local default socket or port; only if a server answers."""
    import psycopg

    try:
        with psycopg.connect(connect_timeout=2, dbname=os.environ.get("PGDATABASE", "postgres")) as conn:
            user, password, host, port, dbname = (
                conn.info.user,
                conn.info.password,
                conn.info.host,
                conn.info.port,
                conn.info.dbname,
            )
    except psycopg.Error:
        return None
    url = make_url("postgresql+psycopg://").set(
        username=user, password=password or None, port=port, database=dbname
    )
    # A Unix socket is a directory: libpq takes it as the `host` parameter.
    url = url.set(query={"host": host}) if host.startswith("/") else url.set(host=host)
    return url.render_as_string(hide_password=False)


def _admin_url_from_container() -> str | None:
    try:
        from testcontainers.postgres import PostgresContainer
    except ImportError:
        return None
    try:
        container = PostgresContainer("postgres:15-alpine", driver="psycopg")
        container.start()
    except Exception as exc:  # no Docker here: the caller decides whether that is fatal
        warnings.warn(f"testcontainers could not start PostgreSQL: {exc}", stacklevel=1)
        return None
    _CONTAINERS.append(container)
    return str(container.get_connection_url())


_CONTAINERS: list[object] = []


NO_SERVER = (
    "no PostgreSQL server: set TEST_DATABASE_URL=postgresql+psycopg://user@host:port/db, or the libpq"
    " PG* variables, or start Docker"
)
_SKIPPED: list[str] = []


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server URL on which tests may create and drop databases: TEST_DATABASE_URL, else
    the server a psql user would reach, else a testcontainers one. Without any, the PostgreSQL
    tests are skipped (and counted in one line at the end), except under CI=true, where that fails."""
    url = os.environ.get("TEST_DATABASE_URL") or _admin_url_from_libpq() or _admin_url_from_container()
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(NO_SERVER + " (CI=true: failing instead of skipping)")
        pytest.skip(NO_SERVER)
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    yield parsed.render_as_string(hide_password=False)
    for container in _CONTAINERS:
        container.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def pg_admin(pg_server: str) -> Iterator[Engine]:
    engine = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def pg_template(pg_server: str, pg_admin: Engine) -> Iterator[str]:
    """A database with the platform and job schemas, cloned by every PostgreSQL test."""
    name = f"rollout_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(pg_server).set(database=name).render_as_string(hide_password=False))
    init_schema(engine, platform=True)
    engine.dispose()
    yield name
    with pg_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def new_pg_database(pg_server: str, pg_admin: Engine, template: str) -> str:
    name = f"rollout_t_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    return make_url(pg_server).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(pg_admin: Engine, url: str) -> None:
    with pg_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database (platform and job tables) on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rollout.db'}"
        engine = make_engine(url, create=True)
        init_schema(engine, platform=True)
        engine.dispose()
        yield url
        return
    server = request.getfixturevalue("pg_server")
    admin = request.getfixturevalue("pg_admin")
    url = new_pg_database(server, admin, request.getfixturevalue("pg_template"))
    yield url
    drop_pg_database(admin, url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and isinstance(report.longrepr, tuple) and NO_SERVER in str(report.longrepr[2]):
        _SKIPPED.append(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line for every PostgreSQL test skipped for want of a server, and how to run them."""
    if _SKIPPED:
        terminalreporter.write_line(
            f"SKIPPED {len(_SKIPPED)} PostgreSQL tests: {NO_SERVER}.", yellow=True, bold=True
        )


@pytest.fixture
def role(engine: Engine, db_url: str, pg_admin: Engine) -> Iterator[tuple[str, str]]:
    """A fresh login role with no privilege at all, and the database URL that connects as it."""
    if engine.dialect.name != "postgresql":
        pytest.skip("roles and privileges are PostgreSQL's")
    name = f"rollout_job_{uuid.uuid4().hex[:8]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{name}" LOGIN'))
    yield name, make_url(db_url).set(username=name).render_as_string(hide_password=False)
    with engine.begin() as conn:
        conn.execute(text(f'DROP OWNED BY "{name}"'))
    engine.dispose()
    with pg_admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'"))
        conn.execute(text(f'DROP ROLE "{name}"'))
