"""What every command needs to know: flags, then environment, then defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog

from rollout.plan import Plan, load_plan
from rollout.sql import sql_dir

DEFAULT_DATABASE_URL = "sqlite:///rollout.db"
DEFAULT_PLAN = Path("jobs/waves.toml")

log = structlog.get_logger("rollout.settings")


@dataclass(frozen=True)
class Settings:
    database_url: str
    plan_path: Path
    plan_given: bool
    log_format: str | None
    verbosity: int

    def plan(self) -> Plan:
        """The plan file: `--plan`, ROLLOUT_PLAN, `jobs/waves.toml` here, or else the copy of
        `jobs/waves.toml` shipped in the package (so that an installed `rollout`, and the demo's
        database, work outside a checkout; the run's log names the file it used)."""
        packaged = self._packaged()
        if not self.plan_given and not self.plan_path.exists() and packaged is not None:
            log.info("plan.packaged", plan=str(packaged), detail=f"{self.plan_path} not found here")
            return load_plan(packaged)
        return load_plan(self.plan_path)

    def plan_if_present(self) -> Plan | None:
        """The plan, or None (the defaults of SPEC 4) when there is none to be found."""
        if not self.plan_given and not self.plan_path.exists() and self._packaged() is None:
            return None
        return self.plan()

    @staticmethod
    def _packaged() -> Path | None:
        for candidate in (sql_dir() / "waves.toml", sql_dir().parent / "jobs" / "waves.toml"):
            if candidate.exists():
                return candidate
        return None
