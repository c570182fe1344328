"""Reading the wave plan file: parse and validate the TOML, or one line saying what is wrong.

`load_plan` turns a TOML file into a frozen `WavePlan` or raises one `ConfigError` whose message is
a single line naming the file, the wave and the key at fault, so that an operator can fix the file
from the message alone.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from rollout.engine import planvalues as values
from rollout.engine.waveplan import RolloutSettings, Wave, WavePlan
from rollout.errors import ConfigError

# Wave names reach logs, terminals, file names (`--output WAVE.json`) and metrics labels.
_WAVE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_T = TypeVar("_T")
_D = TypeVar("_D")


class _Section:
    """Reads the keys of one table of the file, raising errors that say where the table is."""

    def __init__(self, path: Path, where: str, table: Mapping[str, Any]) -> None:
        self.path = path
        self.where = where
        self.table = table

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ConfigError(f"{self.path}: {self.where}: key {key!r}: {problem}")

    def reject_unknown(self, known: tuple[str, ...]) -> None:
        for key in self.table:
            if key not in known:
                self.fail(key, f"unknown key (known keys: {', '.join(known)})")

    def get(self, key: str, convert: Callable[[object], _T], default: _D) -> _T | _D:
        if key not in self.table:
            return default
        try:
            return convert(self.table[key])
        except ValueError as exc:
            self.fail(key, str(exc))


_SETTINGS_KEYS = (
    "salt",
    "batch_size",
    "error_budget",
    "min_attempts",
    "max_failures",
    "lock_timeout",
    "statement_timeout",
    "target_batch_seconds",
    "min_batch_size",
    "max_batch_size",
    "retry_deferred_for",
    "max_replication_lag",
    "max_waiting_sessions",
    "health_query",
    "max_owners_per_second",
    "max_throttle",
    "reserved_names",
    "claim_ttl",
)
_WAVE_KEYS = (
    "name",
    "owners",
    "percent",
    "regions",
    "max_projects",
    "exclude_owners",
    "not_before",
    "soak",
)


def _settings(path: Path, table: object) -> RolloutSettings:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: key 'rollout': must be a table ([rollout]), got {values.show(table)}")
    section = _Section(path, "[rollout]", table)
    section.reject_unknown(_SETTINGS_KEYS)
    d = RolloutSettings()
    non_negative = lambda v: values.integer(v, minimum=0, what="a non-negative integer")  # noqa: E731
    settings = RolloutSettings(
        salt=section.get("salt", values.non_empty_string, d.salt),
        batch_size=section.get("batch_size", values.batch_size, d.batch_size),
        error_budget=section.get(
            "error_budget",
            lambda v: values.number(v, low=0.0, high=1.0, what="a number from 0 to 1 (0.01 is 1 %)"),
            d.error_budget,
        ),
        min_attempts=section.get("min_attempts", non_negative, d.min_attempts),
        max_failures=section.get("max_failures", non_negative, d.max_failures),
        lock_timeout=section.get(
            "lock_timeout",
            values.bounded_duration(timedelta(seconds=1), timedelta(minutes=5)),
            d.lock_timeout,
        ),
        statement_timeout=section.get(
            "statement_timeout",
            values.bounded_duration(timedelta(seconds=1), timedelta(hours=1)),
            d.statement_timeout,
        ),
        target_batch_seconds=section.get(
            "target_batch_seconds",
            lambda v: values.number(v, low=0.1, high=600.0, what="a number of seconds from 0.1 to 600"),
            d.target_batch_seconds,
        ),
        min_batch_size=section.get("min_batch_size", values.batch_size, d.min_batch_size),
        max_batch_size=section.get("max_batch_size", values.batch_size, d.max_batch_size),
        retry_deferred_for=section.get(
            "retry_deferred_for",
            values.bounded_duration(timedelta(0), timedelta(hours=6)),
            d.retry_deferred_for,
        ),
        max_replication_lag=section.get(
            "max_replication_lag",
            values.bounded_duration(timedelta(seconds=1), timedelta(days=1)),
            d.max_replication_lag,
        ),
        max_waiting_sessions=section.get("max_waiting_sessions", non_negative, d.max_waiting_sessions),
        health_query=section.get("health_query", values.non_empty_string, d.health_query),
        max_owners_per_second=section.get(
            "max_owners_per_second",
            lambda v: values.number(v, low=0.01, high=1e9, what="a positive number of owners per second"),
            d.max_owners_per_second,
        ),
        reserved_names=section.get("reserved_names", values.names, d.reserved_names),
        max_throttle=section.get(
            "max_throttle", values.bounded_duration(timedelta(seconds=1), timedelta(days=1)), d.max_throttle
        ),
        claim_ttl=section.get(
            "claim_ttl", values.bounded_duration(timedelta(seconds=1), timedelta(hours=1)), d.claim_ttl
        ),
    )
    if settings.lock_timeout >= settings.statement_timeout:
        # Else a lock wait ends as a statement timeout: a slow batch, not one owner's held name.
        section.fail(
            "lock_timeout",
            f"must be shorter than statement_timeout ({settings.statement_timeout}), got {settings.lock_timeout}",
        )
    if settings.min_batch_size is not None and settings.min_batch_size > settings.batch_size:
        section.fail(
            "min_batch_size",
            f"must be at most batch_size ({settings.batch_size}), got {settings.min_batch_size}",
        )
    if settings.max_batch_size is not None and settings.max_batch_size < settings.batch_size:
        section.fail(
            "max_batch_size",
            f"must be at least batch_size ({settings.batch_size}), got {settings.max_batch_size}",
        )
    return settings


def _wave(path: Path, index: int, table: object) -> Wave:
    position = f"waves[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: wave {position}: must be a table ([[waves]]), got {values.show(table)}")
    name = table.get("name")
    if name is None:
        _Section(path, f"wave {position}", table).fail("name", "missing: every wave needs a name")
    if not isinstance(name, str) or not _WAVE_NAME.fullmatch(name):
        _Section(path, f"wave {position}", table).fail(
            "name",
            "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit,"
            f" got {values.show(name)}",
        )
    section = _Section(path, f"wave {name!r}", table)
    section.reject_unknown(_WAVE_KEYS)
    owners = section.get("owners", values.user_ids, ())
    percent = section.get("percent", values.percent, None)
    if not owners and percent is None:
        section.fail("owners", "a wave needs a non-empty 'owners' list or a 'percent' (or both)")
    return Wave(
        name=name,
        owners=owners,
        percent=percent,
        regions=section.get("regions", values.regions, None),
        max_projects=section.get(
            "max_projects", lambda v: values.integer(v, minimum=1, what="a positive integer"), None
        ),
        exclude_owners=frozenset(section.get("exclude_owners", values.user_ids, ())),
        not_before=section.get("not_before", values.instant, None),
        soak=section.get("soak", values.duration, None),
    )


def _read(path: Path) -> tuple[dict[str, Any], str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the plan file: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(raw.decode("utf-8")), "sha256:" + hashlib.sha256(raw).hexdigest()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {' '.join(str(exc).split())}") from None


def load_plan(path: Path) -> WavePlan:
    """Read and validate a plan file; any problem is one `ConfigError` (exit code 2), never a partial plan."""
    document, fingerprint = _read(path)
    for key in document:
        if key not in ("rollout", "waves"):
            raise ConfigError(
                f"{path}: key {key!r}: unknown top-level table or key (expected [rollout] and [[waves]])"
            )
    settings = _settings(path, document.get("rollout", {}))
    tables = document.get("waves")
    if tables is None or tables == []:
        raise ConfigError(f"{path}: key 'waves': no waves: add at least one [[waves]] table")
    if not isinstance(tables, list):
        raise ConfigError(
            f"{path}: key 'waves': must be an array of tables ([[waves]]), got {values.show(tables)}"
        )
    waves: list[Wave] = []
    first_index: dict[str, int] = {}
    for index, table in enumerate(tables):
        wave = _wave(path, index, table)
        if wave.name in first_index:
            raise ConfigError(
                f"{path}: wave {wave.name!r}: key 'name': duplicate wave name "
                f"(waves[{index}] repeats waves[{first_index[wave.name]}])"
            )
        first_index[wave.name] = index
        waves.append(wave)
    return WavePlan(path=path, settings=settings, waves=tuple(waves), fingerprint=fingerprint)


@contextmanager
def packaged_plan() -> Iterator[Path]:
    """The copy of `jobs/waves.toml` shipped inside the package, as a file for the block."""
    with resources.as_file(resources.files("rollout") / "waves.toml") as path:
        yield path
