"""The access digest the ledger records for each moved project: `verify` and `ledger show` compare
it with the access rows of today, so it must not change from one release to the next. The database
computes it (`access_of_projects`), on each backend its own way; both must give the first release's."""

from __future__ import annotations

import hashlib
import random
import sqlite3
from datetime import UTC, datetime

from sqlalchemy import Engine, text

from rollout.engine.batchread import NO_ACCESS_DIGEST, read_access

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _as_first_released(project_rows: list[tuple], environment_rows: list[tuple]) -> str:
    # The digest as the first release computed it in Python, one update per line.
    h = hashlib.sha256()
    for project_id, user_id, role in sorted(project_rows, key=lambda r: (r[0], r[1])):
        h.update(f"p|{project_id}|{user_id}|{role}\n".encode())
    for environment_id, user_id, role in sorted(environment_rows, key=lambda r: (r[0], r[1])):
        h.update(f"e|{environment_id}|{user_id}|{role}\n".encode())
    return h.hexdigest()


def test_the_database_gives_the_first_releases_digest_whatever_the_order_of_the_rows(engine: Engine) -> None:
    shuffled = random.Random(7)
    users = [3, 5, 7, 11, 12, 100, 1000]
    deleted = {7, 100}
    # Ids that sort differently as text and as numbers, a project id beyond ASCII, roles of both kinds.
    projects = {"p-é1": [40, 9, 100], "p-2": [1000], "p-3": []}
    project_grants = {
        "p-é1": [(12, "admin"), (3, "viewer"), (7, "viewer"), (100, "admin")],
        "p-2": [],
        "p-3": [(5, "viewer")],
    }
    environment_grants = {
        40: [(5, "viewer"), (3, "admin"), (11, "contributor")],
        9: [(11, "viewer"), (7, "admin")],
        100: [(1000, "viewer")],
        1000: [(3, "viewer")],
    }
    with engine.begin() as conn:
        for user in users:
            conn.execute(
                text(
                    "INSERT INTO users (id, username, email, created_at, deleted_at)"
                    " VALUES (:id, :name, :email, :now, :deleted)"
                ),
                {
                    "id": user,
                    "name": f"u{user}",
                    "email": f"u{user}@example.com",
                    "now": NOW,
                    "deleted": NOW if user in deleted else None,
                },
            )
        for project_id, environments in projects.items():
            conn.execute(
                text(
                    "INSERT INTO projects (id, title, region, owner_id, status, created_at)"
                    " VALUES (:id, 't', 'eu', 3, 'active', :now)"
                ),
                {"id": project_id, "now": NOW},
            )
            for environment_id in environments:
                conn.execute(
                    text(
                        "INSERT INTO environments (id, project_id, name, type) VALUES (:id, :p, :n, 'staging')"
                    ),
                    {"id": environment_id, "p": project_id, "n": f"e{environment_id}"},
                )
        # Grants of both kinds, each inserted in a shuffled order: (project or environment, user, role).
        for table, key, granted in (
            ("project_access", "project_id", project_grants),
            ("environment_access", "environment_id", environment_grants),
        ):
            rows = [{"on": on, "u": u, "r": r} for on, grants in granted.items() for u, r in grants]
            shuffled.shuffle(rows)
            conn.execute(text(f"INSERT INTO {table} ({key}, user_id, role) VALUES (:on, :u, :r)"), rows)

    with engine.connect() as conn:
        access = read_access(conn, [*projects, "no-such-project"])

    for project_id, environments in projects.items():
        mine = [(project_id, u, r) for u, r in project_grants[project_id]]
        theirs = [(e, u, r) for e in environments for u, r in environment_grants[e]]
        assert access.digest(project_id) == _as_first_released(mine, theirs), project_id
        assert access.grantees(project_id) == {u for _, u, _ in mine + theirs}, project_id
    assert access.digest("p-é1") != access.digest("p-2") != access.digest("p-3")
    assert access.digest("no-such-project") == NO_ACCESS_DIGEST == hashlib.sha256(b"").hexdigest()
    assert access.grantees("no-such-project") == set()
    # A changed role changes the digest.
    with engine.begin() as conn:
        conn.execute(text("UPDATE environment_access SET role = 'admin' WHERE environment_id = 100"))
    with engine.connect() as conn:
        assert read_access(conn, ["p-é1"]).digest("p-é1") != access.digest("p-é1")


def test_on_sqlite_a_grant_of_a_user_that_does_not_exist_counts_for_nothing(engine: Engine) -> None:
    """SQLite enforces foreign keys only on connections that ask: a platform writer may have left a
    grant of a user that does not exist. It is in no digest and nobody becomes a member through it,
    as in every release before."""
    if engine.dialect.name != "sqlite":
        return
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, username, email, created_at) VALUES (3, 'u3', 'u3@example.com', :now)"
            ),
            {"now": NOW},
        )
        conn.execute(
            text(
                "INSERT INTO projects (id, title, region, owner_id, status, created_at)"
                " VALUES ('p-1', 't', 'eu', 3, 'active', :now)"
            ),
            {"now": NOW},
        )
        conn.execute(
            text("INSERT INTO environments (id, project_id, name, type) VALUES (9, 'p-1', 'e', 'staging')")
        )
        conn.execute(
            text("INSERT INTO project_access (project_id, user_id, role) VALUES ('p-1', 3, 'admin')")
        )
    writer = sqlite3.connect(str(engine.url.database))  # a platform writer: foreign keys off by default
    with writer:
        writer.execute("INSERT INTO project_access (project_id, user_id, role) VALUES ('p-1', 77, 'viewer')")
        writer.execute(
            "INSERT INTO environment_access (environment_id, user_id, role) VALUES (9, 78, 'viewer')"
        )
    writer.close()
    with engine.connect() as conn:
        access = read_access(conn, ["p-1"])
    assert access.digest("p-1") == _as_first_released([("p-1", 3, "admin")], [])
    assert access.grantees("p-1") == {3}
