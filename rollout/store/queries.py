"""The one door to the database: the named statements of `sql/`, and the functions that run them.

Every statement lives in `sql/queries/*.sql` under a `-- name: NAME` header. A statement that
differs between PostgreSQL and SQLite has a second block named `NAME@sqlite` (or `NAME@postgresql`);
that pair is the whole of the dialect difference for it, and an empty block means "nothing to do on
that database". Two rewrites make one text serve both databases:

- `IN :name` takes a Python sequence: one array parameter (`= ANY(:name)`) on PostgreSQL, an
  expanding parameter on SQLite;
- `ROWS t (col TYPE, …)` is the rows of a batch: `unnest` of one array per column on PostgreSQL,
  a row of parameters run with executemany on SQLite (see `execute_rows`).

`sql/` sits at the top of the repository and inside the wheel (`rollout/sql` links to it), and is
read with importlib.resources.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from sqlalchemy import Connection, Row, TextClause, bindparam, text

from rollout.store import dialect

_HEADER = re.compile(r"^-- name: (\S+)[^\n]*\n", re.M)
_EXPANDING = re.compile(r"\bIN\s+:(\w+)", re.I)
_ROWS = re.compile(r"\bROWS\s+(\w+)\s*\(([^)]*)\)")


def sql_root() -> Traversable:
    """The `sql/` folder of the package."""
    return resources.files("rollout") / "sql"


def _without_comments(source: str) -> str:
    # Comments are for readers; a `:word` in one would become a bind parameter.
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("--"))


@cache
def _statements() -> dict[str, str]:
    statements: dict[str, str] = {}
    folder = sql_root() / "queries"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        parts = _HEADER.split(entry.read_text(encoding="utf-8"))
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in statements:
                raise RuntimeError(f"duplicate SQL statement name {name!r} in {entry.name}")
            statements[name] = _without_comments(body).strip().rstrip(";")
    return statements


def statement_names() -> frozenset[str]:
    """Every statement name, dialect variants included (for the tests)."""
    return frozenset(_statements())


def source(name: str, dialect_name: str) -> str:
    """The text of a statement for a dialect, before the `IN` and `ROWS` rewrites."""
    statements = _statements()
    variant = f"{name}@{dialect_name}"
    return statements[variant] if variant in statements else statements[name]


@cache
def query(name: str, dialect_name: str) -> TextClause | None:
    """The statement `name` for a dialect, rewritten (see the module's docstring); None when the
    statement is empty on that dialect."""
    body = _ROWS.sub(lambda m: _rows_source(m.group(1), m.group(2), dialect_name), source(name, dialect_name))
    if not body:
        return None
    if dialect_name == dialect.POSTGRESQL:
        return text(_EXPANDING.sub(r"= ANY(:\1)", body))
    clause = text(body)
    expanding = sorted(set(_EXPANDING.findall(body)))
    if expanding:
        clause = clause.bindparams(*(bindparam(p, expanding=True) for p in expanding))
    return clause


def _rows_source(alias: str, spec: str, dialect_name: str) -> str:
    columns = [column.split() for column in spec.split(",")]
    if dialect_name == dialect.POSTGRESQL:
        arrays = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in columns)
        return f"unnest({arrays}) AS {alias} ({', '.join(name for name, _ in columns)})"
    return f"(SELECT {', '.join(f':{name} AS {name}' for name, _ in columns)}) AS {alias}"


def _run(conn: Connection, name: str, params: Any) -> Any:
    statement = query(name, conn.dialect.name)
    if statement is None:
        return None
    return conn.execute(statement, dialect.parameters(conn, params) if isinstance(params, dict) else params)


def rows(conn: Connection, name: str, /, **params: Any) -> Sequence[Row[Any]]:
    """Every row of a query, fetched in one call (iterating would fetch row by row)."""
    result = _run(conn, name, params)
    return [] if result is None else result.all()


def one(conn: Connection, name: str, /, **params: Any) -> Row[Any] | None:
    """The first row of a query, or None."""
    result = _run(conn, name, params)
    return None if result is None else result.first()


def scalar(conn: Connection, name: str, /, **params: Any) -> Any:
    """The first column of the first row, or None."""
    result = _run(conn, name, params)
    return None if result is None else result.scalar()


def execute(conn: Connection, name: str, /, **params: Any) -> int:
    """Runs a statement; returns the rows it affected (0 for a statement empty on this dialect)."""
    result = _run(conn, name, params)
    return 0 if result is None else int(result.rowcount)


def execute_many(conn: Connection, name: str, params: Sequence[Mapping[str, Any]]) -> None:
    """Runs a statement once per set of parameters (a few rows; a batch uses `execute_rows`)."""
    if params:
        _run(conn, name, list(params))


def execute_rows(conn: Connection, name: str, rows: Sequence[Mapping[str, Any]], /, **constants: Any) -> int:
    """Runs a statement over the `ROWS` of a batch; `constants` are the same for every row. Returns
    the rows affected (0 for a statement empty on this dialect). One round trip for the batch on
    PostgreSQL."""
    if not rows:
        return 0
    return execute_columns(conn, name, _columns(rows), **constants)


def execute_columns(
    conn: Connection, name: str, columns: Mapping[str, Sequence[Any]], /, **constants: Any
) -> int:
    """`execute_rows` for a batch held as one list per column (the hot path builds them directly);
    0 for no rows or a statement empty on this dialect."""
    if not columns or not next(iter(columns.values())) or query(name, conn.dialect.name) is None:
        return 0
    return int(_run(conn, name, dialect.column_parameters(conn, columns, constants)).rowcount)


def _columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """A batch given as one mapping per row, as one list per column."""
    return {key: [row[key] for row in rows] for key in rows[0]}


def execute_rows_returning(
    conn: Connection, name: str, rows: Sequence[Mapping[str, Any]], /, **constants: Any
) -> Sequence[Row[Any]]:
    """`execute_rows` for a statement with `RETURNING`: the rows it returns. One round trip for the
    batch on PostgreSQL; on SQLite, in process, one statement per row (executemany returns none)."""
    if not rows:
        return []
    assert query(name, conn.dialect.name) is not None, f"{name} is empty on {conn.dialect.name}"
    params = dialect.column_parameters(conn, _columns(rows), constants)
    if isinstance(params, list):
        return [row for one_row in params for row in _run(conn, name, one_row).all()]
    returned: Sequence[Row[Any]] = _run(conn, name, params).all()
    return returned


def load(conn: Connection, name: str, rows: Iterable[Sequence[Any]]) -> int:
    """Bulk-loads rows with a named `COPY` (PostgreSQL) / `INSERT … VALUES (?, …)` (SQLite)."""
    return dialect.load_rows(conn, source(name, conn.dialect.name), rows)


def script(filename: str, dialect_name: str) -> list[str]:
    """The DDL statements of a schema file (`sql/schema/`), one by one, for a dialect: the file
    `NAME.sqlite.sql` beside `NAME.sql` replaces it on SQLite."""
    folder = sql_root() / "schema"
    *parts, name = filename.split("/")
    for part in parts:
        folder = folder / part
    variant = folder / name.replace(".sql", f".{dialect_name}.sql")
    source_text = (variant if variant.is_file() else folder / name).read_text(encoding="utf-8")
    source_text = (
        _without_comments(source_text)
        .replace("{identity}", dialect.IDENTITY_COLUMN[dialect_name])
        .replace("{create_index}", dialect.CREATE_INDEX[dialect_name])
    )
    return [statement.strip() for statement in source_text.split(";") if statement.strip()]


def operator_check(conn: Connection, sql: str) -> bool:
    """Runs an operator's health query (the plan's `health_query`, trusted configuration, not data)
    in a read-only transaction with a short statement timeout: healthy only when it returns true."""
    execute(conn, "read_only")
    execute(conn, "limit_check_time")
    value = conn.exec_driver_sql(sql).scalar()
    return value is True or value == 1
