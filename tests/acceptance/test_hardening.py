"""Hostile input and careless deployment, through the real `rollout` command: secrets never printed,
outputs checked before any work, someone else's SQLite file left as it was, an edited report that
recomputes its fingerprint still cannot name an organization, control characters neutralised in
every human format, and the choices the contract left open."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import socket
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from rollout.operations.dryrun import fingerprint_of
from tests.support import Platform, errors, events, rollout, scalar, write_plan

SECRET = "S3cr3tPW"
PLAN = '[rollout]\nbatch_size = 10\n\n[[waves]]\nname = "everyone"\npercent = 100\n'


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg:/postgres:{SECRET}@127.0.0.1/test",
        f" postgresql+psycopg://postgres:{SECRET}@127.0.0.1:5432/rollout_no_such_db",
        f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:notaport/test",
        f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1/test",
        f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:5432/test?sslmode=bogus",
        f"mysql://root:{SECRET}@localhost/app",
        f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:5432/rollout_no_such_db_either",
        f"postgres ql://postgres:{SECRET}@x",
    ],
)
def test_no_output_ever_shows_a_password(url: str, tmp_path: Path) -> None:
    """A malformed or refused URL is one line and exit 2 (never `internal error`), and no line of
    any output (tracebacks with -v included) carries the password."""
    plan = write_plan(tmp_path, PLAN)
    for args in (("status",), ("-v", "run", "--wave", "everyone"), ("db", "init")):
        result = rollout(*args, db_url=url, plan=plan, env={"ROLLOUT_DB_ATTEMPTS": "1"})
        assert SECRET not in result.stdout + result.stderr, (args, result.stderr)
        assert result.returncode == 2, (args, result.returncode, result.stderr[-500:])
        assert "internal error" not in result.stderr


def test_a_host_name_that_does_not_resolve_is_unreachable_after_the_retries(tmp_path: Path) -> None:
    """DNS outages pass: a name that does not resolve is retried like a refused connection, then
    exit 75 with one line naming the host (and no password); not exit 2, not `internal error`."""
    plan = write_plan(tmp_path, PLAN)
    url = f"postgresql+psycopg://postgres:{SECRET}@no-such-host.invalid:5432/test"
    result = rollout("status", db_url=url, plan=plan, env={"ROLLOUT_DB_ATTEMPTS": "2"})
    assert result.returncode == 75, result.stderr
    (line,) = errors(result.stderr)
    assert line.startswith("database unreachable after retries") and "no-such-host.invalid" in line
    retries = [e for e in events(result.stderr) if e["event"] == "db.retry"]
    assert len(retries) == 1
    assert SECRET not in result.stdout + result.stderr


def test_outputs_are_checked_before_the_first_batch(engine: Engine, db_url: str, tmp_path: Path) -> None:
    """A metrics file or a report that cannot be written is exit 2 with one line, before anything
    is migrated."""
    with engine.begin() as conn:
        p = Platform(conn)
        p.user(1)
        p.project("p1", 1)
    plan = write_plan(tmp_path, PLAN)
    for args in (
        ("run", "--wave", "everyone", "--metrics-file", "/proc/rollout.prom"),
        ("run", "--wave", "everyone", "--metrics-file", str(tmp_path / "missing" / "r.prom")),
        ("run", "--wave", "everyone", "--metrics-file", str(tmp_path)),
        ("sweep", "--metrics-file", "/proc/rollout.prom"),
        ("plan", "--wave", "everyone", "--output", "/proc/wave.json"),
    ):
        result = rollout(*args, db_url=db_url, plan=plan)
        assert result.returncode == 2, (args, result.stderr)
        said = errors(result.stderr)
        assert len(said) == 1 and ("cannot write" in said[0] or "is a directory" in said[0]), said
    assert scalar(engine, "SELECT COUNT(*) FROM rollout_runs") == 0
    assert scalar(engine, "SELECT COUNT(*) FROM organizations") == 0


def test_a_file_that_is_not_a_rollout_database_is_left_exactly_as_it_was(tmp_path: Path) -> None:
    """Every command but `db init` and `demo`, pointed at another application's SQLite file, exits
    2 and changes nothing: not a byte, not the journal mode."""
    other = tmp_path / "other_app.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('keep me')")
    before = hashlib.sha256(other.read_bytes()).hexdigest()
    plan = write_plan(tmp_path, PLAN)
    url = f"sqlite:///{other}"
    for args in (
        ("status",),
        ("verify",),
        ("plan", "--wave", "everyone"),
        ("run", "--wave", "everyone"),
        ("run", "--auto"),
        ("sweep",),
        ("rollback", "--owner", "1"),
        ("pause",),
        ("db", "upgrade"),
        ("demo",),
    ):
        result = rollout(*args, db_url=url, plan=plan)
        assert result.returncode == 2, (args, result.stderr[-300:])
    assert hashlib.sha256(other.read_bytes()).hexdigest() == before
    with sqlite3.connect(other) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other_app.db", "waves.toml"]


HOSTILE_NAMES = ("Admin Panel; DROP TABLE x --", "x" * 5000, "../../etc", "admin")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_an_edited_report_with_a_recomputed_fingerprint_cannot_name_an_organization(
    engine: Engine, db_url: str, tmp_path: Path, name: str
) -> None:
    """The planned name of an organization to create must be one the naming rule gives that owner
    (and not a reserved one): otherwise the owner is drifted and nothing is created for it."""
    with engine.begin() as conn:
        Platform(conn).named_owners({1: "alice", 2: "bob"})
    plan = write_plan(tmp_path, PLAN)
    report = tmp_path / "approved.json"
    rollout("plan", "--wave", "everyone", "--output", str(report), db_url=db_url, plan=plan, check=True)
    data = json.loads(report.read_text())
    data["owners"][0]["organization"]["name"] = name
    data["fingerprint"] = fingerprint_of(data)
    report.write_text(json.dumps(data))
    result = rollout("run", "--from-plan", str(report), db_url=db_url, plan=plan)
    assert result.returncode == 1, result.stderr
    assert "owner 1 drifted" in result.stderr and "naming rule" in result.stderr
    assert scalar(engine, "SELECT COUNT(*) FROM organizations WHERE owner_id = 1") == 0
    assert scalar(engine, "SELECT name FROM organizations WHERE owner_id = 2") == "bob"


def test_verify_checks_every_organization_the_job_created_against_the_naming_rule(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        Platform(conn).named_owners({1: "alice"})
    plan = write_plan(tmp_path, PLAN)
    rollout("run", "--wave", "everyone", db_url=db_url, plan=plan, check=True)
    with engine.begin() as conn:
        conn.execute(text("UPDATE organizations SET name = 'not--valid' WHERE owner_id = 1"))
    result = rollout("verify", "--format", "json", db_url=db_url, plan=plan)
    assert result.returncode == 1
    violations = json.loads(result.stdout)["violations"]
    assert [(v["name"], v["cause"]) for v in violations] == [("organization-named-by-rule", "job")]


def test_control_characters_and_formulas_are_neutralised_in_every_human_format(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """Usernames and labels carrying terminal escapes (clear screen, window title), a line break, a
    right-to-left override and spreadsheet formulas: the table and Markdown reports show them
    escaped, CSV cells cannot run, JSON keeps the data exact."""
    evil = {
        1: ('=HYPERLINK("http://x")', "\x1b[2J\x1b]0;pwned\x07Label"),
        2: ("line\nbreak", "@SUM(A1)"),
        3: ("right\u202eleft", "+cmd|' /C calc'!A0"),
    }
    with engine.begin() as conn:
        p = Platform(conn)
        for owner, (username, label) in evil.items():
            p.user(owner, username, display_name=label)
            p.project(f"p{owner}", owner)
    plan = write_plan(tmp_path, PLAN)
    for fmt in ("table", "markdown"):
        out = rollout(
            "plan", "--wave", "everyone", "--format", fmt, db_url=db_url, plan=plan, check=True
        ).stdout
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out, fmt
        assert "\\x1b" in out and "\\u202e" in out
        assert not any(line.startswith("break") for line in out.splitlines()), fmt
    cells = list(
        csv.reader(
            io.StringIO(
                rollout(
                    "plan", "--wave", "everyone", "--format", "csv", db_url=db_url, plan=plan, check=True
                ).stdout
            )
        )
    )
    assert not [c for row in cells for c in row if c[:1] in ("=", "+", "-", "@")]
    assert '\'=HYPERLINK("http://x")' in [c for row in cells for c in row]
    data = json.loads(
        rollout("plan", "--wave", "everyone", "--format", "json", db_url=db_url, plan=plan, check=True).stdout
    )
    assert {o["username"] for o in data["owners"]} == {u for u, _ in evil.values()}


@pytest.mark.parametrize("name", ["can\x1bary", "bad\u202ename", "with space", "-dash", "x" * 65])
def test_wave_names_take_a_safe_alphabet(tmp_path: Path, db_url: str, name: str) -> None:
    plan = write_plan(tmp_path, f"[[waves]]\nname = {json.dumps(name)}\npercent = 1\n")
    result = rollout("status", db_url=db_url, plan=plan)
    assert result.returncode == 2 and "key 'name'" in result.stderr
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr


def test_open_choices_reserved_names_blank_labels_percent_steps_and_unknown_owners(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """A username whose slug is reserved gets the next name, as if taken; a blank username and no
    display name give the organization's name as label; a percent finer than 0.01 is refused; owner
    ids a wave lists that are not users are named by the dry run and `status`."""
    with engine.begin() as conn:
        p = Platform(conn)
        p.user(1, "Admin", display_name=None)
        p.user(2, "   ", display_name=" ")
        p.project("p1", 1)
        p.project("p2", 2)
    plan = write_plan(tmp_path, '[[waves]]\nname = "everyone"\npercent = 100\nowners = [1, 424242]\n')
    report = json.loads(
        rollout("plan", "--wave", "everyone", "--format", "json", db_url=db_url, plan=plan, check=True).stdout
    )
    assert report["unknown_owners"] == [424242]
    assert (
        "424242"
        in rollout(
            "plan", "--wave", "everyone", "--format", "table", db_url=db_url, plan=plan, check=True
        ).stdout
    )
    status = json.loads(rollout("status", "--format", "json", db_url=db_url, plan=plan, check=True).stdout)
    assert status["unknown_owners"] == {"everyone": [424242]}
    rollout("run", "--wave", "everyone", db_url=db_url, plan=plan, check=True)
    with engine.connect() as conn:
        orgs = dict(conn.execute(text("SELECT owner_id, name FROM organizations")).all())
        labels = dict(conn.execute(text("SELECT owner_id, label FROM organizations")).all())
    assert orgs == {1: "admin-2", 2: "user-2"}
    assert labels == {1: "Admin", 2: "user-2"}
    fine = write_plan(tmp_path, '[[waves]]\nname = "tiny"\npercent = 0.005\n', "fine.toml")
    refused = rollout("status", db_url=db_url, plan=fine)
    assert refused.returncode == 2 and "multiple of 0.01" in refused.stderr


def test_a_pause_reason_and_an_operator_name_never_reach_a_terminal_raw(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """Who paused and why are an operator's free text: `status` and the refused run's error line
    show their control characters escaped; JSON keeps them exact."""
    with engine.begin() as conn:
        Platform(conn).named_owners({1: "alice"})
    plan = write_plan(tmp_path, PLAN)
    reason = "maintenance\x1b]0;pwned\x07 \u202eesrever"
    rollout(
        "pause", "--reason", reason, db_url=db_url, plan=plan, env={"SUDO_USER": "eve\x1b[2J"}, check=True
    )
    shown = rollout("status", "--format", "table", db_url=db_url, plan=plan, check=True).stdout
    refused = rollout("--log-format", "console", "run", "--wave", "everyone", db_url=db_url, plan=plan)
    assert refused.returncode == 4
    for out in (shown, refused.stderr):
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
        assert "maintenance\\x1b]0;pwned\\x07 \\u202eesrever" in out
    assert "PAUSED by eve\\x1b[2J" in shown
    data = json.loads(rollout("status", "--format", "json", db_url=db_url, plan=plan, check=True).stdout)
    assert (data["pause_reason"], data["paused_by"]) == (reason, "eve\x1b[2J@" + socket.gethostname())
