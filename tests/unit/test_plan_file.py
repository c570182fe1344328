"""The wave plan file: bucketing, the shipped plan, and every way a plan file can be wrong."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollout.cli import exits
from rollout.engine.planfile import load_plan
from rollout.engine.planvalues import parse_duration
from rollout.engine.waveplan import MAX_BATCH_SIZE, RolloutSettings, Wave, bucket
from rollout.errors import ConfigError, UsageError

REPO = Path(__file__).resolve().parents[2]
SHIPPED_PLAN = REPO / "jobs" / "waves.toml"
SALT = "organizations-2021"

percents = st.floats(min_value=0, max_value=100, allow_nan=False)
salts = st.text(max_size=30)
user_ids = st.integers(min_value=1, max_value=2**63 - 1)


def write_plan(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "waves.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- bucketing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_id", "expected"),
    [(1, 6150), (2, 9362), (42, 1284), (1001, 6517), (123456789, 1112)],
)
def test_bucket_fixed_vectors(user_id: int, expected: int) -> None:
    """Buckets of the production salt never change: a change would move owners between waves."""
    assert bucket(SALT, user_id) == expected


@pytest.mark.parametrize("user_id", [1, 7, 1001, 99_999, 2**40 + 3])
@pytest.mark.parametrize("salt", [SALT, "", "another-salt"])
def test_bucket_is_the_documented_formula(salt: str, user_id: int) -> None:
    """The bucket is the first 8 bytes of sha256("salt:id"), big-endian, modulo 10000, as docs/plan-file.md says."""
    digest = sha256(f"{salt}:{user_id}".encode()).digest()
    assert bucket(salt, user_id) == int.from_bytes(digest[:8], "big") % 10000


def test_the_salt_rebuckets_owners() -> None:
    """Another salt gives other buckets, which is why the plan file says it must never change."""
    ids = range(1, 101)
    assert [bucket(SALT, i) for i in ids] != [bucket("organizations-2022", i) for i in ids]


@given(salt=salts, user_id=user_ids, low=percents, high=percents)
def test_a_smaller_percent_wave_is_inside_every_larger_one(
    salt: str, user_id: int, low: float, high: float
) -> None:
    """An owner in a p % wave is in every wave of a larger percent, so waves only ever grow."""
    low, high = min(low, high), max(low, high)
    if Wave("small", percent=low).admits_bucket(salt, user_id):
        assert Wave("large", percent=high).admits_bucket(salt, user_id)


@given(salt=salts, user_id=user_ids)
def test_zero_and_hundred_percent(salt: str, user_id: int) -> None:
    """A 0 % wave admits nobody by percent, a 100 % wave admits everyone."""
    assert not Wave("none", percent=0).admits_bucket(salt, user_id)
    assert Wave("all", percent=100).admits_bucket(salt, user_id)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(salt=salts, first_id=st.integers(min_value=1, max_value=10**12))
def test_a_percent_wave_holds_that_share_of_owners(salt: str, first_id: int) -> None:
    """Of 100 000 consecutive user ids, a p % wave admits p % of them, within half a percentage point."""
    population = range(first_id, first_id + 100_000)
    buckets = [bucket(salt, user_id) for user_id in population]
    for percent in (1, 10, 50):
        threshold = Wave("w", percent=percent).threshold
        assert threshold is not None
        share = 100 * sum(b < threshold for b in buckets) / len(buckets)
        assert abs(share - percent) <= 0.5, (percent, share)


def test_listed_owners_are_admitted_whatever_their_bucket() -> None:
    """An owner listed in `owners` is admitted even with a bucket outside the percent."""
    outside = next(i for i in range(1, 10_000) if bucket(SALT, i) >= 100)
    assert not Wave("w", percent=1).admits_bucket(SALT, outside)
    assert Wave("w", owners=(outside,), percent=1).admits_bucket(SALT, outside)
    assert Wave("w", owners=(outside,)).admits_bucket(SALT, outside)
    assert not Wave("w", owners=(outside,)).admits_bucket(SALT, outside + 1)


def test_excludes_only_the_excluded_owners() -> None:
    """`excludes` is true exactly for ids in `exclude_owners`."""
    wave = Wave("w", percent=100, exclude_owners=frozenset({666}))
    assert wave.excludes(666)
    assert not wave.excludes(667)


# --- the shipped plan and the defaults --------------------------------------------------------------


def test_the_shipped_plan_loads() -> None:
    """`jobs/waves.toml` is valid: canary, then 1, 10, 50 and 100 % with growing soak times; its
    settings are the defaults, but for batch sizes that may grow from 500 to 2000."""
    plan = load_plan(SHIPPED_PLAN)
    assert plan.settings == RolloutSettings(min_batch_size=50, max_batch_size=2000)
    assert plan.wave_names == ("canary", "one-percent", "ten-percent", "fifty-percent", "everyone")
    canary = plan.wave("canary")
    assert canary.owners == (1, 2, 3, 42, 1001)
    assert canary.percent is None
    one = plan.wave("one-percent")
    assert (one.percent, one.max_projects, one.soak) == (1.0, 5, timedelta(hours=24))
    assert one.not_before is not None and one.not_before.year == 2021 and one.not_before.tzinfo is not None
    assert [wave.percent for wave in plan.waves[1:]] == [1.0, 10.0, 50.0, 100.0]
    assert all(wave.regions is None for wave in plan.waves), "the demo data would not match a region filter"


def test_defaults_when_rollout_table_is_omitted(tmp_path: Path) -> None:
    """Without [rollout] every setting takes the documented default."""
    plan = load_plan(write_plan(tmp_path, '[[waves]]\nname = "all"\npercent = 100\n'))
    assert plan.settings == RolloutSettings(
        salt="organizations-2021", batch_size=500, error_budget=0.01, min_attempts=100, max_failures=50
    )
    wave = plan.waves[0]
    assert wave == Wave(name="all", percent=100.0)
    assert wave.owners == () and wave.exclude_owners == frozenset()
    assert wave.regions is wave.max_projects is wave.not_before is wave.soak is None


def test_every_key_is_read(tmp_path: Path) -> None:
    """Every key of [rollout] and of a wave lands in the plan, dates in UTC and durations as timedelta."""
    path = write_plan(
        tmp_path,
        """
        [rollout]
        salt = "s"
        batch_size = 10000
        error_budget = 0
        min_attempts = 0
        max_failures = 0

        [[waves]]
        name = "eu"
        owners = [7, 5, 7]
        percent = 2.5
        regions = ["eu-1", "eu-2"]
        max_projects = 3
        exclude_owners = [9, 9]
        not_before = 2021-09-06T10:00:00+02:00
        soak = "1h30m"
        """,
    )
    plan = load_plan(path)
    assert plan.settings == RolloutSettings(
        salt="s", batch_size=10000, error_budget=0.0, min_attempts=0, max_failures=0
    )
    assert plan.waves == (
        Wave(
            name="eu",
            owners=(7, 5),
            percent=2.5,
            regions=("eu-1", "eu-2"),
            max_projects=3,
            exclude_owners=frozenset({9}),
            not_before=datetime(2021, 9, 6, 8, 0, tzinfo=UTC),
            soak=timedelta(hours=1, minutes=30),
        ),
    )
    assert plan.waves[0].threshold == 250


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("2d", timedelta(days=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    """Durations are days, hours, minutes and seconds written in that order."""
    assert parse_duration(text) == expected


def test_wave_lookup_and_order() -> None:
    """`wave` finds a wave by name; the waves keep file order (the order `run --auto` follows)."""
    plan = load_plan(SHIPPED_PLAN)
    names = plan.wave_names
    assert plan.wave("canary") is plan.waves[0] and names[0] == "canary"
    assert names.index("one-percent") == names.index("ten-percent") - 1
    assert plan.wave("ten-percent").name == "ten-percent"


def test_unknown_wave_lists_the_known_ones() -> None:
    """Asking for a wave the plan does not have is a usage error (exit 2) listing the waves it has."""
    plan = load_plan(SHIPPED_PLAN)
    with pytest.raises(UsageError) as caught:
        plan.wave("two-percent")
    message = str(caught.value)
    assert exits.for_error(caught.value) == exits.USAGE
    assert "\n" not in message
    assert "'two-percent'" in message
    assert "canary, one-percent, ten-percent, fifty-percent, everyone" in message


# --- invalid plans ---------------------------------------------------------------------------------

WAVE = '[[waves]]\nname = "w"\n'
"""The start of a wave that the cases below complete with one faulty key."""

INVALID_PLANS = {
    # case: (file text, where the error is, the key named)
    "unknown-top-level-table": ("[extra]\nx = 1\n" + WAVE + "percent = 1\n", None, "extra"),
    "unknown-top-level-key": ('salt = "s"\n' + WAVE + "percent = 1\n", None, "salt"),
    "rollout-not-a-table": ("rollout = 1\n" + WAVE + "percent = 1\n", None, "rollout"),
    "unknown-rollout-key": ("[rollout]\nbatchsize = 10\n" + WAVE + "percent = 1\n", "[rollout]", "batchsize"),
    "lock-timeout-not-shorter-than-statement-timeout": (
        '[rollout]\nlock_timeout = "5s"\nstatement_timeout = "5s"\n' + WAVE + "percent = 1\n",
        "[rollout]",
        "lock_timeout",
    ),
    "salt-empty": ('[rollout]\nsalt = ""\n' + WAVE + "percent = 1\n", "[rollout]", "salt"),
    "salt-not-string": ("[rollout]\nsalt = 2021\n" + WAVE + "percent = 1\n", "[rollout]", "salt"),
    "batch-size-zero": ("[rollout]\nbatch_size = 0\n" + WAVE + "percent = 1\n", "[rollout]", "batch_size"),
    "batch-size-over-cap": (
        f"[rollout]\nbatch_size = {MAX_BATCH_SIZE + 1}\n" + WAVE + "percent = 1\n",
        "[rollout]",
        "batch_size",
    ),
    "batch-size-float": ("[rollout]\nbatch_size = 5.0\n" + WAVE + "percent = 1\n", "[rollout]", "batch_size"),
    "batch-size-bool": ("[rollout]\nbatch_size = true\n" + WAVE + "percent = 1\n", "[rollout]", "batch_size"),
    "error-budget-over-one": (
        "[rollout]\nerror_budget = 1.5\n" + WAVE + "percent = 1\n",
        "[rollout]",
        "error_budget",
    ),
    "error-budget-negative": (
        "[rollout]\nerror_budget = -0.1\n" + WAVE + "percent = 1\n",
        "[rollout]",
        "error_budget",
    ),
    "error-budget-string": (
        '[rollout]\nerror_budget = "1%"\n' + WAVE + "percent = 1\n",
        "[rollout]",
        "error_budget",
    ),
    "error-budget-nan": (
        "[rollout]\nerror_budget = nan\n" + WAVE + "percent = 1\n",
        "[rollout]",
        "error_budget",
    ),
    "min-attempts-negative": (
        "[rollout]\nmin_attempts = -1\n" + WAVE + "percent = 1\n",
        "[rollout]",
        "min_attempts",
    ),
    "max-failures-float": (
        "[rollout]\nmax_failures = 2.5\n" + WAVE + "percent = 1\n",
        "[rollout]",
        "max_failures",
    ),
    "no-waves": ('[rollout]\nsalt = "s"\n', None, "waves"),
    "empty-waves": ("waves = []\n", None, "waves"),
    "waves-not-array": ("[waves]\nname = 'w'\n", None, "waves"),
    "wave-not-a-table": ("waves = [1]\n", "waves[0]", None),
    "missing-name": ('[[waves]]\nname = "a"\npercent = 1\n[[waves]]\npercent = 2\n', "waves[1]", "name"),
    "empty-name": ('[[waves]]\nname = ""\npercent = 1\n', "waves[0]", "name"),
    "name-not-string": ("[[waves]]\nname = 3\npercent = 1\n", "waves[0]", "name"),
    "duplicate-name": (WAVE + "percent = 1\n" + WAVE + "percent = 2\n", "wave 'w'", "name"),
    "unknown-wave-key": (WAVE + "percent = 1\npercentage = 2\n", "wave 'w'", "percentage"),
    "percent-over-100": (WAVE + "percent = 140\n", "wave 'w'", "percent"),
    "percent-negative": (WAVE + "percent = -1\n", "wave 'w'", "percent"),
    "percent-string": (WAVE + 'percent = "10"\n', "wave 'w'", "percent"),
    "percent-bool": (WAVE + "percent = true\n", "wave 'w'", "percent"),
    "percent-inf": (WAVE + "percent = inf\n", "wave 'w'", "percent"),
    "neither-owners-nor-percent": (WAVE + "max_projects = 5\n", "wave 'w'", "owners"),
    "owners-empty-no-percent": (WAVE + "owners = []\n", "wave 'w'", "owners"),
    "owners-string-id": (WAVE + 'owners = [1, "1001"]\n', "wave 'w'", "owners"),
    "owners-bool-id": (WAVE + "owners = [true]\n", "wave 'w'", "owners"),
    "owners-float-id": (WAVE + "owners = [1.0]\n", "wave 'w'", "owners"),
    "owners-negative-id": (WAVE + "owners = [-5]\n", "wave 'w'", "owners"),
    "owners-beyond-bigint": (WAVE + "owners = [9223372036854775808]\n", "wave 'w'", "owners"),
    "owners-not-list": (WAVE + "owners = 1001\n", "wave 'w'", "owners"),
    "exclude-owners-string": (
        WAVE + 'percent = 100\nexclude_owners = ["666"]\n',
        "wave 'w'",
        "exclude_owners",
    ),
    "exclude-owners-not-list": (WAVE + "percent = 100\nexclude_owners = 666\n", "wave 'w'", "exclude_owners"),
    "regions-string": (WAVE + 'percent = 1\nregions = "eu-3"\n', "wave 'w'", "regions"),
    "regions-empty-list": (WAVE + "percent = 1\nregions = []\n", "wave 'w'", "regions"),
    "regions-empty-name": (WAVE + 'percent = 1\nregions = ["eu-3", ""]\n', "wave 'w'", "regions"),
    "regions-number": (WAVE + "percent = 1\nregions = [3]\n", "wave 'w'", "regions"),
    "max-projects-zero": (WAVE + "percent = 1\nmax_projects = 0\n", "wave 'w'", "max_projects"),
    "max-projects-float": (WAVE + "percent = 1\nmax_projects = 2.5\n", "wave 'w'", "max_projects"),
    "not-before-local-datetime": (
        WAVE + "percent = 1\nnot_before = 2021-09-06T08:00:00\n",
        "wave 'w'",
        "not_before",
    ),
    "not-before-date": (WAVE + "percent = 1\nnot_before = 2021-09-06\n", "wave 'w'", "not_before"),
    "not-before-time": (WAVE + "percent = 1\nnot_before = 08:00:00\n", "wave 'w'", "not_before"),
    "not-before-string": (
        WAVE + 'percent = 1\nnot_before = "2021-09-06T08:00:00Z"\n',
        "wave 'w'",
        "not_before",
    ),
    "soak-malformed": (WAVE + 'percent = 1\nsoak = "24 hours"\n', "wave 'w'", "soak"),
    "soak-wrong-order": (WAVE + 'percent = 1\nsoak = "30m1h"\n', "wave 'w'", "soak"),
    "soak-negative": (WAVE + 'percent = 1\nsoak = "-1h"\n', "wave 'w'", "soak"),
    "soak-empty": (WAVE + 'percent = 1\nsoak = ""\n', "wave 'w'", "soak"),
    "soak-fraction": (WAVE + 'percent = 1\nsoak = "1.5h"\n', "wave 'w'", "soak"),
    "soak-number": (WAVE + "percent = 1\nsoak = 24\n", "wave 'w'", "soak"),
    "soak-too-long": (WAVE + 'percent = 1\nsoak = "999999999999d"\n', "wave 'w'", "soak"),
}


@pytest.mark.parametrize(("text", "where", "key"), INVALID_PLANS.values(), ids=INVALID_PLANS.keys())
def test_invalid_plan_is_one_line_naming_file_wave_and_key(
    tmp_path: Path, text: str, where: str | None, key: str | None
) -> None:
    """Each invalid plan is a ConfigError (exit 2) on one line that names the file, the wave and the key."""
    path = write_plan(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_plan(path)
    message = str(caught.value)
    assert exits.for_error(caught.value) == exits.USAGE
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    if where is not None:
        assert where in message
    if key is not None:
        assert f"key '{key}'" in message


def test_wave_error_quotes_the_wave_name_and_the_value(tmp_path: Path) -> None:
    """The message has the shape of the naming rules's example: file, wave by name, key, the rule, the bad value."""
    path = write_plan(tmp_path, '[[waves]]\nname = "one-percent"\npercent = 140\n')
    with pytest.raises(ConfigError) as caught:
        load_plan(path)
    expected = f"{path}: wave 'one-percent': key 'percent': must be a number from 0 to 100, got 140"
    assert str(caught.value) == expected


