"""Operating the rollout with real processes: signals, pause, error budget, the --auto
lock, crashes, metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from rollout.store.lock import auto_lock
from tests.support import (
    REPO,
    half_migrated_owners,
    inject_failure,
    many_owners,
    rollout,
    scalar,
    watching,
    write_plan,
)

PLAN = '[rollout]\nbatch_size = 1\nmax_failures = 3\n\n[[waves]]\nname = "everyone"\npercent = 100\n'
OWNERS = 1500


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    return write_plan(tmp_path, PLAN)


def start(db_url: str, plan: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rollout",
            "--database-url",
            db_url,
            "--plan",
            str(plan),
            "--log-format",
            "json",
            "run",
            *args,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 30) -> tuple[str, str]:
    """The process's output once it ends; if it does not end in time, its stack and output."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        _, err = process.communicate()
        raise AssertionError(
            f"still running {timeout}s after the signal; stderr tail: {err[-3000:]}"
        ) from None


def wait_for_progress(engine: Engine, process: subprocess.Popen[str], at_least: int = 3) -> None:
    deadline = time.monotonic() + 60
    with watching(engine) as watcher:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"the run ended early: {process.communicate()}")
            if scalar(watcher, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'") >= at_least:
                return
            time.sleep(0.05)
    raise AssertionError("no progress within a minute")


def test_sigterm_finishes_the_batch_records_interrupted_and_exits_0(
    engine: Engine, db_url: str, plan: Path
) -> None:
    """SIGTERM mid-wave: exit 0 within seconds, the run recorded as interrupted, every owner wholly
    migrated or wholly untouched; the next run completes the wave."""
    many_owners(engine, OWNERS)
    process = start(db_url, plan, "--wave", "everyone")
    wait_for_progress(engine, process)
    process.send_signal(signal.SIGTERM)
    out, err = finish(process)
    assert process.returncode == 0, err
    assert "interrupted" in out
    assert scalar(engine, "SELECT outcome FROM rollout_runs") == "interrupted"
    migrated = scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'")
    assert 0 < migrated < OWNERS
    assert scalar(engine, "SELECT COUNT(*) FROM projects WHERE organization_id IS NOT NULL") == migrated
    assert half_migrated_owners(engine) == []
    assert (
        rollout("run", "--wave", "everyone", "--batch-size", "500", db_url=db_url, plan=plan).returncode == 0
    )
    assert scalar(engine, "SELECT COUNT(*) FROM projects WHERE organization_id IS NULL") == 0


def test_pause_stops_a_running_worker_and_refuses_new_runs_until_resume(
    engine: Engine, db_url: str, plan: Path
) -> None:
    """`rollout pause` reaches a running worker: it stops after its batch with exit 4; a new run is
    refused with exit 4; after `rollout resume` a run completes the wave."""
    many_owners(engine, OWNERS)
    process = start(db_url, plan, "--wave", "everyone")
    wait_for_progress(engine, process)
    assert rollout("pause", "--reason", "incident 42", db_url=db_url, plan=plan).returncode == 0
    _, err = finish(process, 60)
    assert process.returncode == 4, err
    assert "paused" in err
    refused = rollout("run", "--wave", "everyone", db_url=db_url, plan=plan)
    assert refused.returncode == 4 and "incident 42" in refused.stderr
    status = json.loads(rollout("status", "--format", "json", db_url=db_url, plan=plan, check=True).stdout)
    assert status["paused"] is True and status["pause_reason"] == "incident 42"
    assert rollout("resume", db_url=db_url, plan=plan).returncode == 0
    done = rollout("run", "--wave", "everyone", "--batch-size", "500", db_url=db_url, plan=plan)
    assert done.returncode == 0, done.stderr
    assert half_migrated_owners(engine) == []
    assert scalar(engine, "SELECT COUNT(*) FROM projects WHERE organization_id IS NULL") == 0


def test_the_error_budget_halts_a_run_with_exit_4(engine: Engine, db_url: str, plan: Path) -> None:
    """Owners made to fail by a trigger: once max_failures (3) failed, the run halts with
    exit 4 and says why; the failed owners are recorded."""
    many_owners(engine, 40)
    inject_failure(engine, "NEW.owner_id % 5 = 0")
    result = rollout("run", "--wave", "everyone", db_url=db_url, plan=plan)
    assert result.returncode == 4, result.stderr
    assert "error budget" in result.stderr
    assert scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'failed'") == 3
    assert scalar(engine, "SELECT outcome FROM rollout_runs") == "halted"
    assert scalar(engine, "SELECT COUNT(*) FROM projects WHERE organization_id IS NULL") > 4


def test_a_second_auto_run_exits_3_while_the_lock_is_held(engine: Engine, db_url: str, plan: Path) -> None:
    """While another process holds the --auto lock, `run --auto` exits 3 and writes nothing; once it is
    released, `run --auto` migrates the first wave."""
    many_owners(engine, 20)
    with auto_lock(engine, "another-run"):
        held = rollout("run", "--auto", db_url=db_url, plan=plan)
    assert held.returncode == 3, held.stderr
    assert "run another-run" in held.stderr
    # Refused, and recorded as such in the run history; no owner touched.
    assert scalar(engine, "SELECT outcome FROM rollout_runs") == "refused"
    assert scalar(engine, "SELECT COUNT(*) FROM rollout_owners") == 0
    free = rollout("run", "--auto", db_url=db_url, plan=plan)
    assert free.returncode == 0, free.stderr
    assert "20 migrated" in free.stdout
    again = rollout("run", "--auto", db_url=db_url, plan=plan)
    assert again.returncode == 0 and "nothing to do: every wave is complete" in again.stdout


def test_an_auto_run_that_loses_its_lease_stops_before_its_next_batch_with_exit_3(
    engine: Engine, db_url: str, plan: Path
) -> None:
    """The lease is taken over while `run --auto` works (it expired, another run took it): the run
    notices when it renews the lease after its batch, stops, records why, and exits 3."""
    many_owners(engine, OWNERS)
    process = start(db_url, plan, "--auto")
    wait_for_progress(engine, process)
    with engine.begin() as conn:
        conn.execute(text("UPDATE rollout_leases SET holder = 'a-later-run'"))
    out, err = finish(process)
    assert process.returncode == 3, err
    assert "lost the run --auto lease" in out
    assert scalar(engine, "SELECT outcome FROM rollout_runs") == "interrupted"
    assert "lease" in scalar(engine, "SELECT message FROM rollout_runs")
    assert half_migrated_owners(engine) == []


def test_the_auto_lease_survives_its_connections_being_killed(
    engine: Engine, db_url: str, plan: Path
) -> None:
    """Every connection of a running `run --auto` is terminated (a pooler, an idle-session timeout):
    the run reconnects and goes on, and a second `run --auto` meanwhile still exits 3."""
    if engine.dialect.name != "postgresql":
        pytest.skip("terminating sessions is PostgreSQL's")
    many_owners(engine, OWNERS)
    process = start(db_url, plan, "--auto")
    wait_for_progress(engine, process)
    with engine.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'rollout' AND pid <> pg_backend_pid()"
            )
        )
    second = rollout("run", "--auto", db_url=db_url, plan=plan)
    assert second.returncode == 3, second.stderr
    process.send_signal(signal.SIGTERM)
    _, err = finish(process)
    assert process.returncode == 0, err
    with engine.connect() as conn:
        outcomes = conn.execute(
            text("SELECT outcome FROM rollout_runs WHERE mode = 'auto' ORDER BY started_at")
        )
        # The first run was interrupted by the signal; the second, refused (lease held), is recorded too.
        assert [r[0] for r in outcomes] == ["interrupted", "refused"]
    assert half_migrated_owners(engine) == []


