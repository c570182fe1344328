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
        try:
            fingerprint = fingerprint_of(report)
            entries = {int(e["owner_id"]): e for e in report["owners"]}
            names = {
                i: str(e["organization"]["name"])
                for i, e in entries.items()
                if not e["organization"]["existing"]
            }
            blocked = {int(e["owner_id"]): str(e["reason"]) for e in report.get("blocked", [])}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UsageError(
                f"{path}: not a JSON report of `rollout plan --format json` ({type(exc).__name__}: {exc})"
            ) from exc
        if report["fingerprint"] != fingerprint:
            raise UsageError(
                f"{path}: the report was changed after it was generated (fingerprint mismatch); "
                "refusing to run it"
            )
        self.path = path
        self.wave: str = report["wave"]
        self.entries: dict[int, dict[str, Any]] = entries
        self.names = names
        self.blocked: dict[int, str] = blocked
        self.migrated_before: set[int] = set()

    def to_attempt(self, states: dict[int, str], *, retry_failed: bool) -> list[int]:
        """The report's owners a run attempts, given what the job recorded for them: as for a wave,
        rolled-back owners wait for `run --owner` and failed ones for `--retry-failed`; owners an
        earlier run of the report migrated are remembered so that they do not count as drifted."""
        self.migrated_before = {i for i, state in states.items() if state == "migrated"}
        return [
            i
            for i in self.owner_ids()
            if states.get(i) != "rolled-back" and (retry_failed or states.get(i) != "failed")
        ]

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
                if owner_id not in self.migrated_before:
                    drifted.append(Drift(owner_id, "no legacy project left (changed meanwhile)"))
                # else: migrated by an earlier run of this report; nothing left to do
            else:
                entry = owner_entry(now[owner_id])
                changed = [key for key in entry if entry[key] != approved.get(key)]
                if changed:
                    drifted.append(Drift(owner_id, "changed since the report: " + ", ".join(changed)))
                else:
                    keep.append(now[owner_id])
        return BatchPlan(tuple(keep), plan.blocked), drifted
