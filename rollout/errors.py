"""The exception tree of the job; each class carries the exit code of SPEC section 5."""

from __future__ import annotations


class RolloutError(Exception):
    """Base of every error the job reports to the operator as one line."""

    exit_code = 1


class UsageError(RolloutError):
    """Bad command line, unknown wave or owner, bad URL."""

    exit_code = 2


class ConfigError(UsageError):
    """The plan file is invalid."""


class SchemaNotInitialised(UsageError):
    """The job's tables (or the platform's) are missing: run `rollout db init`."""


class LockHeld(RolloutError):
    """Another `run --auto` holds the rollout lock."""

    exit_code = 3


class Halted(RolloutError):
    """The rollout is paused, or a run spent its error budget."""

    exit_code = 4


class DatabaseUnavailable(RolloutError):
    """The database stayed unreachable after retries (EX_TEMPFAIL)."""

    exit_code = 75


class OwnerDrifted(RolloutError):
    """An owner's approved plan no longer holds."""


class ConcurrentChange(Exception):
    """The platform changed under a batch; the transaction is rolled back and retried whole."""
