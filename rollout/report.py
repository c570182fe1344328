"""Rendering for operators: plain tables for a terminal, JSON for machines."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from rollout.rollback import RollbackReport
from rollout.status import Status, WaveStatus
from rollout.verify import VerifyReport


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A fixed-width text table; numbers right-aligned."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [all(_is_number(row[i]) for row in cells) and bool(cells) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _is_number(value: str) -> bool:
    return value.replace(".", "", 1).isdigit()


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)


def _completion(wave: WaveStatus) -> str:
    if not wave.complete:
        return "no"
    return wave.completed_at[:16].replace("T", " ") if wave.completed_at else "yes"


def render_status(status: Status, fmt: str) -> str:
    if fmt == "json":
        return to_json(status.as_dict())
    parts = [
        "PAUSED: " + (status.pause_reason or "no reason given") if status.paused else "Not paused.",
        "",
        table(
            [
                "wave",
                "selected",
                "migrated",
                "failed",
                "blocked",
                "rolled back",
                "remaining",
                "complete (since)",
            ],
            [
                [
                    w.wave,
                    w.selected,
                    w.migrated,
                    w.failed,
                    w.blocked,
                    w.rolled_back,
                    w.remaining,
                    _completion(w),
                ]
                for w in status.waves
            ],
        ),
        "",
        "Recent runs:",
        table(
            ["run", "mode", "wave", "started", "finished", "outcome", "migrated", "failed", "blocked"],
            [
                [
                    r["id"],
                    r["mode"],
                    r["wave"],
                    r["started_at"],
                    r["finished_at"],
                    r["outcome"] or "running",
                    r["migrated"],
                    r["failed"],
                    r["blocked"],
                ]
                for r in status.runs
            ],
        ),
    ]
    if status.failed_owners:
        parts += [
            "",
            "Failed owners (retried with --retry-failed or --owner):",
            table(
                ["owner", "wave", "attempts", "last error"],
                [[f["owner_id"], f["wave"], f["attempts"], f["error"]] for f in status.failed_owners],
            ),
        ]
    return "\n".join(parts)


def render_verify(report: VerifyReport, fmt: str) -> str:
    if fmt == "json":
        return to_json(report.as_dict())
    scope = f"wave {report.wave}" if report.wave else "all waves"
    head = f"Checked {report.owners_checked} migrated owners ({scope}): "
    if report.ok:
        return head + "every invariant holds."
    return (
        head
        + f"{len(report.violations)} violations.\n\n"
        + table(
            ["owner", "invariant", "detail"], [[v.owner_id, v.invariant, v.detail] for v in report.violations]
        )
    )


def render_rollback(report: RollbackReport, fmt: str) -> str:
    if fmt == "json":
        return to_json(report.as_dict())
    verb = "Would roll back" if report.dry_run else "Rolled back"
    lines = [f"{verb} {len(report.owners)} owners." + (" Nothing was written." if report.dry_run else "")]
    if report.owners:
        lines += [
            "",
            table(
                [
                    "owner",
                    "organization",
                    "organization after",
                    "projects back",
                    "left elsewhere",
                    "members removed",
                    "permissions removed",
                    "billing back",
                ],
                [
                    [
                        o.owner_id,
                        o.organization_name,
                        (
                            "deleted"
                            if o.organization_deleted
                            else "kept (in use)"
                            if o.organization_created
                            else "kept (not created by the job)"
                        ),
                        len(o.projects_returned),
                        len(o.projects_left),
                        len(o.members_removed),
                        len(o.permissions_removed),
                        o.billing_account_returned if o.billing_account_returned is not None else "-",
                    ]
                    for o in report.owners
                ],
            ),
        ]
    return "\n".join(lines)
