"""The job runs as a role holding only what `rollout db grants` prints: a migration, a sweep, a
rollback and verify succeed; a read-only role can plan, see the status and verify, and a run with it
is one line and exit 2, "permission denied", not an internal error."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from tests.support import Platform, errors, grant_role, rollout, scalar, write_plan

PLAN = '[rollout]\nbatch_size = 2\n\n[[waves]]\nname = "everyone"\npercent = 100\n'


def platform(engine: Engine) -> None:
    with engine.begin() as conn:
        p = Platform(conn)
        p.user(100)
        for owner in range(1, 6):
            p.user(owner)
            p.project(f"p{owner}", owner, access={100: "viewer"}, environments={"production": {100: "admin"}})
            p.billing(user_id=owner, projects=(f"p{owner}",))


def test_the_printed_grants_are_enough_to_migrate_sweep_roll_back_and_verify(
    engine: Engine, db_url: str, role: tuple[str, str], tmp_path: Path
) -> None:
    name, as_role = role
    platform(engine)
    grant_role(engine, db_url, name)
    plan = write_plan(tmp_path, PLAN)
    for args in (
        ("run", "--wave", "everyone"),
        ("sweep",),
        ("verify",),
        ("status",),
        ("rollback", "--owner", "3"),
        ("run", "--owner", "3"),
        ("run", "--auto"),
    ):
        result = rollout(*args, db_url=as_role, plan=plan)
        assert result.returncode == 0, (args, result.stderr[-800:])
    assert scalar(engine, "SELECT COUNT(*) FROM projects WHERE organization_id IS NULL") == 0


def test_a_read_only_role_reads_and_is_refused_writing_with_one_line(
    engine: Engine, db_url: str, role: tuple[str, str], tmp_path: Path
) -> None:
    name, as_role = role
    platform(engine)
    grant_role(engine, db_url, name, "--read-only")
    plan = write_plan(tmp_path, PLAN)
    for args in (("plan", "--wave", "everyone", "--format", "json"), ("status",), ("verify",)):
        result = rollout(*args, db_url=as_role, plan=plan)
        assert result.returncode == 0, (args, result.stderr[-800:])
    refused = rollout("run", "--wave", "everyone", db_url=as_role, plan=plan)
    assert refused.returncode == 2, refused.stderr
    said = errors(refused.stderr)
    assert len(said) == 1 and "permission denied" in said[0] and "rollout db grants" in said[0]
    assert "internal error" not in refused.stderr
    assert scalar(engine, "SELECT COUNT(*) FROM projects WHERE organization_id IS NOT NULL") == 0
