"""`make test` on a machine without a server: the PostgreSQL tests are skipped with one summary
line saying how to enable them, and under CI=true that is a failure instead."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import REPO

SELECTION = ["tests/integration/test_ledger.py", "-k", "postgresql", "-p", "no:cacheprovider", "-q"]


def _pytest(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "CI")}
    # Nothing answers on port 1, and no Docker here: no server to be found.
    return subprocess.run(
        [sys.executable, "-m", "pytest", *SELECTION],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**base, "PGHOST": "127.0.0.1", "PGPORT": "1", "DOCKER_HOST": "tcp://127.0.0.1:1", **env},
        timeout=300,
        check=False,
    )


def test_without_a_server_the_postgresql_tests_are_skipped_with_one_line() -> None:
    result = _pytest()
    assert result.returncode == 0, result.stdout[-2000:]
    summary = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED ")]
    assert len(summary) == 1, result.stdout[-2000:]
    assert "PostgreSQL tests" in summary[0] and "TEST_DATABASE_URL" in summary[0]
    assert result.stdout.count("no PostgreSQL server") == 1


def test_under_ci_a_missing_server_fails() -> None:
    result = _pytest(CI="true")
    assert result.returncode == 1, result.stdout[-2000:]
    assert "CI=true: failing instead of skipping" in result.stdout
