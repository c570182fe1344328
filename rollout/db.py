"""Engines, transactions with the retry policy, and the schema of the job."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine, create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from rollout import dialect
from rollout.errors import ConcurrentChange, DatabaseUnavailable, SchemaNotInitialised, UsageError
from rollout.sql import query, script

T = TypeVar("T")
log = structlog.get_logger("rollout.db")

SCHEMA_VERSION = "1"
PLATFORM_TABLES = (
    "users",
    "organizations",
    "organization_members",
    "organization_member_permissions",
    "projects",
    "project_access",
    "environments",
    "environment_access",
    "billing_accounts",
    "subscriptions",
    "invoices",
    "vouchers",
)
JOB_TABLES = (
    "rollout_meta",
    "rollout_runs",
    "rollout_owners",
    "rollout_moved_projects",
    "rollout_added_members",
    "rollout_added_permissions",
    "rollout_control",
    "rollout_waves",
)


def make_engine(url: str, *, create: bool = False) -> Engine:
    """An engine for a `postgresql+psycopg://` or `sqlite:///` URL.

    A SQLite file that does not exist is only created when `create` is set, so that a mistyped
    path fails instead of leaving an empty database behind.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UsageError(f"bad database URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres") and parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs: dict[str, Any] = {}
    if backend in ("postgresql", "postgres"):
        kwargs = {
            "pool_pre_ping": True,
            "connect_args": {"connect_timeout": 10, "application_name": "rollout"},
        }
    elif backend == dialect.SQLITE:
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise UsageError("an in-memory SQLite database would vanish with the process; give a file")
        if not create and not Path(database).exists():
            raise UsageError(f"no database at {database!r}; run `rollout db init` or `rollout demo` first")
    else:
        raise UsageError(
            f"unsupported database URL {parsed.render_as_string()!r}: use postgresql+psycopg:// or sqlite:///"
        )
    try:
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise UsageError(f"bad database URL {parsed.render_as_string()!r}: {exc}") from exc
    dialect.configure(engine)
    return engine


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("db.retry", attempt=state.attempt_number, error=_one_line(exc))


def _one_line(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ConcurrentChange) or dialect.is_transient(exc)


def default_attempts() -> int:
    """Tries per transaction: ROLLOUT_DB_ATTEMPTS, default 6 (about half a minute of backoff)."""
    try:
        return max(1, int(os.environ.get("ROLLOUT_DB_ATTEMPTS", "6")))
    except ValueError as exc:
        raise UsageError("ROLLOUT_DB_ATTEMPTS must be a whole number") from exc


def retrying(attempts: int | None = None, max_delay: float = 60.0) -> Retrying:
    """The retry policy for a whole transaction: transient errors only, with jittered backoff."""
    attempts = attempts or default_attempts()
    return Retrying(
        stop=stop_after_attempt(attempts) | stop_after_delay(max_delay),
        wait=wait_random_exponential(multiplier=1, max=15),
        retry=retry_if_exception(_retryable),
        before_sleep=_log_retry,
        reraise=True,
    )


def transaction(engine: Engine, work: Callable[[Connection], T], *, attempts: int | None = None) -> T:
    """Runs `work` in one transaction, retried whole on transient errors.

    A database that stays unreachable becomes `DatabaseUnavailable` (exit 75); other errors pass.
    """
    try:
        for attempt in retrying(attempts):
            with attempt, engine.begin() as conn:
                return work(conn)
    except DBAPIError as exc:
        if dialect.is_misconfigured(exc):
            raise UsageError(f"cannot use the database: {_one_line(exc)}") from exc
        if dialect.is_unreachable(exc):
            raise DatabaseUnavailable(f"database unreachable after retries: {_one_line(exc)}") from exc
        raise
    raise AssertionError("unreachable")  # pragma: no cover


def describe(exc: BaseException) -> str:
    """One line for a database error, without the SQL and parameters SQLAlchemy appends."""
    return _one_line(exc)


def init_schema(engine: Engine, *, platform: bool) -> None:
    """Creates the job's tables, and with `platform` the platform tables of SPEC 2. Idempotent."""

    def create(conn: Connection) -> None:
        name = conn.dialect.name
        if platform:
            for statement in script("platform.sql", name):
                conn.exec_driver_sql(statement)
        for statement in script("rollout.sql", name):
            conn.exec_driver_sql(statement)
        conn.execute(query("set_meta", name), {"key": "schema_version", "value": SCHEMA_VERSION})

    transaction(engine, create)


def check_schema(engine: Engine) -> None:
    """Refuses to work on a database without the platform tables or the job's own (exit 2)."""

    def tables(conn: Connection) -> set[str]:
        return set(inspect(conn).get_table_names())

    try:
        present = transaction(engine, tables)
    except DBAPIError as exc:
        if engine.dialect.name == dialect.SQLITE and "not a database" in str(exc):
            raise UsageError(f"{engine.url.database} is not a SQLite database") from exc
        raise
    missing_platform = [t for t in PLATFORM_TABLES if t not in present]
    if missing_platform:
        raise SchemaNotInitialised(
            f"platform tables missing ({', '.join(missing_platform)}); this is not the platform's database,"
            " or run `rollout db init --platform-schema` for a rehearsal"
        )
    missing_job = [t for t in JOB_TABLES if t not in present]
    if missing_job:
        raise SchemaNotInitialised("the job's tables are missing; run `rollout db init`")


def user_exists(conn: Connection, user_id: int) -> bool:
    return conn.execute(query("user_exists", conn.dialect.name), {"user_id": user_id}).first() is not None
