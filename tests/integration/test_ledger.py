"""The ledger's SQL upserts follow the transition table of `rollout.engine.states`, on both
databases."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from rollout.clock import utcnow
from rollout.engine import ledger
from rollout.engine.states import TRANSITIONS, OwnerEvent, OwnerState, RunOutcome

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


def defer(conn: Connection) -> None:
    ledger.record_deferred(conn, [OWNER], wave="w", run_id="r", now=utcnow())


def roll_back(conn: Connection) -> None:
    ledger.record_rolled_back(conn, [OWNER], run_id="r")


EVENTS: dict[OwnerEvent, Callable[[Connection], None]] = {
    OwnerEvent.MIGRATE: migrate,
    OwnerEvent.BLOCK: block,
    OwnerEvent.FAIL: fail,
    OwnerEvent.DEFER: defer,
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
        first = {
            OwnerState.MIGRATED: OwnerEvent.MIGRATE,
            OwnerState.BLOCKED: OwnerEvent.BLOCK,
            OwnerState.FAILED: OwnerEvent.FAIL,
            OwnerState.DEFERRED: OwnerEvent.DEFER,
        }
        EVENTS[first[state]](conn)


@pytest.mark.parametrize(("before", "event"), sorted(TRANSITIONS, key=str))
def test_the_recorded_state_follows_the_transition_table(
    engine: Engine, before: OwnerState | None, event: OwnerEvent
) -> None:
    with engine.begin() as conn:
        put_in(conn, before)
        assert ledger.owner_states(conn, [OWNER]).get(OWNER) == before
        EVENTS[event](conn)
        assert ledger.owner_states(conn, [OWNER])[OWNER] is TRANSITIONS[(before, event)]


def test_the_check_constraints_accept_exactly_the_enums(engine: Engine) -> None:
    """The database (at the newest revision) takes every owner state and run outcome the code
    has, and refuses any other word."""
    now = utcnow()
    with engine.begin() as conn:
        for i, state in enumerate(OwnerState):
            conn.execute(
                text("INSERT INTO rollout_owners (owner_id, state, updated_at) VALUES (:o, :s, :now)"),
                {"o": 100 + i, "s": state.value, "now": now},
            )
        for i, outcome in enumerate(RunOutcome):
            conn.execute(
                text(
                    "INSERT INTO rollout_runs (id, mode, host, pid, started_at, heartbeat_at, outcome)"
                    " VALUES (:i, 'wave', 'h', 1, :now, :now, :o)"
                ),
                {"i": f"r{i}", "now": now, "o": outcome.value},
            )
    for statement in (
        "INSERT INTO rollout_owners (owner_id, state, updated_at) VALUES (1, 'done', :now)",
        "INSERT INTO rollout_runs (id, mode, host, pid, started_at, heartbeat_at, outcome)"
        " VALUES ('x', 'wave', 'h', 1, :now, :now, 'done')",
    ):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(statement), {"now": now})