def test_sigkill_leaves_a_stale_heartbeat_that_the_next_run_marks_abandoned(
    engine: Engine, db_url: str, plan: Path
) -> None:
    """A run killed with SIGKILL never finishes its record; when its heartbeat is stale the next run
    marks it abandoned, is not blocked by it, and completes the wave with no owner half-migrated."""
    many_owners(engine, OWNERS)
    process = start(db_url, plan, "--wave", "everyone")
    wait_for_progress(engine, process)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    assert scalar(engine, "SELECT COUNT(*) FROM rollout_runs WHERE finished_at IS NULL") == 1
    assert half_migrated_owners(engine) == []
    with engine.begin() as conn:  # the dead run's heartbeat ages past STALE_AFTER
        conn.execute(
            text("UPDATE rollout_runs SET heartbeat_at = :t"), {"t": datetime(2000, 1, 1, tzinfo=UTC)}
        )
    result = rollout("run", "--wave", "everyone", "--batch-size", "500", db_url=db_url, plan=plan)
    assert result.returncode == 0, result.stderr
    with engine.connect() as conn:
        outcomes = sorted(r[0] for r in conn.execute(text("SELECT outcome FROM rollout_runs")))
    assert outcomes == ["abandoned", "succeeded"]
    assert scalar(engine, "SELECT COUNT(*) FROM projects WHERE organization_id IS NULL") == 0


