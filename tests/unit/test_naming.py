"""Organization names: slugs of usernames, suffixes, and collision handling."""

from __future__ import annotations

import re
from collections.abc import Collection

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollout.engine.naming import MAX_LENGTH, NAME_PATTERN, assign_names, base_name, suffixed


def is_valid(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None and "--" not in name


class Organizations:
    """The `organizations.name` column as `assign_names` sees it, recording every lookup."""

    def __init__(self, *names: str) -> None:
        self.names = set(names)
        self.lookups: list[list[str]] = []

    def taken(self, candidates: Collection[str]) -> Collection[str]:
        self.lookups.append(list(candidates))
        return self.names.intersection(candidates)


def one_at_a_time(bases: list[tuple[int, str]], existing: set[str], reserved: set[str]) -> dict[int, str]:
    """The naming rule read literally: each owner in id order tries `base`, `base-2`, ... until one is free."""
    names: dict[int, str] = {}
    unavailable = existing | reserved
    for owner_id, base in sorted(bases):
        n = 1
        while suffixed(base, n) in unavailable:
            n += 1
        names[owner_id] = suffixed(base, n)
        unavailable.add(names[owner_id])
    return names


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("alice", "alice"),
        ("Alice Smith", "alice-smith"),
        ("José", "jose"),
        ("Straße", "strasse"),
        ("Дмитрий", "dmitrii"),
        ("用户", "yong-hu"),
        ("Zoë_O'Brien", "zoe-o-brien"),
        ("dev😀ops", "devops"),
        ("😀😀", "user-42"),
        ("...", "user-42"),
        ("", "user-42"),
        ("ab", "ab-org"),
        ("a", "a-org"),
        ("a😀", "a-org"),
        ("x" * 50, "x" * 39),
        ("a" * 38 + "-b", "a" * 38),
        ("a" * 38 + " bcd", "a" * 38),
        ("bob!!!...smith", "bob-smith"),
        ("bob - _ smith", "bob-smith"),
        ("--__bob__--", "bob"),
        ("  (bob)  ", "bob"),
        ("r2d2", "r2d2"),
        ("2024", "2024"),
        ("007", "007"),
    ],
)
def test_base_name(username: str, expected: str) -> None:
    """A username becomes its transliterated, lower-case, dash-separated slug, as the naming rules list."""
    assert base_name(username, 42) == expected


def test_base_name_drops_what_unidecode_cannot_transliterate() -> None:
    """An emoji between two letters vanishes instead of becoming a separator."""
    assert base_name("ab😀cd", 1) == "abcd"


def test_base_name_fallback_fits_for_huge_ids() -> None:
    """The `user-<id>` fallback is cut like any other name, so even an absurd id stays valid."""
    name = base_name("😀", 10**60)
    assert name.startswith("user-1000")
    assert len(name) == MAX_LENGTH
    assert is_valid(name)


@pytest.mark.parametrize(
    ("base", "n", "expected"),
    [
        ("bob", 1, "bob"),
        ("bob", 2, "bob-2"),
        ("bob", 1_000_000, "bob-1000000"),
        ("x" * 39, 2, "x" * 37 + "-2"),
        ("x" * 39, 10, "x" * 36 + "-10"),
        ("x" * 37, 2, "x" * 37 + "-2"),
        # The cut lands right after a separator: the base loses it rather than doubling the dash.
        ("a" * 36 + "-bc", 2, "a" * 36 + "-2"),
        ("a" * 35 + "-bcd", 10, "a" * 35 + "-10"),
        ("a" * 36 + "-bc", 10, "a" * 36 + "-10"),
        ("ab-org", 3, "ab-org-3"),
    ],
)
def test_suffixed(base: str, n: int, expected: str) -> None:
    """The suffix is appended whole; the base is cut, and trimmed of `-`, to keep within 39."""
    result = suffixed(base, n)
    assert result == expected
    assert is_valid(result)


def test_suffixed_refuses_numbers_that_cannot_fit() -> None:
    """A number below 1, or too long to leave any base, is a programming error, not a name."""
    with pytest.raises(ValueError):
        suffixed("bob", 0)
    with pytest.raises(ValueError):
        suffixed("bob", 10**37)
    assert is_valid(suffixed("bob", 10**36))


def test_collisions_within_one_call_are_named_in_owner_id_order() -> None:
    """Owners sharing a base get `-2`, `-3`, ... by ascending id, whatever order they are passed in."""
    organizations = Organizations()
    names = assign_names([(30, "bob"), (10, "bob"), (20, "bob"), (5, "alice")], organizations.taken, set())
    assert names == {10: "bob", 20: "bob-2", 30: "bob-3", 5: "alice"}


def test_names_existing_in_the_database_are_skipped() -> None:
    """A base already held by an organization sends its owner to the first free suffix."""
    organizations = Organizations("bob", "bob-2", "carol-3")
    names = assign_names([(1, "bob"), (2, "carol")], organizations.taken, set())
    assert names == {1: "bob-3", 2: "carol"}


