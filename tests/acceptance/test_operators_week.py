"""The operator's week: cron that can be watched (every invocation recorded, metrics that hold
through a soak, a Pushgateway), history that answers support (`show`, `runs`, who paused), counts
that reconcile, and the conventions of a command-line tool."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import pty
import re
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from rollout.store.dialect import as_datetime
from tests.support import REPO, Platform, errors, events, inject_failure, rollout, scalar, write_plan

PLAN = """
[rollout]
batch_size = 2

[[waves]]
name = "canary"
owners = [1]

[[waves]]
name = "everyone"
percent = 100
soak = "48h"
"""


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    return write_plan(tmp_path, PLAN)


@pytest.fixture
def platform(engine: Engine) -> Engine:
    """Owners 1..5 with a project each, shared with user 100; owner 5 also owns a billing account."""
    with engine.begin() as conn:
        p = Platform(conn)
        p.shared_owners(range(1, 6))
        p.billing(user_id=5, projects=("p5",))
    return engine


def metrics(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }


def history(db_url: str, plan: Path) -> list[dict[str, Any]]:
    result = rollout("runs", "--format", "json", db_url=db_url, plan=plan, check=True)
    runs: list[dict[str, Any]] = json.loads(result.stdout)
    return runs


# -- watching cron


def test_every_invocation_is_recorded_with_who_what_and_which_plan(
    platform: Engine, db_url: str, plan: Path
) -> None:
    """A run, an --auto with nothing to do, a refused run (paused) and a rollback each leave a row
    in the history: mode, parameters, operator, the plan's fingerprint, duration and outcome."""
    fingerprint = "sha256:" + hashlib.sha256(plan.read_bytes()).hexdigest()
    as_alice = {"ROLLOUT_OPERATOR": "alice"}
    assert rollout("run", "--auto", db_url=db_url, plan=plan, env=as_alice).returncode == 0  # the canary
    soaking = rollout("run", "--auto", db_url=db_url, plan=plan, env=as_alice)
    assert soaking.returncode == 0 and "nothing to do" in soaking.stdout
    assert (
        rollout("--operator", "bob", "pause", "--reason", "INC-1", db_url=db_url, plan=plan).returncode == 0
    )
    refused = rollout(
        "run", "--wave", "everyone", "--max-owners", "2", db_url=db_url, plan=plan, env=as_alice
    )
    assert refused.returncode == 4
    assert rollout("resume", db_url=db_url, plan=plan).returncode == 0
    assert (
        rollout("--operator", "carol", "rollback", "--owner", "1", db_url=db_url, plan=plan).returncode == 0
    )

    runs = history(db_url, plan)
    assert [(r["mode"], r["outcome"], r["operator"]) for r in runs] == [
        ("rollback", "succeeded", "carol"),
        ("wave", "refused", "alice"),
        ("auto", "nothing-to-do", "alice"),
        ("auto", "succeeded", "alice"),
    ]
    assert all(r["plan_fingerprint"] == fingerprint for r in runs)
    assert all(r["duration_s"] is not None and r["duration_s"] >= 0 for r in runs)
    assert runs[1]["parameters"]["wave"] == "everyone" and runs[1]["parameters"]["max_owners"] == 2
    assert "paused" in runs[1]["message"] and "INC-1" in runs[1]["message"]
    assert "soak" in runs[2]["message"]
    assert runs[0]["parameters"]["owner_id"] == 1
    assert runs[3]["migrated"] == 1 and runs[3]["wave"] == "canary"

    # The table: newest first, with the operator and the parameters given.
    table = rollout("runs", "--limit", "2", db_url=db_url, plan=plan, check=True).stdout.splitlines()
    assert len(table) == 4  # header, rule, two runs
    assert "carol" in table[2] and "owner_id=1" in table[2]
    assert "refused" in table[3] and "max_owners=2" in table[3]


