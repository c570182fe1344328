"""Batch sizing toward a target duration, and the rate limit, as pure rules."""

from __future__ import annotations

from rollout.engine.pacing import BatchSizer, pause_for_rate
from rollout.engine.waveplan import RolloutSettings


def test_batches_grow_at_most_20_percent_toward_the_target() -> None:
    sizer = BatchSizer(size=100, smallest=10, largest=1000, target_seconds=2.0)
    assert sizer.observe(100, 0.5) == 120  # 4x faster than the target: grows, but by 20 % only
    assert sizer.observe(120, 0.6) == 144


def test_a_batch_that_overran_shrinks_the_next_one_at_once() -> None:
    sizer = BatchSizer(size=500, smallest=10, largest=1000, target_seconds=2.0)
    sizer.observe(500, 2.0)
    assert sizer.observe(500, 10.0) == 100  # 20 ms per owner: 2 s is 100 owners


def test_the_size_stays_within_its_bounds() -> None:
    sizer = BatchSizer(size=50, smallest=40, largest=60, target_seconds=1.0)
    assert sizer.observe(50, 100.0) == 40
    for _ in range(30):  # the overrun weighs less with every batch since
        sizer.observe(40, 0.001)
    assert sizer.size == 60
    assert sizer.shrink() == 40


def test_a_plan_that_says_nothing_never_grows_past_its_batch_size() -> None:
    sizer = BatchSizer.for_settings(RolloutSettings(batch_size=500))
    assert (sizer.size, sizer.smallest, sizer.largest) == (500, 50, 500)
    assert sizer.observe(500, 0.01) == 500
    pinned = BatchSizer.for_settings(RolloutSettings().pinned(7))
    assert (pinned.size, pinned.smallest, pinned.largest) == (7, 7, 7)


def test_the_rate_limit_waits_just_enough() -> None:
    assert pause_for_rate(100, 10.0, None) == 0.0
    assert pause_for_rate(100, 10.0, 20.0) == 0.0  # 10 owners/s, under 20
    assert pause_for_rate(100, 2.0, 20.0) == 3.0  # 100 owners at 20/s is 5 s: 3 s more
