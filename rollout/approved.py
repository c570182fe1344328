"""`rollout run --from-plan REPORT.json`: run an approved dry-run report and nothing else (SPEC 7)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollout.errors import UsageError
from rollout.migration import BatchPlan
from rollout.plan_report import fingerprint_of, owner_entry


@dataclass(frozen=True)
class Drift:
    owner_id: int
    why: str


class ApprovedPlan:
    """The owners of a JSON report, each with exactly what the report said would happen to it."""

    def __init__(self, path: Path) -> None:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"{path}: cannot read the report: {exc.strerror or exc}") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: not a JSON report of `rollout plan --format json`: {exc}") from exc
        if not isinstance(report, dict) or not {"wave", "owners", "fingerprint"} <= set(report):
            raise UsageError(f"{path}: not a JSON report of `rollout plan --format json`")
        if report["fingerprint"] != fingerprint_of(report):
            raise UsageError(
                f"{path}: the report was changed after it was generated (fingerprint mismatch); "
                "refusing to run it"
            )
        self.path = path
        self.wave: str = report["wave"]
        self.entries: dict[int, dict[str, Any]] = {e["owner_id"]: e for e in report["owners"]}
        self.blocked: dict[int, str] = {e["owner_id"]: e["reason"] for e in report.get("blocked", [])}

    def owner_ids(self) -> list[int]:
        """The report's owners and its blocked owners (recorded as blocked again, never touched)."""
        return sorted(set(self.entries) | set(self.blocked))

    def planned_names(self) -> dict[int, str]:
        """The names the report gave to organizations it would create."""
        return {
            i: e["organization"]["name"] for i, e in self.entries.items() if not e["organization"]["existing"]
        }

    def check(self, plan: BatchPlan, owner_ids: Sequence[int]) -> tuple[BatchPlan, list[Drift]]:
        """The part of a freshly computed batch that still matches the report, and the drifted owners."""
        now = {o.owner_id: o for o in plan.owners}
        blocked = {b.owner_id: b.reason for b in plan.blocked}
        keep, drifted = [], []
        for owner_id in owner_ids:
            approved = self.entries.get(owner_id)
            if approved is None:
                if owner_id in now:
                    drifted.append(
                        Drift(owner_id, "no longer blocked, but the report did not plan its migration")
                    )
            elif owner_id in blocked:
                drifted.append(Drift(owner_id, f"blocked now: {blocked[owner_id]}"))
            elif owner_id not in now:
                drifted.append(Drift(owner_id, "no legacy project left (migrated or changed meanwhile)"))
            else:
                entry = owner_entry(now[owner_id])
                changed = [key for key in entry if entry[key] != approved.get(key)]
                if changed:
                    drifted.append(Drift(owner_id, "changed since the report: " + ", ".join(changed)))
                else:
                    keep.append(now[owner_id])
        return BatchPlan(tuple(keep), plan.blocked), drifted
