"""The named SQL statements of `sql/`, loaded once.

Every statement lives in `sql/queries/*.sql` under a `-- name: NAME` header. A statement that
differs between PostgreSQL and SQLite has a second block named `NAME@sqlite` (or `NAME@postgresql`);
that pair is the whole of the dialect difference for it. Parameters written `IN :name` are
expanded from a Python sequence.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from sqlalchemy import TextClause, bindparam, text

from rollout import dialect

_HEADER = re.compile(r"^-- name: (\S+)[^\n]*\n", re.M)
_EXPANDING = re.compile(r"\bIN\s+:(\w+)", re.I)
_ROWS = re.compile(r"\bROWS\s+(\w+)\s*\(([^)]*)\)")


def sql_dir() -> Path:
    """The `sql/` folder: inside the wheel, or beside the package in a checkout."""
    packaged = Path(__file__).with_name("sql")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "sql"


@cache
def _statements() -> dict[str, str]:
    statements: dict[str, str] = {}
    for path in sorted((sql_dir() / "queries").glob("*.sql")):
        parts = _HEADER.split(path.read_text(encoding="utf-8"))
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in statements:
                raise RuntimeError(f"duplicate SQL statement name {name!r} in {path}")
            # Comments are for readers; a `:word` in one would become a bind parameter.
            lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
            statements[name] = "\n".join(lines).strip().rstrip(";")
    return statements


@cache
def query(name: str, dialect_name: str) -> TextClause:
    """The statement `name` for a dialect, with its `IN :x` parameters made expanding.

    On PostgreSQL `IN :x` becomes `= ANY(:x)`: the list travels as one array parameter instead of one
    parameter per element, which a batch of hundreds of owners would otherwise pay for in every
    statement.
    """
    statements = _statements()
    body = _ROWS.sub(
        lambda m: _rows_source(m.group(1), m.group(2), dialect_name),
        statements.get(f"{name}@{dialect_name}") or statements[name],
    )
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


def script(filename: str, dialect_name: str) -> list[str]:
    """The DDL statements of a schema file, one by one, with the dialect's substitutions."""
    source = (sql_dir() / filename).read_text(encoding="utf-8")
    source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("--"))
    source = source.replace("{identity}", dialect.IDENTITY_COLUMN[dialect_name])
    return [stmt.strip() for stmt in source.split(";") if stmt.strip()]