def test_a_wave_without_name_is_named_by_its_index(tmp_path: Path) -> None:
    """A wave with no name is pointed at by its position, and later errors in it are not reached first."""
    path = write_plan(tmp_path, '[[waves]]\nname = "a"\npercent = 1\n[[waves]]\n[[waves]]\npercent = 200\n')
    with pytest.raises(ConfigError, match=r"wave waves\[1\]: key 'name': missing"):
        load_plan(path)


def test_missing_file(tmp_path: Path) -> None:
    """A plan file that does not exist is a ConfigError naming the path."""
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as caught:
        load_plan(path)
    assert exits.for_error(caught.value) == exits.USAGE
    assert str(caught.value).startswith(f"{path}: cannot read the plan file")


def test_unreadable_file(tmp_path: Path) -> None:
    """A directory given as the plan file is reported as unreadable, not as a traceback."""
    with pytest.raises(ConfigError, match="cannot read the plan file"):
        load_plan(tmp_path)


def test_invalid_toml_gives_the_line(tmp_path: Path) -> None:
    """A TOML syntax error names the file and carries tomllib's line and column, on one line."""
    path = write_plan(tmp_path, '[[waves]]\nname = "w"\npercent = \n')
    with pytest.raises(ConfigError) as caught:
        load_plan(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 3" in message
    assert "\n" not in message


def test_not_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 is a ConfigError, not a UnicodeDecodeError."""
    path = tmp_path / "waves.toml"
    path.write_bytes(b'[[waves]]\nname = "\xff"\npercent = 1\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_plan(path)
