"""The real `rollout` command in a subprocess: exit codes, one-line errors, reports, log events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.support import Platform, errors, events, inject_failure, rollout, scalar, snapshot, write_plan

PLAN = """
[rollout]
batch_size = 2

[[waves]]
name = "canary"
owners = [2]

[[waves]]
name = "everyone"
percent = 100
"""


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    return write_plan(tmp_path, PLAN)


@pytest.fixture
def platform(engine: Engine) -> Engine:
    """Five owners with a shared collaborator, one of them blocked (deleted)."""
    with engine.begin() as conn:
        Platform(conn).shared_owners(range(1, 6), deleted=(4,))
    return engine


def test_a_wave_end_to_end_with_status_and_verify(platform: Engine, db_url: str, plan: Path) -> None:
    """Run, status and verify through the CLI: exit 0, the run line on stdout, JSON reports with the
    spec's counts, and every log event carrying the run id and the wave."""
    result = rollout("run", "--wave", "canary", db_url=db_url, plan=plan)
    assert result.returncode == 0, result.stderr
    assert "1 migrated" in result.stdout
    result = rollout("run", "--wave", "everyone", db_url=db_url, plan=plan)
    assert result.returncode == 0, result.stderr
    assert "3 migrated, 1 blocked, 0 failed" in result.stdout
    # Off a terminal every log line is JSON, and every event carries the run id and the wave.
    logged = events(result.stderr)
    assert logged and all(e["wave"] == "everyone" and e["run_id"] for e in logged)
    assert len(logged) == len(result.stderr.splitlines())

    status = json.loads(rollout("status", "--format", "json", db_url=db_url, plan=plan, check=True).stdout)
    waves = {w["wave"]: w for w in status["waves"]}
    assert waves["canary"]["migrated"] == 1
    # The canary's owner counts under everyone too: a 100 % wave admits it.
    everyone = waves["everyone"]
    assert (everyone["selected"], everyone["migrated"], everyone["blocked"], everyone["remaining"]) == (
        5,
        4,
        1,
        0,
    )
    assert waves["everyone"]["complete"] is True
    assert [r["outcome"] for r in status["runs"]] == ["succeeded", "succeeded"]

    report = json.loads(rollout("verify", "--format", "json", db_url=db_url, plan=plan, check=True).stdout)
    assert report["ok"] is True and report["owners_checked"] == 4


def test_a_failed_owner_exits_1_and_a_broken_invariant_makes_verify_exit_1(
    platform: Engine, db_url: str, plan: Path
) -> None:
    """Exit 1 when an owner failed (the others migrate); verify exits 1 naming the owner whose
    invariant was broken on purpose."""
    inject_failure(platform, "NEW.id = 'p3'")
    result = rollout("run", "--wave", "everyone", db_url=db_url, plan=plan)
    assert result.returncode == 1, result.stderr
    assert "owner 3 failed" in result.stderr and "Traceback" not in result.stderr
    assert scalar(platform, "SELECT COUNT(*) FROM projects WHERE organization_id IS NOT NULL") == 3

    assert rollout("verify", db_url=db_url, plan=plan).returncode == 0
    with platform.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO organization_member_permissions (organization_id, user_id, permission) "
                "SELECT organization_id, 100, 'billing' FROM projects WHERE id = 'p2'"
            )
        )
    result = rollout("verify", "--format", "json", db_url=db_url, plan=plan)
    assert result.returncode == 1
    violations = json.loads(result.stdout)["violations"]
    assert [(v["owner_id"], v["invariant"]) for v in violations] == [(2, 4)]