def test_metrics_hold_through_a_soak_and_before_not_before(
    platform: Engine, db_url: str, tmp_path: Path
) -> None:
    """After the canary, an --auto during the soak is healthy (the last healthy timestamp moves,
    the last success does not) and the metrics say which wave is next and when it may start;
    `rollout_owners` carries states only."""
    plan = write_plan(tmp_path, PLAN)
    prom = tmp_path / "rollout.prom"
    args = ("run", "--auto", "--metrics-file", str(prom))
    assert rollout(*args, db_url=db_url, plan=plan).returncode == 0
    after_canary = metrics(prom)
    success = after_canary[("rollout_last_success_timestamp_seconds", ())]
    completed = as_datetime(scalar(platform, "SELECT completed_at FROM rollout_waves WHERE wave = 'canary'"))
    assert completed is not None

    soaking = rollout(*args, db_url=db_url, plan=plan)
    assert soaking.returncode == 0 and "nothing to do" in soaking.stdout
    m = metrics(prom)
    assert m[("rollout_last_success_timestamp_seconds", ())] == success
    assert m[("rollout_last_healthy_timestamp_seconds", ())] > success
    assert m[("rollout_last_attempt_timestamp_seconds", ())] > success
    assert m[("rollout_current_wave", (("wave", "everyone"),))] == 1
    soak_until = m[("rollout_next_wave_soak_until_timestamp_seconds", (("wave", "everyone"),))]
    assert soak_until == pytest.approx((completed + timedelta(hours=48)).timestamp(), abs=1)
    assert {labels[0][1] for name, labels in m if name == "rollout_owners"} == {
        "migrated",
        "failed",
        "blocked",
        "rolled_back",
        "deferred",
        "remaining",
    }
    assert m[("rollout_owners", (("state", "remaining"), ("wave", "everyone")))] == 4
    assert m[("rollout_wave_selected_owners", (("wave", "everyone"),))] == 5
    assert m[("rollout_wave_complete", (("wave", "canary"),))] == 1
    assert m[("rollout_estimated_seconds_left", (("wave", "everyone"),))] >= 0


def test_metrics_say_when_a_wave_waiting_for_its_date_may_start(
    platform: Engine, db_url: str, tmp_path: Path
) -> None:
    plan = write_plan(
        tmp_path, '[[waves]]\nname = "canary"\nowners = [1]\nnot_before = 2099-01-01T00:00:00Z\n'
    )
    prom = tmp_path / "rollout.prom"
    waiting = rollout("run", "--auto", "--metrics-file", str(prom), db_url=db_url, plan=plan)
    assert waiting.returncode == 0 and "does not start before 2099-01-01" in waiting.stdout
    m = metrics(prom)
    assert m[("rollout_current_wave", (("wave", "canary"),))] == 1
    assert (
        m[("rollout_next_wave_not_before_timestamp_seconds", (("wave", "canary"),))]
        == datetime.fromisoformat("2099-01-01T00:00:00+00:00").timestamp()
    )
    assert m[("rollout_last_healthy_timestamp_seconds", ())] > 1.7e9
    assert ("rollout_last_success_timestamp_seconds", ()) not in m or (
        m[("rollout_last_success_timestamp_seconds", ())] == 0
    )


