"""Through the CLI: the dry-run report in four formats, plan == run, and --from-plan."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from rollout.store.schema import JOB_TABLES
from tests.support import Platform, events, rollout, rows, scalar, snapshot, write_plan

PLAN = '[rollout]\nbatch_size = 2\n\n[[waves]]\nname = "everyone"\npercent = 100\n'


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    return write_plan(tmp_path, PLAN)


@pytest.fixture
def platform(engine: Engine) -> Engine:
    """Colliding usernames across batches, an existing organization named like one of them, a
    reused organization, collaborators, billing and a blocked owner."""
    with engine.begin() as conn:
        p = Platform(conn)
        p.user(100)
        p.user(101, deleted=True)
        p.user(50, "owner-of-alice")
        p.organization("alice", 50, members={50: ("plans", "billing", "projects:create", "members")})
        for uid, name in {1: "Alice", 2: "alice!", 3: "Bob", 4: "ALICE_", 5: "carol", 6: "gone"}.items():
            p.user(uid, name, deleted=(uid == 6))
            p.project(f"p{uid}", uid, access={100: "viewer", 101: "admin"})
        p.organization("carol-co", 5, members={5: ("plans",)})
        p.billing(user_id=1, projects=("p1",))
    return engine


def report(db_url: str, plan: Path, fmt: str, *extra: str) -> str:
    return rollout(
        "plan", "--wave", "everyone", "--format", fmt, *extra, db_url=db_url, plan=plan, check=True
    ).stdout


def test_the_json_report_is_exactly_what_the_run_then_does(platform: Engine, db_url: str, plan: Path) -> None:
    """Plan == run: names (collisions across batches included), projects, members and billing of every
    owner in the JSON report equal what the run did; blocked owners are listed with their reason."""
    planned = json.loads(report(db_url, plan, "json"))
    assert planned["summary"]["already_migrated"] == 0 and planned["summary"]["owners"] == 5
    assert planned["blocked"] == [{"owner_id": 6, "username": "gone", "reason": "owner-deleted"}]
    assert rollout("run", "--wave", "everyone", db_url=db_url, plan=plan).returncode == 0
    with platform.connect() as conn:
        for owner in planned["owners"]:
            org = conn.execute(
                text("SELECT id, name, label FROM organizations WHERE owner_id = :o"),
                {"o": owner["owner_id"]},
            ).one()
            assert (org.name, org.label) == (owner["organization"]["name"], owner["organization"]["label"])
            moved = [
                r[0]
                for r in conn.execute(
                    text("SELECT id FROM projects WHERE organization_id = :g AND owner_id = :o ORDER BY id"),
                    {"g": org.id, "o": owner["owner_id"]},
                )
            ]
            assert moved == owner["projects"]
            added = [
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT user_id FROM rollout_added_members WHERE owner_id = :o AND user_id <> :o ORDER BY user_id"
                    ),
                    {"o": owner["owner_id"]},
                )
            ]
            assert added == owner["members_to_add"]
    names = {o["owner_id"]: o["organization"]["name"] for o in planned["owners"]}
    assert names == {1: "alice-2", 2: "alice-3", 3: "bob", 4: "alice-4", 5: "carol-co"}
    assert planned["summary"]["organizations_reused"] == 1 and planned["summary"]["billing_accounts"] == 1


def test_every_format_parses_and_plan_writes_nothing(
    platform: Engine, db_url: str, plan: Path, tmp_path: Path
) -> None:
    """JSON parses with the spec's keys; CSV has a row per owner; Markdown has its tables and the
    command; --output writes the file; no table changes, the job's own included."""
    tables = (*snapshot(platform), *JOB_TABLES)
    before = snapshot(platform, tables)
    data = json.loads(report(db_url, plan, "json"))
    assert set(data) >= {"wave", "summary", "owners", "blocked", "fingerprint"}
    assert set(data["summary"]) >= {
        "owners",
        "organizations_to_create",
        "organizations_reused",
        "projects",
        "members_to_add",
        "billing_accounts",
        "blocked",
        "already_migrated",
    }
    table = list(csv.DictReader(io.StringIO(report(db_url, plan, "csv"))))
    assert sorted(int(r["owner_id"]) for r in table) == [1, 2, 3, 4, 5, 6]
    assert {r["action"] for r in table} == {"migrate", "blocked"}
    markdown = report(db_url, plan, "markdown")
    assert "### Summary" in markdown and "| owners to migrate | 5 |" in markdown
    assert "| 6 | gone | owner-deleted |" in markdown and "rollout run --from-plan" in markdown
    assert "owners to migrate" in report(db_url, plan, "table")
    out = tmp_path / "wave.json"
    written = rollout(
        "plan", "--wave", "everyone", "--output", str(out), db_url=db_url, plan=plan, check=True
    )
    assert json.loads(out.read_text())["summary"] == data["summary"]
    (event,) = [e for e in events(written.stderr) if e["event"] == "report.written"]
    assert (event["wave"], event["path"], event["owners"]) == ("everyone", str(out), 5)
    assert snapshot(platform, tables) == before


