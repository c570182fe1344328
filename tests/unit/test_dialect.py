"""Which driver errors are worth retrying, which mean the server is gone, and which mean the
operator's URL or credentials are refused; on the drivers' own exception classes."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import errors as pg
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from rollout.errors import ConcurrentChange
from rollout.store.dialect import (
    array_parameter,
    is_cancelled,
    is_lock_timeout,
    is_misconfigured,
    is_transient,
    is_unreachable,
)
from rollout.store.engine import retrying


def wrapped(orig: BaseException) -> DBAPIError:
    kind = (
        IntegrityError
        if isinstance(orig, psycopg.IntegrityError | sqlite3.IntegrityError)
        else OperationalError
    )
    return kind("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "orig",
    [
        pg.SerializationFailure("could not serialize access"),
        pg.DeadlockDetected("deadlock detected"),
        pg.AdminShutdown("terminating connection due to administrator command"),
        psycopg.OperationalError("connection failed: Connection refused"),
        pg.UniqueViolation('duplicate key value violates unique constraint "organizations_name_key"'),
        sqlite3.OperationalError("database is locked"),
        sqlite3.IntegrityError("UNIQUE constraint failed: organizations.name"),
    ],
)
def test_transient_errors_are_retried(orig: BaseException) -> None:
    assert is_transient(wrapped(orig))


@pytest.mark.parametrize(
    "orig",
    [
        pg.UndefinedTable('relation "projects" does not exist'),
        pg.UniqueViolation('duplicate key value violates unique constraint "rollout_moved_projects_pkey"'),
        pg.RaiseException("injected failure for p3"),
        sqlite3.IntegrityError("FOREIGN KEY constraint failed"),
        psycopg.OperationalError('connection failed: FATAL:  database "nope" does not exist'),
        # A lock timeout is not retried whole: the runner defers the owners instead.
        pg.LockNotAvailable("canceling statement due to lock timeout"),
        pg.QueryCanceled("canceling statement due to statement timeout"),
    ],
)
def test_other_errors_are_not(orig: BaseException) -> None:
    assert not is_transient(wrapped(orig))


def test_lock_and_statement_timeouts_and_cancels_are_recognised() -> None:
    """What makes the runner defer an owner, or stop a run whose stop signal cancelled a statement."""
    assert is_lock_timeout(wrapped(pg.LockNotAvailable("canceling statement due to lock timeout")))
    assert is_cancelled(wrapped(pg.QueryCanceled("canceling statement due to user request")))
    assert is_cancelled(wrapped(sqlite3.OperationalError("interrupted")))
    assert not is_lock_timeout(wrapped(pg.DeadlockDetected("deadlock detected")))
    assert not is_cancelled(wrapped(sqlite3.OperationalError("database is locked")))


def test_a_server_that_refuses_the_credentials_is_misconfigured_not_unreachable() -> None:
    refused = wrapped(
        psycopg.OperationalError('connection failed: FATAL:  password authentication failed for user "x"')
    )
    assert is_misconfigured(refused) and not is_unreachable(refused)
    gone = wrapped(psycopg.OperationalError("connection failed: Connection refused"))
    assert is_unreachable(gone) and not is_misconfigured(gone)
    assert is_unreachable(wrapped(pg.AdminShutdown("terminating connection")))


def test_the_retry_policy_retries_concurrent_changes_and_transient_errors_only() -> None:
    """Two transient failures then success: three tries; a non-transient error is raised at once."""
    tries = []

    def flaky() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise ConcurrentChange("a project moved meanwhile")
        return "done"

    policy = retrying(attempts=5)
    policy.wait = lambda _state: 0  # type: ignore[assignment,method-assign]
    assert policy(flaky) == "done" and len(tries) == 3

    def broken() -> None:
        tries.append(1)
        raise ValueError("not transient")

    tries.clear()
    with pytest.raises(ValueError):
        policy(broken)
    assert len(tries) == 1


def test_only_lists_an_array_literal_carries_exactly_become_one() -> None:
    """`array_parameter`: integers and plain strings become one literal; anything the literal would
    have to quote, or could not say, stays a list for the driver."""
    assert array_parameter([3, -1, 2]) == "{3,-1,2}"
    assert array_parameter([]) == "{}"
    plain = ["p-1", "nullish", "it's", "ünï", "non\u00a0breaking", "😀"]
    assert array_parameter(plain) == "{" + ",".join(plain) + "}"
    quoted = [
        "a,b",
        "NULL",
        "Null",
        " x",
        "x ",
        "\tx",
        "\nx",
        "x\r",
        "\vx",
        "x\f",
        '"x"',
        "{x",
        "x}",
        "a\\b",
        "",
    ]
    for kept in (
        [True, 1],
        [None, 1],
        [1.5],
        *([value] for value in quoted),
        [datetime(2026, 1, 1, tzinfo=UTC)],
    ):
        assert array_parameter(kept) == kept, kept