class _Gateway(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, str]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.received.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    do_POST = do_DELETE = do_PUT

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """A stand-in Pushgateway on a local port that keeps what it is sent."""
    received: list[tuple[str, str, str]] = []
    handler = type("Gateway", (_Gateway,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


def test_metrics_are_pushed_to_a_pushgateway_grouped_by_job_and_wave(
    platform: Engine, db_url: str, plan: Path, gateway: tuple[str, list[tuple[str, str, str]]]
) -> None:
    """The push goes to the group of the wave the rollout is at; the groups of the plan's other
    waves are deleted, so that no stale copy lingers on the Pushgateway."""
    url, received = gateway
    result = rollout("run", "--auto", "--metrics-push", url, db_url=db_url, plan=plan)
    assert result.returncode == 0, result.stderr
    method, path, body = received[0]
    assert method == "PUT" and path == "/metrics/job/rollout/wave/everyone"
    assert sorted((m, p) for m, p, _ in received[1:]) == [
        ("DELETE", "/metrics/job/rollout/wave/canary"),
        ("DELETE", "/metrics/job/rollout/wave/complete"),
    ]
    pushed = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    assert pushed[("rollout_owners", (("state", "migrated"), ("wave", "canary")))] == 1
    assert pushed[("rollout_last_success_timestamp_seconds", ())] > 1.7e9


def test_a_pushgateway_that_cannot_be_reached_is_a_warning_not_a_failure(
    platform: Engine, db_url: str, plan: Path
) -> None:
    result = rollout("run", "--auto", "--metrics-push", "http://127.0.0.1:9", db_url=db_url, plan=plan)
    assert result.returncode == 0, result.stderr
    (warning,) = [e for e in events(result.stderr) if e["event"] == "metrics.unwritten"]
    assert warning["level"] == "warning"
    assert scalar(platform, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'") == 1


def test_a_pushgateway_address_that_cannot_be_used_is_exit_2_before_any_work(
    platform: Engine, db_url: str, plan: Path
) -> None:
    for address in ("http://gateway :9091", "ftp://gateway:9091", "http://gateway:port"):
        result = rollout("run", "--auto", "--metrics-push", address, db_url=db_url, plan=plan)
        assert result.returncode == 2, (address, result.stderr)
        (line,) = errors(result.stderr)
        assert "--metrics-push" in line and "internal error" not in line
    assert scalar(platform, "SELECT COUNT(*) FROM rollout_runs") == 0


def test_a_sweep_refused_while_paused_writes_its_metrics_and_a_sweep_dates_completion(
    platform: Engine, db_url: str, plan: Path, tmp_path: Path
) -> None:
    prom = tmp_path / "sweep.prom"
    assert rollout("pause", "--reason", "freeze", db_url=db_url, plan=plan).returncode == 0
    refused = rollout("sweep", "--metrics-file", str(prom), db_url=db_url, plan=plan)
    assert refused.returncode == 4
    assert metrics(prom)[("rollout_paused", ())] == 1
    assert rollout("resume", db_url=db_url, plan=plan).returncode == 0
    # The canary's owner migrated, then a late project of theirs: the canary is open again until a
    # sweep moves it; the sweep that does so dates the completion (no earlier date existed: removed).
    assert rollout("run", "--wave", "canary", db_url=db_url, plan=plan).returncode == 0
    with platform.begin() as conn:
        Platform(conn).project("p1-late", 1)
        conn.exec_driver_sql("DELETE FROM rollout_waves")
    swept = rollout("sweep", "--wave", "canary", db_url=db_url, plan=plan)
    assert swept.returncode == 0, swept.stderr
    assert scalar(platform, "SELECT organization_id FROM projects WHERE id = 'p1-late'") is not None
    completed = scalar(platform, "SELECT completed_at FROM rollout_waves WHERE wave = 'canary'")
    started = scalar(
        platform, "SELECT started_at FROM rollout_runs WHERE mode = 'sweep' AND outcome = 'succeeded'"
    )
    assert completed is not None and as_datetime(completed) >= as_datetime(started)


def test_the_packaged_plan_is_refused_where_nobody_would_see_it(
    platform: Engine, db_url: str, tmp_path: Path
) -> None:
    """Without --plan, ROLLOUT_PLAN or jobs/waves.toml here: `run --auto`, and `run`, `sweep` and
    `rollback --wave` off a terminal, exit 2 with one line and write nothing; `status` warns."""
    no_plan = {"ROLLOUT_PLAN": ""}
    before = scalar(platform, "SELECT COUNT(*) FROM rollout_runs")
    for args in (
        ("run", "--auto"),
        ("run", "--wave", "everyone"),
        ("sweep",),
        ("rollback", "--wave", "everyone", "--yes"),
    ):
        result = rollout(*args, db_url=db_url, cwd=tmp_path, env=no_plan)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and "no plan named" in json.loads(lines[0])["error"], lines
    assert scalar(platform, "SELECT COUNT(*) FROM rollout_runs") == before
    assert scalar(platform, "SELECT COUNT(*) FROM projects WHERE organization_id IS NOT NULL") == 0
    status = rollout("status", db_url=db_url, cwd=tmp_path, env=no_plan)
    assert status.returncode == 0
    warned = [e for e in events(status.stderr) if e["event"] == "plan.packaged"]
    assert warned and warned[0]["level"] == "warning"


def test_off_a_terminal_every_stderr_line_is_a_json_event(engine: Engine, db_url: str, plan: Path) -> None:
    """A failed owner and the final error are events (with the exit code) among the log events."""
    with engine.begin() as conn:
        p = Platform(conn)
        for owner in (1, 2):
            p.user(owner)
            p.project(f"p{owner}", owner)
    inject_failure(engine, "NEW.id = 'p2'")
    failed = rollout("run", "--wave", "everyone", db_url=db_url, plan=plan)
    assert failed.returncode == 1
    lines = failed.stderr.splitlines()
    assert lines and all(line.startswith("{") for line in lines), lines
    owner_failed = [e for e in events(failed.stderr) if e.get("owner_id") == 2 and e["level"] == "error"]
    assert owner_failed and "injected failure" in json.dumps(owner_failed)
    bad = rollout("run", "--wave", "nope", db_url=db_url, plan=plan)
    (error,) = [json.loads(line) for line in bad.stderr.splitlines()]
    assert error["event"] == "rollout.error" and error["exit_code"] == 2 and "nope" in error["error"]


# -- history that answers support


def test_show_tells_an_owners_whole_story(platform: Engine, db_url: str, plan: Path) -> None:
    """Migrated (organization created, projects with their digests, members and permissions added,
    billing moved), failed before, rolled back and migrated again: `show --owner` says all of it."""
    inject_failure(platform, "NEW.id = 'p5'")
    assert rollout("run", "--owner", "5", db_url=db_url, plan=plan).returncode == 1
    with platform.begin() as conn:
        conn.exec_driver_sql(
            "DROP TRIGGER boom ON projects" if conn.dialect.name == "postgresql" else "DROP TRIGGER boom"
        )
    failed = json.loads(
        rollout("show", "--owner", "5", "--format", "json", db_url=db_url, plan=plan, check=True).stdout
    )
    assert failed["state"] == "failed" and failed["failed_attempts"] == 1
    assert "injected failure" in failed["last_error"] and failed["legacy_projects_now"] == ["p5"]

    assert rollout("run", "--owner", "5", db_url=db_url, plan=plan).returncode == 0
    assert (
        rollout("--operator", "carol", "rollback", "--owner", "5", db_url=db_url, plan=plan).returncode == 0
    )
    assert rollout("run", "--owner", "5", db_url=db_url, plan=plan).returncode == 0

    story = json.loads(
        rollout("show", "--owner", "5", "--format", "json", db_url=db_url, plan=plan, check=True).stdout
    )
    organization_id = scalar(platform, "SELECT organization_id FROM projects WHERE id = 'p5'")
    assert story["state"] == "migrated" and story["username"] == "user5"
    assert story["organization"] == {
        "id": organization_id,
        "name": "user5",
        "created_by_job": True,
        "name_now": "user5",
        "exists": True,
    }
    (project,) = story["projects"]
    assert project["project_id"] == "p5" and project["access_unchanged"] is True
    assert re.fullmatch(r"[0-9a-f]{64}", project["access_digest"])
    assert {m["user_id"] for m in story["members_added"]} == {5, 100}
    assert {(p["user_id"], p["permission"]) for p in story["permissions_added"]} == {
        (5, "billing"),
        (5, "members"),
        (5, "plans"),
        (5, "projects:create"),
    }
    billing_id = scalar(
        platform, "SELECT id FROM billing_accounts WHERE organization_id = :o", o=organization_id
    )
    assert story["billing_account"]["id"] == billing_id
    (rolled,) = story["rollbacks"]
    assert rolled["operator"] == "carol" and rolled["projects_moved"] == 1 and rolled["organization_created"]
    modes = [r["mode"] for r in story["runs"]]
    assert modes.count("rollback") == 1 and modes.count("owner") == 2

    text = rollout("show", "--owner", "5", db_url=db_url, plan=plan, check=True).stdout
    for expected in ("state: migrated", "created by the job", "Projects moved", "Rollbacks", "carol", "p5"):
        assert expected in text
    unknown = rollout("show", "--owner", "999", db_url=db_url, plan=plan)
    assert unknown.returncode == 2 and "unknown owner 999" in unknown.stderr


def test_status_says_who_paused_when_and_why_and_pause_keeps_the_reason(
    platform: Engine, db_url: str, plan: Path
) -> None:
    assert (
        rollout("--operator", "bob", "pause", "--reason", "INC-42", db_url=db_url, plan=plan).returncode == 0
    )
    assert rollout("--operator", "dave", "pause", db_url=db_url, plan=plan).returncode == 0
    status = json.loads(rollout("status", "--format", "json", db_url=db_url, plan=plan, check=True).stdout)
    assert status["paused"] is True and status["pause_reason"] == "INC-42"
    assert status["paused_by"].startswith("dave") and status["paused_at"]
    # SUDO_USER names the operator when --operator is not given.
    assert rollout("resume", db_url=db_url, plan=plan, env={"SUDO_USER": "erin"}).returncode == 0
    assert (
        rollout("pause", "--reason", "again", db_url=db_url, plan=plan, env={"SUDO_USER": "erin"}).returncode
        == 0
    )
    text = rollout("status", db_url=db_url, plan=plan, check=True).stdout
    assert "erin" in text and "again" in text


# -- counts that reconcile


def test_blocked_owners_do_not_eat_max_owners(engine: Engine, db_url: str, plan: Path) -> None:
    """Owners 1-3 are blocked (deleted users) and come first: `--max-owners 2` still migrates two."""
    with engine.begin() as conn:
        p = Platform(conn)
        for owner in range(1, 7):
            p.user(owner, deleted=owner <= 3)
            p.project(f"p{owner}", owner)
    result = rollout("run", "--wave", "everyone", "--max-owners", "2", db_url=db_url, plan=plan)
    assert result.returncode == 0, result.stderr
    assert "2 migrated, 3 blocked" in result.stdout
    assert scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'") == 2


def test_a_wave_completed_by_run_owner_is_dated_by_that_run(
    platform: Engine, db_url: str, plan: Path
) -> None:
    """The canary's only owner is migrated with `run --owner`: the wave is dated complete at once,
    and an --auto afterwards counts the soak from then."""
    assert rollout("run", "--owner", "1", db_url=db_url, plan=plan).returncode == 0
    completed = as_datetime(scalar(platform, "SELECT completed_at FROM rollout_waves WHERE wave = 'canary'"))
    finished = as_datetime(scalar(platform, "SELECT finished_at FROM rollout_runs WHERE mode = 'owner'"))
    assert completed is not None and finished is not None
    assert abs((finished - completed).total_seconds()) < 5
    result = rollout("run", "--auto", db_url=db_url, plan=plan)
    assert result.returncode == 0 and "nothing to do" in result.stdout and "soak" in result.stdout


def test_from_plan_reports_owners_migrated_meanwhile(
    platform: Engine, db_url: str, plan: Path, tmp_path: Path
) -> None:
    report = tmp_path / "everyone.json"
    rollout(
        "plan",
        "--wave",
        "everyone",
        "--format",
        "json",
        "--output",
        str(report),
        db_url=db_url,
        plan=plan,
        check=True,
    )
    assert rollout("run", "--wave", "canary", db_url=db_url, plan=plan).returncode == 0
    result = rollout("run", "--from-plan", str(report), db_url=db_url, plan=plan)
    assert result.returncode == 0, result.stderr
    assert "4 migrated" in result.stdout
    said = [e for e in events(result.stderr) if "migrated already" in e.get("message", "")]
    assert said and said[0]["message"].lstrip().startswith("1 owner of the report migrated already")


def test_verify_and_status_count_a_waves_migrated_owners_alike(
    platform: Engine, db_url: str, plan: Path
) -> None:
    assert rollout("run", "--wave", "canary", db_url=db_url, plan=plan).returncode == 0
    assert rollout("run", "--owner", "3", db_url=db_url, plan=plan).returncode == 0
    status = json.loads(rollout("status", "--format", "json", db_url=db_url, plan=plan, check=True).stdout)
    waves = {w["wave"]: w for w in status["waves"]}
    for wave in ("canary", "everyone"):
        verified = json.loads(
            rollout("verify", "--wave", wave, "--format", "json", db_url=db_url, plan=plan, check=True).stdout
        )
        assert verified["owners_checked"] == waves[wave]["migrated"], wave
    assert waves["everyone"]["migrated"] == 2


# -- conventions of a command-line tool


def test_version_help_environment_and_json_summary(platform: Engine, db_url: str, plan: Path) -> None:
    from rollout import __version__

    version = rollout("--version", db_url=db_url)
    assert version.returncode == 0 and version.stdout.strip() == f"rollout {__version__}"
    helped = rollout("--help", db_url=db_url)
    assert "Exit codes:" in helped.stdout and "75" in helped.stdout
    bare = subprocess.run(
        [sys.executable, "-m", "rollout"], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert bare.returncode == 2 and "Commands:" in bare.stdout
    # Every option from the environment, named after its flag; the command line wins.
    env = {"ROLLOUT_RUN_FORMAT": "json", "ROLLOUT_RUN_BATCH_SIZE": "1"}
    result = rollout("run", "--wave", "everyone", db_url=db_url, plan=plan, env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["outcome"] == "succeeded" and summary["migrated"] == 5 and summary["batches"] == 5
    line = rollout("run", "--owner", "2", "--format", "text", db_url=db_url, plan=plan, env=env).stdout
    assert line.strip().endswith("in 1 batch") and "0 migrated" in line


def test_shell_completion() -> None:
    env = {**os.environ, "_ROLLOUT_COMPLETE": "bash_complete", "COMP_WORDS": "rollout ru", "COMP_CWORD": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "rollout"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0
    assert result.stdout.split() == ["plain,run", "plain,runs"]


def test_the_readme_table_of_options_is_the_clis() -> None:
    """The README's options table is generated from the command (`make readme`)."""
    from rollout.cli.reference import rewrite

    readme = (REPO / "README.md").read_text()
    assert rewrite(readme) == readme, "README.md's options table is stale: run `make readme`"
    assert "`ROLLOUT_RUN_BATCH_SIZE`" in readme and "`ROLLOUT_STATUS_FORMAT`" in readme


def _on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Runs the command with stdin and stderr on a pseudo-terminal; what the terminal showed."""
    return _terminal(args, env)[1]


def _terminal(args: list[str], env: dict[str, str], typed: str = "") -> tuple[int, str]:
    """The command with stdin and stderr on a pseudo-terminal, `typed` waiting on its input: its
    exit code and what the terminal showed."""
    master, slave = pty.openpty()
    if typed:
        os.write(master, typed.encode())
    process = subprocess.Popen(
        [sys.executable, "-m", "rollout", *args],
        stdin=slave,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        cwd=REPO,
        env={**os.environ, **env},
    )
    os.close(slave)
    shown = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            process.kill()
            raise AssertionError("no output on the terminal for 60 s")
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other side closed: the process is gone
            break
        if not chunk:
            break
        shown += chunk
    code = process.wait(timeout=30)
    os.close(master)
    return code, shown.decode(errors="replace")


COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def test_on_a_terminal_no_color_and_log_lines_apart_from_the_bar(
    platform: Engine, db_url: str, plan: Path
) -> None:
    """On a terminal the logs are coloured unless NO_COLOR is set; every log line starts on a line
    of its own, never after the progress bar."""
    args = [
        "--database-url",
        db_url,
        "--plan",
        str(plan),
        "-v",
        "run",
        "--wave",
        "everyone",
        "--batch-size",
        "1",
    ]
    plain = _on_a_terminal(args, {"NO_COLOR": "1", "TERM": "xterm"})
    assert "batch.committed" in plain and not COLOUR.search(plain)
    for line in plain.replace("\r\n", "\n").split("\n"):
        if "batch.committed" in line:
            # What the terminal shows of that line: the part after the last carriage return.
            shown = line.split("\r")[-1].replace("\x1b[K", "")
            assert re.match(r"\d{4}-\d\d-\d\dT", shown), repr(line)
    assert rollout("rollback", "--wave", "everyone", "--yes", db_url=db_url, plan=plan).returncode == 0
    assert rollout("run", "--owner", "1", db_url=db_url, plan=plan).returncode == 0
    coloured = _on_a_terminal(
        ["--database-url", db_url, "--plan", str(plan), "run", "--owner", "2"], {"TERM": "xterm"}
    )
    assert "run.finished" in coloured or "batch.committed" in coloured
    assert COLOUR.search(coloured)


def test_status_estimates_the_time_left_at_the_newest_runs_rate(
    platform: Engine, db_url: str, plan: Path
) -> None:
    """After a partial run, each incomplete wave's remaining and deferred owners at the rate of the
    newest run's batches, in the table and in JSON; nothing for a complete wave."""
    assert (
        rollout("status", "--format", "json", db_url=db_url, plan=plan, check=True).stdout.count(
            '"estimated_seconds_left": null'
        )
        == 2
    )  # no run yet, no rate
    rollout("run", "--wave", "everyone", "--max-owners", "2", db_url=db_url, plan=plan, check=True)
    owners, seconds = (
        scalar(platform, f"SELECT SUM({column}) FROM rollout_batches")
        for column in ("size", "duration_seconds + throttled_seconds")
    )
    data = json.loads(rollout("status", "--format", "json", db_url=db_url, plan=plan, check=True).stdout)
    waves = {w["wave"]: w for w in data["waves"]}
    assert waves["everyone"]["remaining"] == 3
    assert waves["everyone"]["estimated_seconds_left"] == pytest.approx(3 / (owners / seconds), abs=0.1)
    assert waves["canary"]["estimated_seconds_left"] == 0
    shown = rollout("status", "--format", "table", db_url=db_url, plan=plan, check=True).stdout
    header, _, canary, everyone = shown.splitlines()[2:6]
    assert "time left" in header
    left = everyone[header.index("time left") : header.index("complete")].strip()
    assert re.fullmatch(r"<1s|\d+s|\d+m\d\ds", left), everyone
    assert canary[header.index("time left") : header.index("complete")].strip() == ""


def test_a_waves_rollback_shows_what_it_undoes_and_asks_first(
    platform: Engine, db_url: str, plan: Path
) -> None:
    """On a terminal the totals of the dry run come first and `n` leaves everything as it was; off a
    terminal, without --yes, it is one line and exit 2 before anything is undone."""
    rollout("run", "--wave", "everyone", db_url=db_url, plan=plan, check=True)
    moved = "SELECT COUNT(*) FROM projects WHERE organization_id IS NOT NULL"
    unasked = rollout("rollback", "--wave", "everyone", db_url=db_url, plan=plan)
    assert unasked.returncode == 2
    assert errors(unasked.stderr) == [
        "rolling back wave everyone undoes every owner it counts: add --yes, or --dry-run first"
    ]
    assert scalar(platform, moved) == 5
    args = ["--database-url", db_url, "--plan", str(plan), "rollback", "--wave", "everyone"]
    code, shown = _terminal(args, {"TERM": "dumb"}, typed="n\n")
    assert code == 0, shown
    assert re.search(
        r"Would roll back 5 owners: 5 organizations deleted, 5 projects and 1 billing account returned,"
        r" \d+ members and 20 permissions removed\. Nothing was written\.",
        shown,
    ), shown
    assert "Roll back these 5 owners of wave everyone? [y/N]" in shown
    assert "nothing was rolled back" in shown
    assert scalar(platform, moved) == 5
    code, shown = _terminal(args, {"TERM": "dumb"}, typed="y\n")
    assert code == 0, shown
    assert scalar(platform, moved) == 0
    assert scalar(platform, "SELECT COUNT(*) FROM rollout_rollbacks") == 5
