"""The wave plan file (SPEC section 4): parse, validate, bucket.

`load_plan` turns a TOML file into a frozen `Plan` or raises one `ConfigError` whose message is a
single line naming the file, the wave and the key at fault, so that an operator can fix the file
from the message alone. Nothing here touches the database.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from rollout.errors import ConfigError, UsageError

__all__ = [
    "BUCKETS",
    "MAX_BATCH_SIZE",
    "Plan",
    "Settings",
    "Wave",
    "bucket",
    "load_plan",
    "parse_duration",
    "percent_threshold",
]

BUCKETS = 10_000
"""Owners are spread over this many buckets; a percent `p` covers buckets below `round(p * 100)`."""

MAX_BATCH_SIZE = 10_000
"""The largest `batch_size` accepted: one transaction over more owners holds its locks too long."""

_MAX_USER_ID = 2**63 - 1  # users.id is a BIGINT

_T = TypeVar("_T")
_D = TypeVar("_D")


def bucket(salt: str, user_id: int) -> int:
    """The owner's bucket in `[0, 10000)`: stable for a given salt, independent of every other owner."""
    return int.from_bytes(sha256(f"{salt}:{user_id}".encode()).digest()[:8], "big") % BUCKETS


def percent_threshold(percent: float) -> int:
    """The number of buckets a percent covers: an owner is inside when `bucket < percent_threshold`."""
    return round(percent * 100)


@dataclass(frozen=True)
class Settings:
    """The `[rollout]` table; every field has the default SPEC section 4 documents."""

    salt: str = "organizations-2021"
    batch_size: int = 500
    error_budget: float = 0.01
    min_attempts: int = 100
    max_failures: int = 50


@dataclass(frozen=True)
class Wave:
    """One `[[waves]]` entry, validated.

    `percent` is in `[0, 100]`; `not_before` is timezone-aware UTC. `owners` and `percent` decide
    which legacy owners the wave admits (`admits_bucket`); `regions` and `max_projects` then filter
    on the owners' data and `exclude_owners` removes owners last, both in the selection.
    """

    name: str
    owners: tuple[int, ...] = ()
    percent: float | None = None
    regions: tuple[str, ...] | None = None
    max_projects: int | None = None
    exclude_owners: frozenset[int] = frozenset()
    not_before: datetime | None = None
    soak: timedelta | None = None
    _owner_set: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_owner_set", frozenset(self.owners))

    @property
    def threshold(self) -> int | None:
        """Buckets below this are in the wave by percent; None when the wave has no percent."""
        return None if self.percent is None else percent_threshold(self.percent)

    def admits_bucket(self, salt: str, user_id: int, known_bucket: int | None = None) -> bool:
        """Whether the owner is listed in `owners` or falls inside `percent`; filters are not applied.
        `known_bucket` spares the hash when the caller checks one owner against several waves."""
        if user_id in self._owner_set:
            return True
        threshold = self.threshold
        if threshold is None:
            return False
        return (known_bucket if known_bucket is not None else bucket(salt, user_id)) < threshold

    def excludes(self, user_id: int) -> bool:
        """Whether `exclude_owners` keeps this owner out of the wave, whatever else admits them."""
        return user_id in self.exclude_owners


@dataclass(frozen=True)
class Plan:
    """A loaded plan file: its settings and its waves in file order (the order `run --auto` follows)."""

    path: Path
    settings: Settings
    waves: tuple[Wave, ...]

    @property
    def wave_names(self) -> tuple[str, ...]:
        """The wave names in file order."""
        return tuple(wave.name for wave in self.waves)

    def wave(self, name: str) -> Wave:
        """The wave called `name`; a `UsageError` listing the known waves when there is none."""
        for wave in self.waves:
            if wave.name == name:
                return wave
        raise UsageError(f"unknown wave {name!r}; {self.path} has: {', '.join(self.wave_names)}")

    def previous(self, wave: Wave) -> Wave | None:
        """The wave before `wave` in file order, or None for the first; `UsageError` if not in the plan."""
        index = self.wave_names.index(self.wave(wave.name).name)
        return self.waves[index - 1] if index > 0 else None


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


_SETTINGS_KEYS = ("salt", "batch_size", "error_budget", "min_attempts", "max_failures")
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


def _settings(path: Path, table: object) -> Settings:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: key 'rollout': must be a table ([rollout]), got {_show(table)}")
    section = _Section(path, "[rollout]", table)
    section.reject_unknown(_SETTINGS_KEYS)
    defaults = Settings()
    return Settings(
        salt=section.get("salt", _non_empty_string, defaults.salt),
        batch_size=section.get(
            "batch_size",
            lambda v: _integer(
                v, minimum=1, maximum=MAX_BATCH_SIZE, what=f"an integer from 1 to {MAX_BATCH_SIZE}"
            ),
            defaults.batch_size,
        ),
        error_budget=section.get(
            "error_budget",
            lambda v: _number(v, low=0.0, high=1.0, what="a number from 0 to 1 (0.01 is 1 %)"),
            defaults.error_budget,
        ),
        min_attempts=section.get(
            "min_attempts",
            lambda v: _integer(v, minimum=0, what="a non-negative integer"),
            defaults.min_attempts,
        ),
        max_failures=section.get(
            "max_failures",
            lambda v: _integer(v, minimum=0, what="a non-negative integer"),
            defaults.max_failures,
        ),
    )


def _wave(path: Path, index: int, table: object) -> Wave:
    position = f"waves[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: wave {position}: must be a table ([[waves]]), got {_show(table)}")
    name = table.get("name")
    if name is None:
        _Section(path, f"wave {position}", table).fail("name", "missing: every wave needs a name")
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        _Section(path, f"wave {position}", table).fail(
            "name", f"must be a non-empty string without surrounding spaces, got {_show(name)}"
        )
    section = _Section(path, f"wave {name!r}", table)
    section.reject_unknown(_WAVE_KEYS)
    owners = section.get("owners", _user_ids, ())
    percent = section.get(
        "percent", lambda v: _number(v, low=0.0, high=100.0, what="a number from 0 to 100"), None
    )
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


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the plan file: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {' '.join(str(exc).split())}") from None


def load_plan(path: Path) -> Plan:
    """Read and validate a plan file; any problem is one `ConfigError` (exit code 2), never a partial plan."""
    document = _read(path)
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
    return Plan(path=path, settings=settings, waves=tuple(waves))
