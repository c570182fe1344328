"""`rollout run --from-plan REPORT.json`: run an approved dry-run report and nothing else.

`ApprovedReport` is the runner's `ReportGate`: it hands the runner the names the report planned
and keeps, of each freshly computed batch, only the owners whose changes still match the report.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rollout.engine import naming
from rollout.engine.changes import BatchChanges, Drift, OwnerChanges
from rollout.engine.states import OwnerState, attempted_by_waves
from rollout.errors import UsageError
from rollout.operations.dryrun import fingerprint_of, owner_entry

_NOT_A_REPORT = "not a JSON report of `rollout plan --format json`"


class ApprovedReport:
    """The owners of a JSON report, each with exactly what the report said would happen to it."""

    def __init__(self, report: Any, source: str) -> None:
        """`report` is the parsed JSON; `source` names it in errors. `UsageError` when it is not a
        report, or was changed after it was generated."""
        if not isinstance(report, dict) or not {"wave", "owners", "fingerprint"} <= set(report):
            raise UsageError(f"{source}: {_NOT_A_REPORT}")
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
            raise UsageError(f"{source}: {_NOT_A_REPORT} ({type(exc).__name__}: {exc})") from exc
        if report["fingerprint"] != fingerprint:
            raise UsageError(
                f"{source}: the report was changed after it was generated (fingerprint mismatch); "
                "refusing to run it"
            )
        self.wave: str = report["wave"]
        self.entries: dict[int, dict[str, Any]] = entries
        self.blocked: dict[int, str] = blocked
        self._names = names
        self.migrated_before: set[int] = set()

    @classmethod
    def read(cls, path: Path) -> ApprovedReport:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"{path}: cannot read the report: {exc.strerror or exc}") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: {_NOT_A_REPORT}: {exc}") from exc
        return cls(report, str(path))

    def owner_ids(self) -> list[int]:
        """The report's owners and its blocked owners (recorded as blocked again, never touched)."""
        return sorted(set(self.entries) | set(self.blocked))

    def to_attempt(self, states: Mapping[int, OwnerState], *, retry_failed: bool) -> list[int]:
        """The report's owners a run attempts, given what the job recorded for them: as for a wave,
        rolled-back owners wait for `run --owner` and failed ones for `--retry-failed`. Owners
        migrated already (by another wave meanwhile, or an earlier run of this report) are not
        attempted: `migrated_before` lists them, for the run to report."""
        self.migrated_before = {i for i, state in states.items() if state is OwnerState.MIGRATED}
        return [
            i
            for i in self.owner_ids()
            if i not in self.migrated_before and attempted_by_waves(states.get(i), retry_failed=retry_failed)
        ]

    @staticmethod
    def _name_follows_rule(approved: dict[str, Any], owner: OwnerChanges) -> bool:
        """A report only names organizations it creates; such a name must be one the naming rule
        gives that owner, whatever the fingerprint says (anyone can recompute a plain digest)."""
        organization = approved.get("organization") or {}
        if organization.get("existing"):
            return True
        name = organization.get("name")
        return isinstance(name, str) and naming.follows_rule(name, owner.username, owner.owner_id)

    def planned_names(self) -> Mapping[int, str]:
        """The names the report gave to organizations it would create."""
        return self._names

    def admit(self, changes: BatchChanges, owner_ids: Sequence[int]) -> tuple[BatchChanges, list[Drift]]:
        """The part of a freshly computed batch that still matches the report, and the drifted owners."""
        now = {o.owner_id: o for o in changes.owners}
        blocked = {b.owner_id: b.reason for b in changes.blocked}
        deferred = set(changes.deferred)
        keep, drifted = [], []
        for owner_id in owner_ids:
            if owner_id in deferred:
                continue  # tried again later, checked again then
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
            elif not self._name_follows_rule(approved, now[owner_id]):
                name = approved["organization"].get("name")
                drifted.append(
                    Drift(
                        owner_id, f"the report's organization name {name!r} does not follow the naming rule"
                    )
                )
            else:
                entry = owner_entry(now[owner_id])
                changed = [key for key in entry if entry[key] != approved.get(key)]
                if changed:
                    drifted.append(Drift(owner_id, "changed since the report: " + ", ".join(changed)))
                else:
                    keep.append(now[owner_id])
        return dataclasses.replace(changes, owners=tuple(keep)), drifted
