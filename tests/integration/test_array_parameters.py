"""A batch's lists travel to PostgreSQL as array literals when they can (`dialect.array_parameter`):
whatever the values, a statement must get exactly the values the job passed, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, text

from rollout.store import queries

NOW = datetime(2026, 1, 1, tzinfo=UTC)

# Text that an array literal would have to quote, or would read as something else: each value
# trips one check of `array_parameter` alone, so that leaving any check out fails this test.
HOSTILE = [
    "a,b",
    "NULL",
    "null",
    " leading",
    "trailing ",
    "\ttab",
    "\nnewline",
    "return\r",
    "\vvertical",
    "feed\f",
    '"quoted"',
    "{open",
    "close}",
    "{both}",
    "back\\slash",
    "",
]
# Text a literal carries as it is (PostgreSQL's array parser skips six whitespace characters only).
PLAIN = ["plain-name", "nullish", "it's", "ünïcödé", "non\u00a0breaking", "😀", "[1:1]=x"]


def test_lists_of_any_text_reach_the_statement_unchanged(engine: Engine) -> None:
    names = [*HOSTILE, *PLAIN]
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO users (id, username, email, created_at) VALUES (:id, :u, :e, :now)"),
            [{"id": i, "u": f"u{i}", "e": f"u{i}@example.com", "now": NOW} for i in range(1, len(names) + 1)],
        )
        # ROWS: the hostile names (and labels) in one statement, which the driver carries; the
        # plain ones in another, whose text columns travel as literals.
        rows = [{"name": n, "label": n or "-", "owner_id": i} for i, n in enumerate(names, start=1)]
        created = [
            *queries.execute_rows_returning(conn, "insert_organization", rows[: len(HOSTILE)], now=NOW),
            *queries.execute_rows_returning(conn, "insert_organization", rows[len(HOSTILE) :], now=NOW),
        ]
        assert sorted(r.owner_id for r in created) == list(range(1, len(names) + 1))
        stored = {
            r.owner_id: (r.name, r.label)
            for r in conn.execute(text("SELECT owner_id, name, label FROM organizations"))
        }
        assert stored == {r["owner_id"]: (r["name"], r["label"]) for r in rows}

        # `IN :names`: each name alone is found, and nothing else is (a NULL element, a split `a,b`,
        # a trimmed blank or an unquoted brace would find nothing or something else).
        for name in names:
            assert [r.name for r in queries.rows(conn, "organization_names_taken", names=[name])] == [name]
        for lookup in (PLAIN, [*names, "a", "b", "open", "no-such"]):
            taken = queries.rows(conn, "organization_names_taken", names=lookup)
            assert sorted(r.name for r in taken) == sorted(n for n in lookup if n in names)
        # `IN :owner_ids`, integers: the literal's way.
        owners = queries.rows(conn, "owned_organizations", owner_ids=[1, 2, 10**12])
        assert [(r.owner_id, r.name) for r in owners] == [(1, "a,b"), (2, "NULL")]
