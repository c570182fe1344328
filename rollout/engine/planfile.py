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
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from rollout.engine.waveplan import MAX_BATCH_SIZE, RolloutSettings, Wave, WavePlan
from rollout.errors import ConfigError

_MAX_USER_ID = 2**63 - 1  # users.id is a BIGINT
# Wave names reach logs, terminals, file names (`--output WAVE.json`) and metrics labels.
_WAVE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_T = TypeVar("_T")
_D = TypeVar("_D")

_DURATION = re.compile(r"(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")


def parse_duration(text: str) -> timedelta:
    """A duration written as days, hours, minutes, seconds in that order: "90s", "30m", "1h30m", "2d".

    Raises `ValueError` with an operator-facing reason for anything else, negative values included.
    """
    candidate = text.strip()
    if candidate.startswith("-"):
        raise ValueError(f"must not be negative, got {text!r}")
    match = _DURATION.fullmatch(candidate)
    if not candidate or match is None:
        raise ValueError(f'must be a duration like "90s", "30m", "24h", "2d" or "1h30m", got {text!r}')
    parts = {unit: int(value) for unit, value in match.groupdict(default="0").items()}
    try:
        return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])
    except OverflowError:
        raise ValueError(f"is too long, got {text!r}") from None


def _show(value: object) -> str:
    """A value as the operator wrote it in TOML, on one short line."""
    if isinstance(value, bool):
        shown = f"{str(value).lower()} (a boolean)"
    elif isinstance(value, datetime | date | time):
        shown = value.isoformat()
    elif isinstance(value, str):
        shown = repr(value)
    elif isinstance(value, dict):
        shown = "a table"
    else:
        shown = repr(value)
    shown = " ".join(shown.split())
    return shown if len(shown) <= 60 else shown[:57] + "..."


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


def _integer(value: object, *, minimum: int, maximum: int = _MAX_USER_ID, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValueError(f"must be {what}, got {_show(value)}")
    return value


def _number(value: object, *, low: float, high: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"must be {what}, got {_show(value)}")
    return float(value)


def _percent(value: object) -> float:
    percent = _number(value, low=0.0, high=100.0, what="a number from 0 to 100")
    # The bucket has 10 000 values: a finer percent would silently select as if rounded.
    if abs(percent * 100 - round(percent * 100)) > 1e-9:
        raise ValueError(f"must be a multiple of 0.01 (owners fall in 10 000 buckets), got {_show(value)}")
    return percent


def _names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f'must be a list of organization names like ["admin", "api"], got {_show(value)}')
    return tuple(dict.fromkeys(v.strip().lower() for v in value))


def _non_empty_string(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {_show(value)}")
    return value


def _user_ids(value: object) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise ValueError(f"must be a list of integer user ids like [1001, 1002], got {_show(value)}")
    ids: list[int] = []
    for index, item in enumerate(value):
        try:
            ids.append(_integer(item, minimum=1, what="a positive integer user id"))
        except ValueError as exc:
            raise ValueError(f"item {index}: {exc}") from None
    return tuple(dict.fromkeys(ids))


def _regions(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f'must be a non-empty list of region names like ["eu-3"], got {_show(value)}')
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"item {index}: must be a non-empty region name, got {_show(item)}")
    return tuple(dict.fromkeys(value))


def _instant(value: object) -> datetime:
    example = "like 2021-09-06T08:00:00Z"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"malformed: a date-time needs a timezone offset ({example} or +02:00), got {_show(value)}"
            )
        return value.astimezone(UTC)
    if isinstance(value, date):
        raise ValueError(f"malformed: a date-time with a timezone is needed ({example}), got {_show(value)}")
    if isinstance(value, str):
        raise ValueError(f"malformed: write a TOML date-time without quotes ({example}), got {_show(value)}")
    raise ValueError(f"malformed: must be a date-time with a timezone ({example}), got {_show(value)}")


def _duration(value: object) -> timedelta:
    if not isinstance(value, str):
        raise ValueError(f'must be a duration string like "24h" or "1h30m", got {_show(value)}')
    return parse_duration(value)


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


def _batch_size(value: object) -> int:
    return _integer(value, minimum=1, maximum=MAX_BATCH_SIZE, what=f"an integer from 1 to {MAX_BATCH_SIZE}")


