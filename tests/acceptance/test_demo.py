"""`rollout demo`: the one-command tour on the embedded default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO


def demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    env["ROLLOUT_PLAN"] = str(REPO / "jobs" / "waves.toml")
    return subprocess.run(
        [sys.executable, "-m", "rollout", "--log-format", "json", *args, "demo", "--owners", "400"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_demo_makes_a_fresh_database_shows_plan_run_status_verify_and_leaves_it_usable(
    tmp_path: Path,
) -> None:
    """In an empty folder: rollout.db is created, the dry run, the run, status and verify are shown,
    exit 0; running it again starts afresh; afterwards other commands work on the file."""
    result = demo(tmp_path)
    assert result.returncode == 0, result.stderr
    for heading in (
        "== rollout plan --wave ten-percent",
        "== rollout run --wave ten-percent",
        "== rollout status",
        "== rollout verify",
        "every invariant holds",
    ):
        assert heading in result.stdout
    assert (tmp_path / "rollout.db").exists()
    again = demo(tmp_path)
    assert again.returncode == 0 and "Removing the previous demo database" in again.stdout
    status = subprocess.run(
        [sys.executable, "-m", "rollout", "--plan", str(REPO / "jobs" / "waves.toml"), "status"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert status.returncode == 0 and "ten-percent" in status.stdout


def test_demo_refuses_a_database_that_is_not_a_demo(tmp_path: Path) -> None:
    """Any other non-empty database is refused with exit 2 and left alone."""
    precious = tmp_path / "rollout.db"
    precious.write_bytes(b"not a demo")
    result = demo(tmp_path)
    assert result.returncode == 2
    assert "refusing to run the demo" in result.stderr
    assert precious.read_bytes() == b"not a demo"
