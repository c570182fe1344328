"""The named-query door's rewrites: one SQL text serves PostgreSQL and SQLite."""

from __future__ import annotations

import re
from collections import Counter

from sqlalchemy.dialects import postgresql, sqlite

from rollout.store.queries import query, source, statement_names


def test_in_lists_are_one_array_on_postgresql_and_expanding_on_sqlite() -> None:
    """`IN :ids` travels as one array (`= ANY`) on PostgreSQL, one parameter per element on SQLite."""
    pg = query("owner_users", "postgresql")
    assert pg is not None and "= ANY(:owner_ids)" in pg.text and "IN :owner_ids" not in pg.text
    lite = query("owner_users", "sqlite")
    assert lite is not None
    compiled = str(lite.compile(dialect=sqlite.dialect(), compile_kwargs={"render_postcompile": False}))
    assert "IN (__[POSTCOMPILE_owner_ids])" in compiled


def test_rows_are_unnest_of_arrays_on_postgresql_and_a_row_of_parameters_on_sqlite() -> None:
    """`ROWS t (a TYPE, ...)` is `unnest(CAST(:a AS TYPE[]), ...)` on PostgreSQL and a one-row
    SELECT of the parameters on SQLite (run with executemany)."""
    pg = query("insert_member", "postgresql")
    assert pg is not None
    assert (
        "unnest(CAST(:organization_id AS BIGINT[]), CAST(:user_id AS BIGINT[]), CAST(:owner_id AS BIGINT[]))"
        " AS t (organization_id, user_id, owner_id)" in pg.text
    )
    lite = query("insert_member", "sqlite")
    assert (
        lite is not None
        and "(SELECT :organization_id AS organization_id, :user_id AS user_id) AS t" in lite.text
    )
    assert "ROWS" not in pg.text + lite.text


def test_a_dialect_variant_replaces_the_statement_and_an_empty_one_is_a_no_op() -> None:
    """`NAME@sqlite` is used on SQLite only; an empty variant means nothing to run there."""
    assert "pg_blocking_pids" in source("sessions_waiting_on_us", "postgresql")
    assert query("sessions_waiting_on_us", "sqlite") is None
    assert query("limit_waits", "sqlite") is None
    assert query("limit_waits", "postgresql") is not None


def test_every_locking_read_has_its_plain_twin() -> None:
    """`lock_X` (PostgreSQL, SKIP LOCKED) and `X` (the dry run, SQLite) return the same columns."""
    locking = [n for n in statement_names() if n.startswith("lock_")]
    assert len(locking) >= 6
    for name in locking:
        assert "SKIP LOCKED" in source(name, "postgresql"), name
        assert name.removeprefix("lock_") in statement_names(), name


def test_comments_never_become_parameters() -> None:
    """Comments are whole lines and are dropped, so a `:word` in one cannot become a parameter; every
    statement compiles on its dialects."""
    for name in statement_names():
        base, _, dialect = name.partition("@")
        for target in [dialect] if dialect else ["postgresql", "sqlite"]:
            statement = query(base, target)
            if statement is not None:
                assert "--" not in statement.text.replace("'--'", ""), name
                statement.compile(
                    dialect=postgresql.dialect() if target == "postgresql" else sqlite.dialect()
                )


def test_a_list_parameter_only_ever_meets_a_typed_array() -> None:
    """On PostgreSQL a list may travel as an untyped array literal (`dialect.array_parameter`), which
    takes its type from where it lands: `col = ANY(:p)` or `CAST(:p AS TYPE[])`. A list parameter
    anywhere else (`cardinality(:p)`, `SELECT :p`) would get its type from its values, and fail or
    differ with them; none may."""
    typed = re.compile(r"= ANY\(:(\w+)\)|CAST\(:(\w+) AS \w+\[\]\)")
    lists = 0
    for name in statement_names():
        base, _, dialect = name.partition("@")
        if dialect not in ("", "postgresql"):
            continue
        statement = query(base, "postgresql")
        if statement is None:
            continue
        sql = statement.text
        as_arrays = Counter(a or b for a, b in typed.findall(sql))
        lists += len(as_arrays)
        for parameter, typed_uses in as_arrays.items():
            assert len(re.findall(rf":{parameter}\b", sql)) == typed_uses, (name, parameter)
    assert lists >= 40
