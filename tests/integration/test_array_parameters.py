"""A batch's lists travel to PostgreSQL as array literals when they can (`dialect.array_parameter`):
whatever the values, a statement must get exactly the values the job passed, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, text

from rollout.store import queries
from rollout.store.dialect import array_parameter

NOW = datetime(2026, 1, 1, tzinfo=UTC)

# Text that a literal would have to quote, or would read as something else, next to plain text.
HOSTILE = [
    "plain-name",
    "a,b",
    "NULL",
    "null",
    "nullish",
    " leading",
    "trailing ",
    "tab\there",
    'say "hi"',
    "back\\slash",
    "{braces}",
    "it's",
    "ünïcödé",
    "non\u00a0breaking",
    "😀",
]


def test_lists_of_any_text_reach_the_statement_unchanged(engine: Engine) -> None:
    labels = [*HOSTILE, ""]
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO users (id, username, email, created_at) VALUES (:id, :u, :e, :now)"),
            [
                {"id": i, "u": f"u{i}", "e": f"u{i}@example.com", "now": NOW}
                for i in range(1, len(labels) + 1)
            ],
        )
        # One ROWS statement with hostile names and labels: ids back, then each row as inserted.
        created = queries.execute_rows_returning(
            conn,
            "insert_organization",
            [
                {"name": f"org-{i}" if i > len(HOSTILE) else HOSTILE[i - 1], "label": label, "owner_id": i}
                for i, label in enumerate(labels, start=1)
            ],
            now=NOW,
        )
        assert sorted(r.owner_id for r in created) == list(range(1, len(labels) + 1))
        stored = {
            r.owner_id: (r.name, r.label)
            for r in conn.execute(text("SELECT owner_id, name, label FROM organizations"))
        }
        assert stored == {
            i: (f"org-{i}" if i > len(HOSTILE) else HOSTILE[i - 1], label)
            for i, label in enumerate(labels, start=1)
        }

        # `IN :names`: each hostile name is found, and nothing else (a `NULL` element or a split
        # `a,b` would find nothing or something else).
        for name in HOSTILE:
            assert [r.name for r in queries.rows(conn, "organization_names_taken", names=[name])] == [name]
        taken = queries.rows(conn, "organization_names_taken", names=[*HOSTILE, "a", "b", "no-such"])
        assert sorted(r.name for r in taken) == sorted(HOSTILE)
        # `IN :owner_ids`, integers: the literal's way.
        owners = queries.rows(conn, "owned_organizations", owner_ids=[2, 3, 10**12])
        assert [(r.owner_id, r.name) for r in owners] == [(2, "a,b"), (3, "NULL")]


def test_only_lists_a_literal_carries_exactly_become_one() -> None:
    assert array_parameter([3, 1, 2]) == "{3,1,2}"
    assert array_parameter(["p-1", "ünï", "nullish"]) == "{p-1,ünï,nullish}"
    assert array_parameter([]) == "{}"
    literal = ("plain-name", "nullish", "it's", "ünïcödé", "non\u00a0breaking", "😀")
    quoted = [v for v in HOSTILE if v not in literal]
    # PostgreSQL's array parser skips six whitespace characters, no other: a no-break space is text.
    assert array_parameter(list(literal)) == "{" + ",".join(literal) + "}"
    for kept in ([True, 1], [None, 1], [1.5], *([value] for value in quoted), ["a", ""], [NOW]):
        assert array_parameter(kept) == kept, kept