def test_the_metrics_file_parses_and_carries_the_counts(
    engine: Engine, db_url: str, plan: Path, tmp_path: Path
) -> None:
    """--metrics-file writes a Prometheus textfile that prometheus_client parses: owners by wave and
    state, the run's owners, duration, batches and the last success."""
    many_owners(engine, 12)
    metrics = tmp_path / "rollout.prom"
    result = rollout("run", "--wave", "everyone", "--metrics-file", str(metrics), db_url=db_url, plan=plan)
    assert result.returncode == 0, result.stderr
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.read_text())
        for s in family.samples
    }
    assert samples[("rollout_owners", (("state", "migrated"), ("wave", "everyone")))] == 12
    assert samples[("rollout_owners", (("state", "remaining"), ("wave", "everyone")))] == 0
    assert samples[("rollout_run_owners", (("outcome", "migrated"),))] == 12
    assert samples[("rollout_run_batches", ())] == 12
    assert samples[("rollout_wave_complete", (("wave", "everyone"),))] == 1
    assert samples[("rollout_last_success_timestamp_seconds", ())] > 1.7e9
    assert ("rollout_run_duration_seconds", ()) in samples


def test_max_owners_and_time_budget_stop_between_batches_with_exit_0(
    engine: Engine, db_url: str, plan: Path
) -> None:
    """--max-owners stops after that many owners; a spent --time-budget stops after the batch under way;
    both exit 0, say why, and leave the rest for the next run."""
    many_owners(engine, 30)
    result = rollout("run", "--wave", "everyone", "--max-owners", "7", db_url=db_url, plan=plan)
    assert result.returncode == 0, result.stderr
    assert "7 migrated" in result.stdout
    result = rollout("run", "--wave", "everyone", "--time-budget", "0s", db_url=db_url, plan=plan)
    assert result.returncode == 0, result.stderr
    assert "1 migrated" in result.stdout and "time budget reached" in result.stdout
    assert scalar(engine, "SELECT COUNT(*) FROM projects WHERE organization_id IS NULL") == 22
    assert scalar(engine, "SELECT outcome FROM rollout_runs ORDER BY started_at DESC LIMIT 1") == "succeeded"


def test_a_second_signal_aborts_the_batch_under_way(engine: Engine, db_url: str, plan: Path) -> None:
    """Two SIGTERMs: the batch under way rolls back, the run is recorded interrupted, the process ends
    promptly, and no owner is half-migrated."""
    many_owners(engine, OWNERS)
    process = start(db_url, plan, "--wave", "everyone")
    wait_for_progress(engine, process)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)
    _, err = finish(process)
    assert process.returncode == 0, err
    assert scalar(engine, "SELECT outcome FROM rollout_runs") == "interrupted"
    assert half_migrated_owners(engine) == []
    migrated = scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'")
    assert scalar(engine, "SELECT COUNT(*) FROM projects WHERE organization_id IS NOT NULL") == migrated


def test_a_systematic_fault_halts_inside_the_batch_at_max_failures(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """Every owner fails, all in one batch of 40: the run halts as soon as max_failures (3) owners
    failed instead of failing the whole batch; the other owners are untouched and not recorded."""
    plan = tmp_path / "one-batch.toml"
    plan.write_text(
        '[rollout]\nbatch_size = 40\nmax_failures = 3\n\n[[waves]]\nname = "everyone"\npercent = 100\n'
    )
    many_owners(engine, 40)
    inject_failure(engine, "NEW.owner_id > 0")
    result = rollout("run", "--wave", "everyone", db_url=db_url, plan=plan)
    assert result.returncode == 4, result.stderr
    assert scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'failed'") == 3
    assert scalar(engine, "SELECT COUNT(*) FROM rollout_owners") == 3
    assert scalar(engine, "SELECT COUNT(*) FROM organizations") == 0


def test_a_paused_auto_run_exits_4_and_still_writes_its_metrics(
    engine: Engine, db_url: str, plan: Path, tmp_path: Path
) -> None:
    """While paused, `run --auto` is refused with exit 4 (not "nothing to do"), and the metrics file
    says the rollout is paused."""
    many_owners(engine, 5)
    assert rollout("pause", "--reason", "freeze", db_url=db_url, plan=plan).returncode == 0
    metrics = tmp_path / "rollout.prom"
    result = rollout("run", "--auto", "--metrics-file", str(metrics), db_url=db_url, plan=plan)
    assert result.returncode == 4 and "freeze" in result.stderr
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(metrics.read_text())
        for s in family.samples
    }
    assert samples["rollout_paused"] == 1


