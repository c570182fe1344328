"""The platform indexes the job's statements rely on (`sql/schema/indexes.sql`): which ones the
database lacks, and how `rollout db indexes` builds them.

A lookup is served when some index of its table (valid, not partial, B-tree or hash) has the
lookup's columns as its leading key columns, in any order; a primary key or a unique constraint
counts. The platform's own index names do not matter.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from rollout.errors import PermissionDenied, RolloutError, first_line
from rollout.store import dialect, queries
from rollout.store.engine import operator_error

_CREATE = re.compile(r"^CREATE INDEX (?:CONCURRENTLY )?IF NOT EXISTS (\w+) ON (\w+) \(([^)]*)\)$")


@dataclass(frozen=True)
class Index:
    """One lookup the job's statements make, and the statement that builds an index for it."""

    name: str
    table: str
    columns: tuple[str, ...]
    statement: str

    @property
    def lookup(self) -> str:
        return f"{self.table} ({', '.join(self.columns)})"


def needed(dialect_name: str) -> list[Index]:
    """The lookups of `sql/schema/indexes.sql`, each with its statement for this database."""
    found = []
    for statement in queries.script("indexes.sql", dialect_name):
        match = _CREATE.match(" ".join(statement.split()))
        if match is None:  # pragma: no cover - the file is the project's own
            raise RuntimeError(f"sql/schema/indexes.sql: not an index definition: {statement}")
        name, table, columns = match.groups()
        found.append(
            Index(
                name, table, tuple(c.strip() for c in columns.split(",")), " ".join(statement.split()) + ";"
            )
        )
    return found


def missing(conn: Connection) -> list[Index]:
    """The lookups no index of the database serves, in the file's order."""
    wanted = needed(conn.dialect.name)
    keys: dict[tuple[str, str], list[tuple[int, str | None]]] = defaultdict(list)
    for row in queries.rows(conn, "index_keys", tables=sorted({index.table for index in wanted})):
        keys[(row.table_name, row.index_name)].append((int(row.position), row.column_name))
    leading: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for (table, _name), columns in keys.items():
        usable: list[str] = []
        for expected, (position, column) in enumerate(sorted(columns), start=1):
            if position != expected or column is None:
                break
            usable.append(column)
        leading[table].append(tuple(usable))
    return [
        index
        for index in wanted
        if not any(set(have[: len(index.columns)]) == set(index.columns) for have in leading[index.table])
    ]


def build_missing(engine: Engine, announce: Callable[[Index], None]) -> list[Index]:
    """Builds every missing index, one statement at a time, outside a transaction on PostgreSQL
    (CONCURRENTLY: the platform's writes go on); `announce` is told of each before it starts.
    Returns the indexes built.

    The job's indexes have names of their own (`rollout_…`), so `IF NOT EXISTS` only ever skips
    one of the job's: an index left invalid by a build that failed. Such a statement leaves its
    lookup unserved, which is an error naming the index to drop; so is a build that fails."""
    built = []
    try:
        with engine.connect() as conn:
            if dialect.builds_indexes_concurrently(conn):
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            queries.execute(conn, "unbounded_statement_time")
            lacking = missing(conn)
            conn.commit()
            for index in lacking:
                announce(index)
                try:
                    conn.exec_driver_sql(index.statement)
                    conn.commit()
                except DBAPIError as exc:
                    if operator_error(engine, exc) is not None:
                        raise
                    raise RolloutError(
                        f"building {index.name} on {index.lookup} failed ({first_line(exc)}); a concurrent"
                        f" build that fails leaves an invalid index: DROP INDEX CONCURRENTLY IF EXISTS"
                        f" {index.name}; then run `rollout db indexes` again"
                    ) from exc
                if index in missing(conn):
                    raise RolloutError(
                        f"the job's index {index.name} exists but does not serve {index.lookup}: a build"
                        f" that failed left it invalid. DROP INDEX CONCURRENTLY {index.name}; then run"
                        " `rollout db indexes` again"
                    )
                conn.commit()
                built.append(index)
    except DBAPIError as exc:
        known = operator_error(engine, exc)
        if isinstance(known, PermissionDenied):
            raise PermissionDenied(
                f"only the tables' owner may create indexes ({first_line(exc)}): run `rollout db indexes`"
                " as the owner, or give the owner the statements `rollout db indexes --print` shows"
            ) from exc
        if known is not None:
            raise known from None
        raise
    return built
