"""Engines, and transactions with the retry policy: the only place a transaction is opened."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import structlog
from sqlalchemy import Connection, Engine, create_engine
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
from tenacity.stop import stop_base

from rollout.errors import (
    ConcurrentChange,
    DatabaseUnavailable,
    PermissionDenied,
    RolloutError,
    UsageError,
    first_line,
)
from rollout.store import dialect

T = TypeVar("T")
log = structlog.get_logger("rollout.store")

DEFAULT_ATTEMPTS = 6
MAX_WAIT_S = 15.0
MAX_RETRY_WINDOW_S = 60.0


_BAD_URL = (
    "bad database URL (not shown: it may hold a password): {why}; expected"
    " postgresql+psycopg://USER:PASSWORD@HOST:PORT/DBNAME or sqlite:///PATH"
)
_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg", "postgresql+psycopg": None}


def make_engine(url: str, *, create: bool = False, read_only: bool = False) -> Engine:
    """An engine for a `postgresql+psycopg://` or `sqlite:///` URL (surrounding spaces, an env-file
    typo, are ignored). No error message ever shows the URL's password.

    SQLite: a file that does not exist is only created with `create` (`db init`, `demo`), which is
    also the only time the file's journal mode is set; with `read_only` the file is opened
    read-only. Any other command leaves a file it does not recognise exactly as it was.
    """
    try:
        parsed = make_url(url.strip())
        parsed.port  # noqa: B018 (parses the port: a non-numeric one raises here, not at connect)
    except ArgumentError:
        raise UsageError(_BAD_URL.format(why="it cannot be parsed")) from None
    except ValueError:
        raise UsageError(_BAD_URL.format(why="its port is not a number")) from None
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend in ("postgresql", "postgres"):
        if parsed.drivername not in _DRIVERS:
            raise UsageError(
                f"unsupported database driver {parsed.drivername!r}: rollout talks to PostgreSQL through psycopg 3,"
                " postgresql+psycopg://"
            )
        parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs = {
            "pool_pre_ping": True,
            "pool_use_lifo": True,
            "connect_args": {"connect_timeout": 10, "application_name": "rollout"},
        }
    elif backend == dialect.SQLITE:
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise UsageError("an in-memory SQLite database would vanish with the process; give a file")
        if not create and not Path(database).exists():
            raise UsageError(f"no database at {database!r}; run `rollout db init` or `rollout demo` first")
        if read_only:
            parsed = parsed.set(
                database=f"file:{quote(str(Path(database).resolve()))}?mode=ro", query={"uri": "true"}
            )
    else:
        raise UsageError(
            f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}:"
            " use postgresql+psycopg:// or sqlite:///"
        )
    try:
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise UsageError(
            _BAD_URL.format(why=first_line(exc).replace(str(parsed.password or "\0"), "***"))
        ) from None
    dialect.configure(engine, init=create, read_only=read_only)
    return engine


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("db.retry", attempt=state.attempt_number, error=first_line(exc) if exc else None)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ConcurrentChange) or dialect.is_transient(exc)


def default_attempts() -> int:
    """Tries per transaction: ROLLOUT_DB_ATTEMPTS, else `DEFAULT_ATTEMPTS`."""
    try:
        return max(1, int(os.environ.get("ROLLOUT_DB_ATTEMPTS", str(DEFAULT_ATTEMPTS))))
    except ValueError as exc:
        raise UsageError("ROLLOUT_DB_ATTEMPTS must be a whole number") from exc


class stop_when_interrupted(stop_base):
    """Stops retrying once `interrupt()` is true."""

    def __init__(self, interrupt: Callable[[], bool]) -> None:
        self.interrupt = interrupt

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.interrupt()


def _sliced_sleep(interrupt: Callable[[], bool]) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not interrupt() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(0.1, left))

    return sleep


def retrying(attempts: int | None = None, interrupt: Callable[[], bool] | None = None) -> Retrying:
    """The retry policy for a whole transaction, and the one description of it.

    Only transient errors are retried (`dialect.is_transient`, or `ConcurrentChange`). Before try
    n + 1 the job waits a random time between 0 and min(2^(n-1), 15) seconds (full jitter): with the
    default 6 tries that is 5 waits of at most 1, 2, 4, 8 and 15 s, 30 s at most and 15 s on
    average. No try starts more than 60 s after the first. Then the last error is raised: an
    unreachable database becomes `DatabaseUnavailable` (exit 75).
    """
    attempts = attempts or default_attempts()
    stop = stop_after_attempt(attempts) | stop_after_delay(MAX_RETRY_WINDOW_S)
    if interrupt is None:
        return Retrying(
            stop=stop,
            wait=wait_random_exponential(multiplier=1, max=MAX_WAIT_S),
            retry=retry_if_exception(_retryable),
            before_sleep=_log_retry,
            reraise=True,
        )
    # A stop signal ends the waiting at once, and no further try starts.
    return Retrying(
        stop=stop | stop_when_interrupted(interrupt),
        wait=wait_random_exponential(multiplier=1, max=MAX_WAIT_S),
        retry=retry_if_exception(_retryable),
        before_sleep=_log_retry,
        sleep=_sliced_sleep(interrupt),
        reraise=True,
    )


def transaction(
    engine: Engine,
    work: Callable[[Connection], T],
    *,
    attempts: int | None = None,
    interrupt: Callable[[], bool] | None = None,
) -> T:
    """Runs `work` in one transaction, retried whole on transient errors; `interrupt` (a stop
    signal) cuts the waits between tries short and starts no further try.

    A database that stays unreachable becomes `DatabaseUnavailable` (exit 75); other errors pass.
    """
    try:
        for attempt in retrying(attempts, interrupt):
            with attempt, engine.begin() as conn:
                return work(conn)
    except DBAPIError as exc:
        known = operator_error(engine, exc)
        if known is None:
            raise
        raise known from (exc if isinstance(known, PermissionDenied) else None)
    raise AssertionError("unreachable")  # pragma: no cover


def operator_error(engine: Engine, exc: DBAPIError) -> RolloutError | None:
    """What a driver error means to the operator, as one of the job's errors (a missing privilege,
    a URL or credentials the server refuses, a server out of reach); None for any other error."""
    # A driver's message names the host, the database and the user, never the password; the
    # password is scrubbed anyway, in case a server echoes a connection string.
    said = first_line(exc).replace(engine.url.password or "\0", "***")
    if dialect.is_permission_denied(exc):
        return PermissionDenied(
            f"the database role lacks a privilege: {said} (`rollout db grants` lists them)"
        )
    if dialect.is_misconfigured(exc):
        return UsageError(f"cannot use the database: {said}")
    if dialect.is_unreachable(exc):
        return DatabaseUnavailable(f"database unreachable after retries: {said}")
    return None
