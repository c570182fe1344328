"""The operator's tables: columns line up whatever the data (wide CJK, emoji, combining marks),
and counts are said in words that agree with them."""

from __future__ import annotations

from wcwidth import wcswidth

from rollout.render.table import plural, table


def test_columns_line_up_with_wide_and_combining_characters() -> None:
    names = ["alice", "東京チーム", "🚀 launch", "café", "Zoe\u0308"]  # the last with a combining diaeresis
    out = table(["name", "marker", "projects"], [[n, f"X{i}", i * 10] for i, n in enumerate(names)])
    lines = out.splitlines()[2:]
    assert len(lines) == len(names)
    # The second column starts at the same terminal column on every line, the third ends together.
    starts = {wcswidth(line[: line.index("X")]) for line in lines}
    assert len(starts) == 1, out
    assert len({wcswidth(line) for line in lines}) == 1, out


def test_counts_in_words() -> None:
    assert plural(1, "owner") == "1 owner"
    assert plural(0, "owner") == "0 owners"
    assert plural(1, "batch") == "1 batch"
    assert plural(3, "batch") == "3 batches"
    assert plural(2, "migrated owner") == "2 migrated owners"
