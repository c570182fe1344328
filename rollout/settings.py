"""What every command needs to know: flags, then environment, then defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rollout.plan import Plan, load_plan
from rollout.sql import sql_dir

DEFAULT_DATABASE_URL = "sqlite:///rollout.db"
DEFAULT_PLAN = Path("jobs/waves.toml")


@dataclass(frozen=True)
class Settings:
    database_url: str
    plan_path: Path
    plan_given: bool
    log_format: str | None
    verbosity: int

    def plan(self) -> Plan:
        return load_plan(self.plan_path)

    def plan_if_present(self) -> Plan | None:
        """The plan file, or None when none was named and the default is absent."""
        if not self.plan_given and not self.plan_path.exists():
            return None
        return self.plan()

    def plan_or_packaged(self) -> Plan:
        """The plan file, or, when none was named and the default is absent, the one shipped with the
        package (so that `rollout demo` works outside a checkout)."""
        if not self.plan_given and not self.plan_path.exists():
            packaged = sql_dir().parent / "jobs" / "waves.toml"
            if not packaged.exists():
                packaged = sql_dir() / "waves.toml"
            if packaged.exists():
                return load_plan(packaged)
        return self.plan()
