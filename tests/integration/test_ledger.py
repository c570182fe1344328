"""The ledger's SQL upserts follow the transition table of `rollout.engine.states`, on both
databases."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Connection, Engine, text

from rollout.clock import utcnow
from rollout.engine import ledger
from rollout.engine.states import TRANSITIONS, OwnerEvent, OwnerState

OWNER = 1


def migrate(conn: Connection) -> None:
    row = {
        "owner_id": OWNER,
        "organization_id": 10,
        "organization_name": "acme",
        "organization_created": True,
        "billing_account_id": None,
    }
    ledger.record_migrated(conn, [row], wave="w", run_id="r", now=utcnow())


def block(conn: Connection) -> None:
    ledger.record_blocked(
        conn, [{"owner_id": OWNER, "reason": "owner-deleted"}], wave="w", run_id="r", now=utcnow()
    )


def fail(conn: Connection) -> None:
    ledger.record_failure(conn, owner_id=OWNER, wave="w", run_id="r", error="boom")


def roll_back(conn: Connection) -> None:
    ledger.record_rolled_back(conn, [OWNER], run_id="r")


EVENTS: dict[OwnerEvent, Callable[[Connection], None]] = {
    OwnerEvent.MIGRATE: migrate,
    OwnerEvent.BLOCK: block,
    OwnerEvent.FAIL: fail,
    OwnerEvent.ROLL_BACK: roll_back,
}


def put_in(conn: Connection, state: OwnerState | None) -> None:
    if state is None:
        return
    if state is OwnerState.PENDING:
        conn.execute(
            text("INSERT INTO rollout_owners (owner_id, state, updated_at) VALUES (:o, 'pending', :now)"),
            {"o": OWNER, "now": utcnow()},
        )
    elif state is OwnerState.ROLLED_BACK:
        migrate(conn)
        roll_back(conn)
    else:
        EVENTS[
            {
                OwnerState.MIGRATED: OwnerEvent.MIGRATE,
                OwnerState.BLOCKED: OwnerEvent.BLOCK,
                OwnerState.FAILED: OwnerEvent.FAIL,
            }[state]
        ](conn)


@pytest.mark.parametrize(("before", "event"), sorted(TRANSITIONS, key=str))
def test_the_recorded_state_follows_the_transition_table(
    engine: Engine, before: OwnerState | None, event: OwnerEvent
) -> None:
    with engine.begin() as conn:
        put_in(conn, before)
        assert ledger.owner_states(conn, [OWNER]).get(OWNER) == before
        EVENTS[event](conn)
        assert ledger.owner_states(conn, [OWNER])[OWNER] is TRANSITIONS[(before, event)]
