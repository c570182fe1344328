"""The owner's projects are locked and re-read inside the batch, on PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, text

from tests.support import Platform, run_wave, scalar


def test_a_concurrent_change_of_ownership_waits_and_is_never_half_moved(engine: Engine) -> None:
    """While the platform holds a project row (changing its owner), the owner is deferred and the
    run tries it again; after the change commits, it moves only what the owner still owns."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serialises whole transactions")
    with engine.begin() as conn:
        p = Platform(conn)
        for uid in (1, 2, 9):
            p.user(uid)
        p.project("kept", 1, access={9: "viewer"})
        p.project("given-away", 1, access={9: "admin"})
    platform = engine.connect()
    tx = platform.begin()
    platform.execute(text("UPDATE projects SET owner_id = 2 WHERE id = 'given-away'"))
    result: dict[str, object] = {}
    worker = threading.Thread(target=lambda: result.update(summary=run_wave(engine)))
    worker.start()
    time.sleep(1.0)
    assert worker.is_alive(), "the run did not wait for the platform's lock to try the owner again"
    tx.commit()
    platform.close()
    worker.join(timeout=60)
    owner_1_org = scalar(engine, "SELECT id FROM organizations WHERE owner_id = 1")
    assert scalar(engine, "SELECT organization_id FROM projects WHERE id = 'kept'") == owner_1_org
    given = scalar(engine, "SELECT organization_id FROM projects WHERE id = 'given-away'")
    assert given is None or given == scalar(engine, "SELECT id FROM organizations WHERE owner_id = 2")
    assert scalar(engine, "SELECT COUNT(*) FROM rollout_moved_projects WHERE owner_id = 1") == 1
