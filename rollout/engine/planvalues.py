"""The values of a plan file, checked one by one: durations, dates, integers in range, percents,
owner ids, names. Each converter takes what TOML gave and returns the value or raises `ValueError`
with the reason in the operator's words (`planfile` adds the file, wave and key)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from rollout.engine.waveplan import MAX_BATCH_SIZE

MAX_USER_ID = 2**63 - 1  # users.id is a BIGINT

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


def show(value: object) -> str:
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


def integer(value: object, *, minimum: int, maximum: int = MAX_USER_ID, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValueError(f"must be {what}, got {show(value)}")
    return value


def number(value: object, *, low: float, high: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"must be {what}, got {show(value)}")
    return float(value)


def percent(value: object) -> float:
    percent = number(value, low=0.0, high=100.0, what="a number from 0 to 100")
    # The bucket has 10 000 values: a finer percent would silently select as if rounded.
    if abs(percent * 100 - round(percent * 100)) > 1e-9:
        raise ValueError(f"must be a multiple of 0.01 (owners fall in 10 000 buckets), got {show(value)}")
    return percent


def names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f'must be a list of organization names like ["admin", "api"], got {show(value)}')
    return tuple(dict.fromkeys(v.strip().lower() for v in value))


def non_empty_string(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {show(value)}")
    return value


def user_ids(value: object) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise ValueError(f"must be a list of integer user ids like [1001, 1002], got {show(value)}")
    ids: list[int] = []
    for index, item in enumerate(value):
        try:
            ids.append(integer(item, minimum=1, what="a positive integer user id"))
        except ValueError as exc:
            raise ValueError(f"item {index}: {exc}") from None
    return tuple(dict.fromkeys(ids))


def regions(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f'must be a non-empty list of region names like ["eu-3"], got {show(value)}')
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"item {index}: must be a non-empty region name, got {show(item)}")
    return tuple(dict.fromkeys(value))


def instant(value: object) -> datetime:
    example = "like 2021-09-06T08:00:00Z"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"malformed: a date-time needs a timezone offset ({example} or +02:00), got {show(value)}"
            )
        return value.astimezone(UTC)
    if isinstance(value, date):
        raise ValueError(f"malformed: a date-time with a timezone is needed ({example}), got {show(value)}")
    if isinstance(value, str):
        raise ValueError(f"malformed: write a TOML date-time without quotes ({example}), got {show(value)}")
    raise ValueError(f"malformed: must be a date-time with a timezone ({example}), got {show(value)}")


def duration(value: object) -> timedelta:
    if not isinstance(value, str):
        raise ValueError(f'must be a duration string like "24h" or "1h30m", got {show(value)}')
    return parse_duration(value)


def batch_size(value: object) -> int:
    return integer(value, minimum=1, maximum=MAX_BATCH_SIZE, what=f"an integer from 1 to {MAX_BATCH_SIZE}")


def bounded_duration(low: timedelta, high: timedelta) -> Callable[[object], timedelta]:
    def convert(value: object) -> timedelta:
        parsed = duration(value)
        if not low <= parsed <= high:
            raise ValueError(f"must be from {say(low)} to {say(high)}, got {show(value)}")
        return parsed

    return convert


def say(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 60}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds}s"
