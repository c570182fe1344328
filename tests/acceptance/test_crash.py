"""Kill -9 at any moment and run again; the end state equals an uninterrupted run's."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from rollout.seed import seed
from rollout.store.engine import make_engine
from tests.conftest import drop_pg_database
from tests.support import REPO, half_migrated_owners, logical_snapshot, rollout, scalar, watching

PLAN = '[rollout]\nbatch_size = 2\n\n[[waves]]\nname = "everyone"\npercent = 100\n'
OWNERS = 1500


@pytest.fixture
def twins(request: pytest.FixtureRequest, db_url: str) -> Iterator[tuple[str, str]]:
    """Two databases holding the same seeded data (with every edge case)."""
    engine = make_engine(db_url)
    seed(engine, OWNERS, 11)
    engine.dispose()
    if db_url.startswith("sqlite"):
        source = Path(make_url(db_url).database or "")
        copy = source.with_name("twin.db")
        shutil.copyfile(source, copy)
        yield db_url, f"sqlite:///{copy}"
        return
    admin = request.getfixturevalue("pg_admin")
    twin = f"{make_url(db_url).database}_twin"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{twin}" TEMPLATE "{make_url(db_url).database}"'))
    twin_url = make_url(db_url).set(database=twin).render_as_string(hide_password=False)
    yield db_url, twin_url
    drop_pg_database(admin, twin_url)


def kill_mid_wave(url: str, plan: Path, engine: Engine) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rollout",
            "--database-url",
            url,
            "--plan",
            str(plan),
            "-q",
            "run",
            "--wave",
            "everyone",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with watching(engine) as watcher:
        start = scalar(watcher, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if scalar(watcher, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'") > start:
                break
            time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def test_sigkill_mid_wave_then_resume_ends_like_an_uninterrupted_run(
    twins: tuple[str, str], tmp_path: Path
) -> None:
    """Killed twice with SIGKILL mid-wave, then resumed: no owner is ever half-migrated, each owner is
    migrated exactly once, and the platform tables end exactly as after one uninterrupted run of the
    same wave on a copy of the same data (organization names included, whatever the batch size)."""
    killed_url, clean_url = twins
    plan = tmp_path / "waves.toml"
    plan.write_text(PLAN)
    killed = make_engine(killed_url)
    clean = make_engine(clean_url)

    result = rollout("run", "--wave", "everyone", "--batch-size", "500", db_url=clean_url, plan=plan)
    assert result.returncode == 0, result.stderr

    for _ in range(2):
        kill_mid_wave(killed_url, plan, killed)
        assert half_migrated_owners(killed) == []
    assert scalar(killed, "SELECT COUNT(*) FROM rollout_runs WHERE finished_at IS NULL") == 2
    migrated_before_resume = scalar(killed, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'")
    assert (
        0
        < migrated_before_resume
        < scalar(clean, "SELECT COUNT(*) FROM rollout_owners WHERE state = 'migrated'")
    )
    result = rollout("run", "--wave", "everyone", db_url=killed_url, plan=plan)
    assert result.returncode == 0, result.stderr

    assert logical_snapshot(killed) == logical_snapshot(clean)
    assert scalar(killed, "SELECT COUNT(*) FROM organizations") == scalar(
        clean, "SELECT COUNT(*) FROM organizations"
    )
    assert rollout("verify", db_url=killed_url, plan=plan).returncode == 0
    killed.dispose()
    clean.dispose()
