"""Organization names (docs/migrating-an-owner.md): the slug of a username, and a free name for each new organization."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, MutableSet, Sequence

from unidecode import unidecode

MAX_LENGTH = 39
NAME_PATTERN: re.Pattern[str] = re.compile(r"^[a-z0-9][a-z0-9-]{1,37}[a-z0-9]$")

_SEPARATORS = re.compile(r"[^a-z0-9]+")
_MIN_LENGTH = 3


def _slug(text: str) -> str:
    """Lower-cased `text` with separator runs collapsed to one `-`, trimmed and cut to `MAX_LENGTH`."""
    slug = _SEPARATORS.sub("-", text.lower()).strip("-")
    # The cut can land just after a separator; collapsing first means at most one `-` to trim.
    return slug[:MAX_LENGTH].rstrip("-")


def base_name(username: str, user_id: int) -> str:
    """The name an owner's organization gets when nothing else holds it.

    Characters Unidecode has no transliteration for (emoji, private use) are dropped, not turned into
    separators, so `a😀b` gives `ab`. The `user-<id>` fallback goes through the same slugging, which
    keeps it within `MAX_LENGTH` for any id.
    """
    # errors="ignore" is Unidecode's default; spelled out because dropping unknowns is the naming rule.
    slug = _slug(unidecode(username, errors="ignore")) or _slug(f"user-{user_id}")
    if len(slug) < _MIN_LENGTH:
        slug = f"{slug}-org"
    return slug


def suffixed(base: str, n: int) -> str:
    """The `n`-th candidate name for `base` (a `base_name` result): `base` itself for 1, else `base-n`.

    The base is cut so that the whole fits in `MAX_LENGTH`. Raises `ValueError` for `n < 1`, or for an
    `n` so long that no character of the base would remain.
    """
    if n < 1:
        raise ValueError(f"suffix number must be at least 1, got {n}")
    if n == 1:
        return base
    suffix = f"-{n}"
    stem = base[: MAX_LENGTH - len(suffix)].rstrip("-")
    if not stem:
        raise ValueError(f"suffix number {n} leaves no room for the base {base!r}")
    return stem + suffix


def follows_rule(name: str, username: str, user_id: int) -> bool:
    """Whether `name` is one the naming rule can give this owner: its base name, or the base with a
    suffix `-2`, `-3`, … (the base cut to fit), and a valid name at all."""
    if not NAME_PATTERN.fullmatch(name) or "--" in name:
        return False
    base = base_name(username, user_id)
    if name == base:
        return True
    _, dash, number = name.rpartition("-")
    if not dash or not number.isdigit() or number.startswith("0") or len(number) > 12 or int(number) < 2:
        return False
    try:
        return suffixed(base, int(number)) == name
    except ValueError:
        return False


def _first_free(base: str, start: int, window: int, *unavailable: Collection[str]) -> int | None:
    """The first `n` from `start` up to `window` whose candidate is in none of `unavailable`."""
    for n in range(start, window + 1):
        candidate = suffixed(base, n)
        if not any(candidate in names for names in unavailable):
            return n
    return None


def assign_names(
    bases: Sequence[tuple[int, str]],
    taken: Callable[[Collection[str]], Collection[str]],
    reserved: MutableSet[str],
) -> dict[int, str]:
    """Give each `(owner_id, base)` the first free candidate of its base, owners in ascending id order.

    `taken(names)` returns which of `names` already exist in the database; it is called once for all the
    bases, then once per round for every owner still short of a free candidate, the candidate window
    growing geometrically, so a batch costs a handful of queries whatever its collisions. Names in
    `reserved` count as taken; the names assigned are added to it. Owner ids must be unique.

    Because each owner takes the first name free of the database and of every lower owner id, the result
    is the same whether owners come in one call or in consecutive batches sharing `reserved`.
    """
    pending = sorted(bases)
    window = {base: 1 for _, base in pending}
    # Every candidate of a base below its cursor is known unavailable (the database and `reserved` only
    # gain names during a call), so owners sharing a base do not each rescan it: m collisions cost O(m).
    cursor = dict.fromkeys(window, 1)
    in_db: set[str] = set()
    looked_up: set[str] = set()
    names: dict[int, str] = {}

    while pending:
        # `reserved` is read in place, never copied: in a dry run it grows with every batch of the pass.
        candidates = {
            candidate
            for base in {base for _, base in pending}
            for n in range(cursor[base], window[base] + 1)
            if (candidate := suffixed(base, n)) not in looked_up and candidate not in reserved
        }
        if candidates:
            # Sorted so the query, and what a test or a log sees of it, does not depend on set order.
            in_db.update(taken(sorted(candidates)))
            looked_up |= candidates

        # An owner's name is final only once every lower owner's is: a lower owner still short of a
        # candidate could yet take one of this owner's candidates (`bob` suffixed to `bob-2` is also a base).
        resolved = 0
        for owner_id, base in pending:
            n = _first_free(base, cursor[base], window[base], in_db, reserved)
            if n is None:
                cursor[base] = window[base] + 1
                break
            names[owner_id] = suffixed(base, n)
            reserved.add(names[owner_id])
            cursor[base] = n + 1
            resolved += 1
        pending = pending[resolved:]

        # Widen the window of every base that would still run short if the owners blocked above had
        # their names, so the next round's single query likely settles them all, not only the first.
        tentative: set[str] = set()
        tentative_cursor = dict(cursor)
        short: dict[str, int] = {}
        for _, base in pending:
            n = _first_free(base, tentative_cursor[base], window[base], in_db, reserved, tentative)
            if n is None:
                tentative_cursor[base] = window[base] + 1
                short[base] = short.get(base, 0) + 1
            else:
                tentative.add(suffixed(base, n))
                tentative_cursor[base] = n + 1
        for base, count in short.items():
            window[base] = 2 * (window[base] + count)

    return names