def test_an_approved_report_runs_exactly_and_drifted_owners_are_skipped(
    platform: Engine, db_url: str, plan: Path, tmp_path: Path
) -> None:
    """--from-plan migrates the report's owners; an owner given a new project, one whose name was
    taken meanwhile and one deleted since are skipped as drifted, and the run exits 1."""
    out = tmp_path / "approved.json"
    rollout("plan", "--wave", "everyone", "--output", str(out), db_url=db_url, plan=plan, check=True)
    with platform.begin() as conn:
        p = Platform(conn)
        p.project("p3-new", 3)
        p.organization("alice-4", 50)
        conn.execute(text("UPDATE users SET deleted_at = created_at WHERE id = 5"))
        p.user(7)
        p.project("p7", 7)
    result = rollout("run", "--from-plan", str(out), db_url=db_url, plan=plan)
    assert result.returncode == 1, result.stderr
    assert "2 migrated" in result.stdout and "3 drifted" in result.stdout
    for owner in (3, 4, 5):
        assert f"owner {owner} drifted" in result.stderr
    migrated = {r[0] for r in rows(platform, "rollout_owners", "owner_id") if r[1] == "migrated"}
    assert migrated == {1, 2}
    with platform.connect() as conn:
        names = dict(
            conn.execute(text("SELECT owner_id, name FROM organizations WHERE owner_id IN (1, 2)")).all()
        )
        assert conn.execute(text("SELECT organization_id FROM projects WHERE id = 'p7'")).scalar() is None
    assert names == {1: "alice-2", 2: "alice-3"}


def test_a_tampered_report_is_refused(platform: Engine, db_url: str, plan: Path, tmp_path: Path) -> None:
    """A report whose content no longer matches its fingerprint: exit 2, nothing written."""
    out = tmp_path / "approved.json"
    rollout("plan", "--wave", "everyone", "--output", str(out), db_url=db_url, plan=plan, check=True)
    data = json.loads(out.read_text())
    data["owners"][0]["organization"]["name"] = "hijacked"
    out.write_text(json.dumps(data))
    before = snapshot(platform, ("organizations", "projects", "rollout_runs"))
    result = rollout("run", "--from-plan", str(out), db_url=db_url, plan=plan)
    assert result.returncode == 2 and "fingerprint" in result.stderr
    assert snapshot(platform, tuple(before)) == before


def test_plan_equals_run_on_seeded_data_with_every_edge_case(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    """On 1 500 seeded owners (collisions, Unicode, reused organizations, blocked owners...), small
    batches: every owner of the JSON report gets exactly the organization name, label, projects,
    members and billing account the report gave, and the blocked owners are recorded as reported."""
    from rollout.seed import seed

    seed(engine, 1500, 5)
    plan = tmp_path / "waves.toml"
    plan.write_text('[rollout]\nbatch_size = 7\n\n[[waves]]\nname = "everyone"\npercent = 100\n')
    planned = json.loads(report(db_url, plan, "json"))
    assert planned["summary"]["blocked"] > 0 and planned["summary"]["organizations_reused"] > 0
    assert rollout("run", "--wave", "everyone", db_url=db_url, plan=plan).returncode == 0
    with engine.connect() as conn:
        done = {
            r.owner_id: r
            for r in conn.execute(
                text(
                    "SELECT r.owner_id, o.name, o.label, r.billing_account_id FROM rollout_owners r "
                    "JOIN organizations o ON o.id = r.organization_id WHERE r.state = 'migrated'"
                )
            )
        }
        moved: dict[int, list[str]] = {}
        for owner_id, project_id in conn.execute(
            text("SELECT owner_id, project_id FROM rollout_moved_projects ORDER BY project_id")
        ):
            moved.setdefault(owner_id, []).append(project_id)
        added: dict[int, list[int]] = {}
        for owner_id, user_id in conn.execute(
            text(
                "SELECT owner_id, user_id FROM rollout_added_members WHERE user_id <> owner_id ORDER BY user_id"
            )
        ):
            added.setdefault(owner_id, []).append(user_id)
        blocked = dict(
            conn.execute(text("SELECT owner_id, reason FROM rollout_owners WHERE state = 'blocked'")).all()
        )
    assert set(done) == {o["owner_id"] for o in planned["owners"]}
    for owner in planned["owners"]:
        row = done[owner["owner_id"]]
        assert (row.name, row.label, row.billing_account_id) == (
            owner["organization"]["name"],
            owner["organization"]["label"],
            owner["billing_account_id"],
        )
        assert moved[owner["owner_id"]] == sorted(owner["projects"])
        assert added.get(owner["owner_id"], []) == owner["members_to_add"]
    assert blocked == {b["owner_id"]: b["reason"] for b in planned["blocked"]}


def test_an_approved_multi_batch_report_runs_reruns_quietly_and_respects_rollbacks(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A report of many batches, blocked owners among them, is accepted as generated; run again it does
    nothing and exits 0; an owner rolled back since is not migrated again by it."""
    from rollout.seed import seed

    seed(engine, 400, 3)
    plan = tmp_path / "waves.toml"
    plan.write_text('[rollout]\nbatch_size = 7\n\n[[waves]]\nname = "everyone"\npercent = 100\n')
    out = tmp_path / "approved.json"
    rollout("plan", "--wave", "everyone", "--output", str(out), db_url=db_url, plan=plan, check=True)
    planned = json.loads(out.read_text())
    first = rollout("run", "--from-plan", str(out), db_url=db_url, plan=plan)
    assert first.returncode == 0, first.stderr
    assert f"{planned['summary']['owners']} migrated" in first.stdout
    again = rollout("run", "--from-plan", str(out), db_url=db_url, plan=plan)
    assert again.returncode == 0 and "0 migrated" in again.stdout and "drifted" not in again.stdout
    owner = planned["owners"][0]["owner_id"]
    rollout("rollback", "--owner", str(owner), db_url=db_url, plan=plan, check=True)
    third = rollout("run", "--from-plan", str(out), db_url=db_url, plan=plan)
    assert third.returncode == 0, third.stderr
    assert scalar(engine, "SELECT state FROM rollout_owners WHERE owner_id = :o", o=owner) == "rolled-back"