def _bounded_duration(low: timedelta, high: timedelta) -> Callable[[object], timedelta]:
    def convert(value: object) -> timedelta:
        parsed = _duration(value)
        if not low <= parsed <= high:
            raise ValueError(f"must be from {_say(low)} to {_say(high)}, got {_show(value)}")
        return parsed

    return convert


def _say(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 60}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds}s"


def _settings(path: Path, table: object) -> RolloutSettings:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: key 'rollout': must be a table ([rollout]), got {_show(table)}")
    section = _Section(path, "[rollout]", table)
    section.reject_unknown(_SETTINGS_KEYS)
    d = RolloutSettings()
    non_negative = lambda v: _integer(v, minimum=0, what="a non-negative integer")  # noqa: E731
    settings = RolloutSettings(
        salt=section.get("salt", _non_empty_string, d.salt),
        batch_size=section.get("batch_size", _batch_size, d.batch_size),
        error_budget=section.get(
            "error_budget",
            lambda v: _number(v, low=0.0, high=1.0, what="a number from 0 to 1 (0.01 is 1 %)"),
            d.error_budget,
        ),
        min_attempts=section.get("min_attempts", non_negative, d.min_attempts),
        max_failures=section.get("max_failures", non_negative, d.max_failures),
        lock_timeout=section.get(
            "lock_timeout", _bounded_duration(timedelta(seconds=1), timedelta(minutes=5)), d.lock_timeout
        ),
        statement_timeout=section.get(
            "statement_timeout",
            _bounded_duration(timedelta(seconds=1), timedelta(hours=1)),
            d.statement_timeout,
        ),
        target_batch_seconds=section.get(
            "target_batch_seconds",
            lambda v: _number(v, low=0.1, high=600.0, what="a number of seconds from 0.1 to 600"),
            d.target_batch_seconds,
        ),
        min_batch_size=section.get("min_batch_size", _batch_size, d.min_batch_size),
        max_batch_size=section.get("max_batch_size", _batch_size, d.max_batch_size),
        retry_deferred_for=section.get(
            "retry_deferred_for",
            _bounded_duration(timedelta(0), timedelta(hours=6)),
            d.retry_deferred_for,
        ),
        max_replication_lag=section.get(
            "max_replication_lag",
            _bounded_duration(timedelta(seconds=1), timedelta(days=1)),
            d.max_replication_lag,
        ),
        max_waiting_sessions=section.get("max_waiting_sessions", non_negative, d.max_waiting_sessions),
        health_query=section.get("health_query", _non_empty_string, d.health_query),
        max_owners_per_second=section.get(
            "max_owners_per_second",
            lambda v: _number(v, low=0.01, high=1e9, what="a positive number of owners per second"),
            d.max_owners_per_second,
        ),
        reserved_names=section.get("reserved_names", _names, d.reserved_names),
        max_throttle=section.get(
            "max_throttle", _bounded_duration(timedelta(seconds=1), timedelta(days=1)), d.max_throttle
        ),
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
        raise ConfigError(f"{path}: wave {position}: must be a table ([[waves]]), got {_show(table)}")
    name = table.get("name")
    if name is None:
        _Section(path, f"wave {position}", table).fail("name", "missing: every wave needs a name")
    if not isinstance(name, str) or not _WAVE_NAME.fullmatch(name):
        _Section(path, f"wave {position}", table).fail(
            "name",
            "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit,"
            f" got {_show(name)}",
        )
    section = _Section(path, f"wave {name!r}", table)
    section.reject_unknown(_WAVE_KEYS)
    owners = section.get("owners", _user_ids, ())
    percent = section.get("percent", _percent, None)
    if not owners and percent is None:
        section.fail("owners", "a wave needs a non-empty 'owners' list or a 'percent' (or both)")
    return Wave(
        name=name,
        owners=owners,
        percent=percent,
        regions=section.get("regions", _regions, None),
        max_projects=section.get(
            "max_projects", lambda v: _integer(v, minimum=1, what="a positive integer"), None
        ),
        exclude_owners=frozenset(section.get("exclude_owners", _user_ids, ())),
        not_before=section.get("not_before", _instant, None),
        soak=section.get("soak", _duration, None),
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
        raise ConfigError(f"{path}: key 'waves': must be an array of tables ([[waves]]), got {_show(tables)}")
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