@pytest.mark.parametrize(
    "args, message",
    [
        (("run", "--wave", "nope"), "unknown wave 'nope'"),
        (("run",), "exactly one of --wave"),
        (("run", "--wave", "everyone", "--owner", "1"), "exactly one of --wave"),
        (("run", "--owner", "999"), "unknown owner 999"),
        (("run", "--wave", "everyone", "--batch-size", "0"), "--batch-size"),
        (("run", "--wave", "everyone", "--time-budget", "soon"), "--time-budget"),
        (("frobnicate",), "No such command"),
    ],
)
def test_usage_errors_exit_2_with_one_line_and_write_nothing(
    platform: Engine, db_url: str, plan: Path, args: tuple[str, ...], message: str
) -> None:
    """Exit 2, one line on stderr naming the problem, no traceback, no row written anywhere."""
    before = snapshot(platform, ("projects", "organizations", "rollout_runs", "rollout_owners"))
    result = rollout(*args, db_url=db_url, plan=plan)
    assert result.returncode == 2, (result.stdout, result.stderr)
    # Off a terminal the error is one JSON event, with the exit code; every line is JSON.
    assert len(events(result.stderr)) == len(result.stderr.splitlines())
    error_lines = errors(result.stderr)
    assert [e["exit_code"] for e in events(result.stderr) if e["event"] == "rollout.error"] == [2]
    assert len(error_lines) == 1 and message in error_lines[0], result.stderr
    assert snapshot(platform, tuple(before)) == before


def test_an_invalid_plan_file_exits_2_naming_file_wave_and_key(
    platform: Engine, db_url: str, tmp_path: Path
) -> None:
    """An unknown key is one line naming the file, the wave and the key; exit 2; nothing written."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[[waves]]\nname = "canary"\nowners = [1]\npercnt = 5\n')
    before = snapshot(platform, ("projects", "rollout_runs"))
    result = rollout("run", "--wave", "canary", db_url=db_url, plan=bad)
    assert result.returncode == 2
    assert str(bad) in result.stderr and "canary" in result.stderr and "percnt" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(platform, tuple(before)) == before


def test_database_errors_exit_2_without_creating_anything(tmp_path: Path, plan: Path) -> None:
    """A bad URL, a SQLite path that does not exist, and a database without the job's schema are
    usage errors (exit 2); the missing file is not created."""
    result = rollout("status", db_url="mysql://nobody@nowhere/x", plan=plan)
    assert result.returncode == 2 and "unsupported database URL" in result.stderr
    missing = tmp_path / "missing.db"
    result = rollout("status", db_url=f"sqlite:///{missing}", plan=plan)
    assert result.returncode == 2 and not missing.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    result = rollout("status", db_url=f"sqlite:///{empty}", plan=plan)
    assert result.returncode == 2 and "rollout db init" in result.stderr


def test_an_unreachable_database_exits_75(plan: Path) -> None:
    """A PostgreSQL server that refuses connections, after the retries: exit 75, one line."""
    result = rollout(
        "status",
        db_url="postgresql+psycopg://nobody@127.0.0.1:1/x",
        plan=plan,
        env={"ROLLOUT_DB_ATTEMPTS": "2"},
    )
    assert result.returncode == 75, result.stderr
    assert "unreachable" in result.stderr.splitlines()[-1]


def test_db_init_is_idempotent_and_creates_the_platform_schema(tmp_path: Path, plan: Path) -> None:
    """`db init --platform-schema` twice on a new file gives every table; `status` then works."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    for _ in range(2):
        assert rollout("db", "init", "--platform-schema", db_url=url, plan=plan).returncode == 0
    result = rollout("status", "--format", "json", db_url=url, plan=plan)
    assert result.returncode == 0 and json.loads(result.stdout)["waves"][0]["selected"] == 0


def test_a_database_that_refuses_us_is_a_usage_error(pg_server: str, plan: Path) -> None:
    """An unknown PostgreSQL database or role is exit 2 at once with one line, not retried as an
    outage (exit 75)."""
    from sqlalchemy.engine import make_url

    missing = make_url(pg_server).set(database="no_such_database_here").render_as_string(hide_password=False)
    result = rollout("status", db_url=missing, plan=plan)
    assert result.returncode == 2, result.stderr
    assert "does not exist" in result.stderr.splitlines()[-1]
