"""The exception tree of the job. Each class maps to one exit code, in `rollout.cli.exits`."""

from __future__ import annotations


class RolloutError(Exception):
    """Base of every error the job reports to the operator as one line."""


class UsageError(RolloutError):
    """Bad command line, unknown wave or owner, bad URL."""


class ConfigError(UsageError):
    """The plan file is invalid."""


class SchemaNotInitialised(UsageError):
    """The job's tables (or the platform's) are missing: run `rollout db init`."""


class PermissionDenied(UsageError):
    """The database role lacks a privilege the job needs (`rollout db grants` lists them)."""


class LockHeld(RolloutError):
    """Another `run --auto` holds the rollout lock."""


class Halted(RolloutError):
    """The rollout is paused, or a run spent its error budget."""


class DatabaseUnavailable(RolloutError):
    """The database stayed unreachable after retries (EX_TEMPFAIL)."""


class ConcurrentChange(Exception):
    """The platform changed under a batch; the transaction is rolled back and retried whole."""


def first_line(exc: BaseException) -> str:
    """The first line of an error's message; for a database error, of the driver's message, without
    the SQL and parameters SQLAlchemy appends (they may carry data)."""
    orig = getattr(exc, "orig", None)
    shown = orig if isinstance(orig, BaseException) else exc
    text = str(shown).strip()
    return text.splitlines()[0] if text else type(shown).__name__


def describe(exc: BaseException) -> str:
    """`Type: first line`, as failures are logged and recorded in the ledger."""
    return f"{type(exc).__name__}: {first_line(exc)}"
