"""The access digest the ledger records for each moved project: `verify` and `ledger show` compare
it with the access rows of today, so it must not change from one release to the next."""

from __future__ import annotations

import hashlib
import random

from rollout.engine.changes import access_digest


def _as_first_released(project_rows: list[tuple], environment_rows: list[tuple]) -> str:
    # The digest as the first release computed it, one update per line.
    h = hashlib.sha256()
    for project_id, user_id, role, *_ in sorted(project_rows, key=lambda r: (r[0], r[1])):
        h.update(f"p|{project_id}|{user_id}|{role}\n".encode())
    for environment_id, user_id, role, *_ in sorted(environment_rows, key=lambda r: (r[0], r[1])):
        h.update(f"e|{environment_id}|{user_id}|{role}\n".encode())
    return h.hexdigest()


def test_the_digest_is_the_first_releases_whatever_the_order_of_the_rows() -> None:
    project = [
        ("p-1", user, role, user % 3 != 0) for user, role in [(12, "admin"), (3, "viewer"), (7, "écrivain")]
    ]
    environments = [(env, user, "deployer", True) for env in (40, 9, 100) for user in (5, 3, 11)]
    expected = _as_first_released(project, environments)
    shuffled = random.Random(7)
    for _ in range(5):
        shuffled.shuffle(project)
        shuffled.shuffle(environments)
        assert access_digest(project, environments) == expected
    assert access_digest([], []) == hashlib.sha256(b"").hexdigest()
    assert access_digest(project[:1], []) != access_digest(project[:1], environments[:1])
    assert access_digest([("p-1", 3, "viewer")], []) != access_digest([("p-1", 3, "admin")], [])