def test_a_late_project_that_is_blocked_leaves_its_wave_complete(
    engine: Engine, db_url: str, plan: Path
) -> None:
    """A migrated owner deleted since, with a new legacy project: the project is blocked, counted as
    blocked, and the wave stays complete (nothing left but blocked owners)."""
    many_owners(engine, 3)
    assert rollout("run", "--wave", "everyone", db_url=db_url, plan=plan).returncode == 0
    with engine.begin() as conn:
        conn.execute(text("UPDATE users SET deleted_at = created_at WHERE id = 2"))
        conn.execute(
            text(
                "INSERT INTO projects (id, title, region, owner_id, status, created_at) "
                "SELECT 'late', 'Late', 'eu-1', 2, 'active', created_at FROM users WHERE id = 2"
            )
        )
    assert rollout("run", "--wave", "everyone", db_url=db_url, plan=plan).returncode == 0
    status = json.loads(rollout("status", "--format", "json", db_url=db_url, plan=plan, check=True).stdout)
    wave = status["waves"][0]
    assert (wave["selected"], wave["migrated"], wave["blocked"], wave["remaining"], wave["complete"]) == (
        3,
        3,
        1,
        0,
        True,
    )


def owner_statistics(engine: Engine) -> int:
    """Rows of planner statistics on `rollout_owners` (PostgreSQL: on its `state` column)."""
    if engine.dialect.name == "postgresql":
        return scalar(
            engine, "SELECT COUNT(*) FROM pg_stats WHERE tablename = 'rollout_owners' AND attname = 'state'"
        )
    if not scalar(engine, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"):
        return 0
    return scalar(engine, "SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'rollout_owners'")


def test_a_run_leaves_statistics_on_the_owners_it_recorded(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """The pages of migrated owners (the sweep's, the wave counts') stay one index range each only
    while the planner knows `state = 'migrated'` is most of the table: a run that recorded owners
    refreshes the statistics, which autovacuum may not have done yet (nor ever on SQLite)."""
    many_owners(engine, 40)
    assert owner_statistics(engine) == 0
    plan = write_plan(
        tmp_path,
        '[rollout]\nbatch_size = 10\n\n[[waves]]\nname = "nobody"\npercent = 0\n\n'
        '[[waves]]\nname = "everyone"\npercent = 100\n',
    )
    nothing = rollout("run", "--wave", "nobody", db_url=db_url, plan=plan)
    assert nothing.returncode == 0, nothing.stderr[-2000:]
    assert owner_statistics(engine) == 0  # a run that recorded nobody samples nothing
    done = rollout("run", "--wave", "everyone", db_url=db_url, plan=plan)
    assert done.returncode == 0, done.stderr[-2000:]
    assert scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'") == 40
    assert owner_statistics(engine) > 0


def test_a_vacuum_holding_the_owner_table_delays_the_end_of_a_run_by_two_seconds_at_most(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """Another session holds what `ANALYZE` needs on `rollout_owners` (a manual VACUUM does, for as
    long as it runs): the run waits two seconds for it, leaves the statistics to autovacuum, and
    ends as it would have."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's ANALYZE runs under the batch's own write lock")
    many_owners(engine, 30)
    plan = write_plan(tmp_path, '[rollout]\nbatch_size = 10\n\n[[waves]]\nname = "everyone"\npercent = 100\n')
    holder = engine.connect()
    try:
        holder.execute(text("LOCK TABLE rollout_owners IN SHARE UPDATE EXCLUSIVE MODE"))
        started = time.monotonic()
        done = rollout("run", "--wave", "everyone", db_url=db_url, plan=plan, timeout=60)
        took = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert done.returncode == 0, done.stderr[-2000:]
    assert scalar(engine, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'") == 30
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(e["event"] == "statistics.skipped" for e in events)
    assert [e["outcome"] for e in events if e["event"] == "run.finished"] == ["succeeded"]
    assert took < 30
    assert owner_statistics(engine) == 0