def test_reserved_names_count_as_taken_and_receive_the_new_ones() -> None:
    """Names handed out by earlier batches of a dry run are skipped, and this batch's names join them."""
    reserved = {"bob", "bob-2"}
    names = assign_names([(7, "bob"), (8, "dave")], Organizations().taken, reserved)
    assert names == {7: "bob-3", 8: "dave"}
    assert reserved == {"bob", "bob-2", "bob-3", "dave"}


def test_reserved_names_are_not_looked_up() -> None:
    """What the pass already gave out is known taken; asking the database about it is wasted work."""
    organizations = Organizations()
    assign_names([(1, "bob")], organizations.taken, {"bob"})
    assert all("bob" not in lookup for lookup in organizations.lookups)


def test_a_suffixed_name_can_take_another_owners_base() -> None:
    """`bob` suffixed to `bob-2` is a name like any other: the higher owner id whose base it is moves on."""
    names = assign_names([(1, "bob"), (2, "bob-2")], Organizations("bob").taken, set())
    assert names == {1: "bob-2", 2: "bob-2-2"}


def test_long_bases_stay_valid_when_suffixed() -> None:
    """Colliding 39-character bases are cut so that every suffixed name still fits."""
    base = "a" * 36 + "-bc"
    names = assign_names([(i, base) for i in range(1, 13)], Organizations().taken, set())
    assert names[1] == base
    assert names[2] == "a" * 36 + "-2"
    assert names[12] == "a" * 36 + "-12"
    assert all(is_valid(name) for name in names.values())


def test_no_owners_means_no_lookup() -> None:
    """An empty batch neither names anyone nor queries the database."""
    organizations = Organizations()
    assert assign_names([], organizations.taken, set()) == {}
    assert organizations.lookups == []


def test_two_hundred_owners_with_one_base_take_few_lookups() -> None:
    """Collisions are resolved in rounds over all colliding owners, never with a query per owner."""
    organizations = Organizations()
    names = assign_names([(i, "bob") for i in range(1, 201)], organizations.taken, set())
    assert len(organizations.lookups) <= 4
    assert names[1] == "bob"
    assert names[200] == "bob-200"
    assert len(set(names.values())) == 200


def test_many_taken_suffixes_grow_the_window_geometrically() -> None:
    """With `bob` to `bob-5000` all taken, the lookups stay a handful and each stays bounded."""
    organizations = Organizations("bob", *(f"bob-{n}" for n in range(2, 5001)))
    names = assign_names([(i, "bob") for i in range(1, 51)], organizations.taken, set())
    assert names == {i: f"bob-{5000 + i}" for i in range(1, 51)}
    assert len(organizations.lookups) <= 10
    assert max(len(lookup) for lookup in organizations.lookups) <= 4 * 5050


def test_unrelated_owners_after_a_collision_are_not_multiplied_into_lookups() -> None:
    """Only bases that collide get suffix candidates; the other owners cost one name each, once."""
    organizations = Organizations("bob")
    bases = [(1, "bob")] + [(i, f"user{i}") for i in range(2, 1002)]
    names = assign_names(bases, organizations.taken, set())
    assert names[1] == "bob-2"
    assert sum(len(lookup) for lookup in organizations.lookups) < 1100


usernames = st.text(max_size=80)
ids = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(usernames, ids)
def test_base_name_is_always_a_valid_name(username: str, user_id: int) -> None:
    """Any username and id give a name matching the pattern, with no `--`."""
    assert is_valid(base_name(username, user_id))


@given(usernames, ids, st.integers(min_value=1, max_value=10**30))
def test_suffixed_is_always_a_valid_name(username: str, user_id: int, n: int) -> None:
    """Suffixing any base name with any realistic number keeps it valid."""
    assert is_valid(suffixed(base_name(username, user_id), n))


# A small alphabet, so that generated bases collide with each other and with `-n` suffixes.
small_bases = st.from_regex(re.compile(r"[ab]{3,4}(-[23])?"), fullmatch=True)


@given(
    st.dictionaries(st.integers(min_value=1, max_value=10**6), small_bases, max_size=40),
    st.sets(small_bases, max_size=20),
    st.sets(small_bases, max_size=10),
    st.integers(min_value=1, max_value=40),
)
def test_assign_names_matches_one_at_a_time_whatever_the_batches(
    owners: dict[int, str], existing: set[str], reserved: set[str], batch_size: int
) -> None:
    """Batched assignment gives exactly the names of one-at-a-time assignment in owner-id order."""
    bases = sorted(owners.items())
    expected = one_at_a_time(bases, existing, reserved)

    organizations = Organizations(*existing)
    shared = set(reserved)
    names: dict[int, str] = {}
    for start in range(0, len(bases), batch_size):
        names |= assign_names(bases[start : start + batch_size][::-1], organizations.taken, shared)

    assert names == expected
    assert all(is_valid(name) for name in names.values())
    assert len(set(names.values())) == len(names)
    assert not set(names.values()) & (existing | reserved)
    assert shared == reserved | set(names.values())
