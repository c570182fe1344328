"""Which owners a wave selects, from the data as it is at each run."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from rollout.engine.selection import wave_owners
from rollout.engine.waveplan import Wave, bucket
from tests.support import Platform, run_wave

SALT = "organizations-2021"


@pytest.fixture
def owners(engine: Engine) -> Engine:
    """Owner 1: two eu-3 projects; 2: one us-1; 3: six us-1; 4: an eu-3 and a us-1; 5: deleted
    project only (not a legacy owner)."""
    with engine.begin() as conn:
        p = Platform(conn)
        for uid in range(1, 6):
            p.user(uid)
        p.project("a", 1, region="eu-3")
        p.project("b", 1, region="eu-3")
        p.project("c", 2, region="us-1")
        for i in range(6):
            p.project(f"d{i}", 3, region="us-1")
        p.project("e1", 4, region="eu-3")
        p.project("e2", 4, region="us-1")
        p.project("f", 5, status="deleted")
    return engine


def selected(engine: Engine, wave: Wave) -> list[int]:
    return list(wave_owners(engine, wave, SALT, retry_failed=False))


@pytest.mark.parametrize(
    "wave, expected",
    [
        (Wave("all", percent=100), [1, 2, 3, 4]),
        (Wave("none", percent=0), []),
        (Wave("listed", owners=(2, 5, 99)), [2]),
        (Wave("eu", percent=100, regions=("eu-3",)), [1, 4]),
        (Wave("small", percent=100, max_projects=2), [1, 2, 4]),
        (Wave("excluded", percent=100, exclude_owners=frozenset({1, 3})), [2, 4]),
        (
            Wave("combined", percent=100, regions=("us-1",), max_projects=5, exclude_owners=frozenset({2})),
            [4],
        ),
        (Wave("listed-and-filtered", owners=(1, 3), max_projects=3), [1]),
    ],
    ids=lambda v: v.name if isinstance(v, Wave) else None,
)
def test_each_filter_and_their_combination(owners: Engine, wave: Wave, expected: list[int]) -> None:
    """Listed owners, percent, regions, max_projects, then exclusions; never a non-legacy owner."""
    assert selected(owners, wave) == expected


def test_percent_selects_by_the_spec_bucket(owners: Engine) -> None:
    """An owner is in a p % wave exactly when its bucket is below round(p * 100)."""
    for percent in (1, 10, 37.5, 50, 99):
        expected = [uid for uid in (1, 2, 3, 4) if bucket(SALT, uid) < round(percent * 100)]
        assert selected(owners, Wave("p", percent=percent)) == expected


def test_late_arrivals_join_the_next_run_of_their_wave(owners: Engine) -> None:
    """Selection is recomputed per run: a project created after a run brings its owner back."""
    wave = Wave("eu", percent=100, regions=("eu-3",))
    run_wave(owners, wave)
    assert selected(owners, wave) == []
    with owners.begin() as conn:
        Platform(conn).project("late", 2, region="eu-3")
    assert selected(owners, wave) == [2]
