"""The results of `run`, `status`, `verify` and `rollback` for operators: tables for a terminal,
JSON for machines. Pure functions of the results (the run history and `show` are `history`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from rollout.engine.summary import RunSummary
from rollout.engine.tally import WaveStatus
from rollout.operations.rollback import RollbackReport
from rollout.operations.status import Status
from rollout.operations.verify import Cause, VerifyReport
from rollout.render.history import runs_table
from rollout.render.table import plural, printable, table, to_json


def run_line(summary: RunSummary) -> str:
    """The one line `rollout run` prints."""
    c = summary.counts
    line = (
        f"run {summary.run_id}: {summary.outcome}: {c.migrated} migrated, {c.blocked} blocked, "
        f"{c.failed} failed"
        + (f", {c.deferred} deferred" if c.deferred else "")
        + (f", {c.swept} swept" if c.swept else "")
        + (f", {c.drifted} drifted" if c.drifted else "")
        + f" in {plural(c.batches, 'batch')}"
        + (f", throttled {c.throttled_seconds:.0f} s" if c.throttled_seconds >= 1 else "")
    )
    if summary.workers:
        line += f", {plural(len(summary.workers), 'worker')}"
    if summary.stop_text:
        line += f" (stopped: {summary.stop_text})"
    return line


def run_dict(summary: RunSummary) -> dict[str, Any]:
    """The summary `run --format json` prints."""
    return {
        "run_id": summary.run_id,
        "outcome": str(summary.outcome),
        "stopped_by": summary.stop_text,
        **dataclasses.asdict(summary.counts),
        "duration_s": summary.duration_s,
        "failures": [{"owner_id": o, "error": e} for o, e in summary.failures],
        "drifted": [{"owner_id": d.owner_id, "why": d.why} for d in summary.drifted],
        "deferred": list(summary.deferred),
        **(
            {"workers": [{"run_id": w, **dataclasses.asdict(c)} for w, c in summary.workers]}
            if summary.workers
            else {}
        ),
    }


def status_dict(status: Status) -> dict[str, Any]:
    return {
        "waves": [
            dataclasses.asdict(w)
            | {"complete": w.complete, "estimated_seconds_left": w.seconds_left(status.rate)}
            for w in status.waves
        ],
        "paused": status.control.paused,
        "pause_reason": status.control.reason,
        "paused_by": status.control.changed_by,
        "paused_at": status.control.changed_at.isoformat(timespec="seconds")
        if status.control.paused and status.control.changed_at
        else None,
        "runs": list(status.runs),
        "failed_owners": list(status.failed_owners),
        "unknown_owners": {wave: list(ids) for wave, ids in status.unknown_owners.items()},
        "jobs": list(status.jobs),
    }


def _time_left(wave: WaveStatus, rate: float | None) -> str:
    """`2h05m`, `4m10s`, `12s`, `<1s` at the newest run's rate; blank for a complete wave, or
    before any run."""
    seconds = wave.seconds_left(rate)
    if seconds is None or wave.complete:
        return ""
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s" if secs else "<1s"


def _completion(wave: WaveStatus) -> str:
    if not wave.complete:
        return "no"
    return wave.completed_at[:16].replace("T", " ") if wave.completed_at else "yes"


def render_status(status: Status, fmt: str) -> str:
    if fmt == "json":
        return to_json(status_dict(status))
    parts = [
        _pause_line(status),
        "",
        table(
            [
                "wave",
                "selected",
                "migrated",
                "failed",
                "blocked",
                "rolled back",
                "deferred",
                "remaining",
                "time left",
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
                    w.deferred,
                    w.remaining,
                    _time_left(w, status.rate),
                    _completion(w),
                ]
                for w in status.waves
            ],
        ),
        "",
        "Recent runs (`rollout runs` for more):",
        runs_table(status.runs, short=True),
    ]
    for job in status.jobs:
        planned = "planned" if job["planned_at"] else "planning"
        parts += [
            "",
            printable(
                f"Wave {job['wave']}: job {job['id']} under way ({planned}), {job['finished']} of"
                f" {plural(job['claims'], 'claim')} done, {job['concluded']} of {job['owners']} owners concluded."
            ),
            table(
                [
                    "worker",
                    "host",
                    "pid",
                    "claims held",
                    "migrated",
                    "failed",
                    "deferred",
                    "heartbeat",
                    "finished",
                ],
                [
                    [
                        w["id"],
                        w["host"],
                        w["pid"],
                        w["claims_held"],
                        w["migrated"],
                        w["failed"],
                        w["deferred"],
                        (w["heartbeat_at"] or "")[:19].replace("T", " "),
                        (w["finished_at"] or "")[:19].replace("T", " "),
                    ]
                    for w in job["workers"]
                ],
            ),
        ]
    for wave, ids in status.unknown_owners.items():
        parts += ["", f"Wave {wave} lists owners that are not users: {', '.join(map(str, ids))}."]
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


def _pause_line(status: Status) -> str:
    control = status.control
    if not control.paused:
        return "Not paused."
    when = control.changed_at.isoformat(timespec="seconds") if control.changed_at else "an unknown time"
    return printable(
        f"PAUSED by {control.changed_by or 'unknown'} at {when}: {control.reason or 'no reason given'}"
    )


def render_verify(report: VerifyReport, fmt: str) -> str:
    job, platform = report.count(Cause.JOB), report.count(Cause.PLATFORM)
    if fmt == "json":
        return to_json(
            dataclasses.asdict(report)
            | {"ok": report.ok, "job_violations": job, "platform_violations": platform}
        )
    scope = f"wave {report.wave}" if report.wave else "all waves"
    head = f"Checked {plural(report.owners_checked, 'migrated owner')} ({scope}): "
    if report.ok:
        return head + "every invariant holds."
    return (
        head
        + f"{plural(len(report.violations), 'violation')}: {job} of the job's own, {platform} caused by platform writes"
        " after the migration.\n\n"
        + table(
            ["owner", "invariant", "cause", "detail"],
            [[v.owner_id, f"{v.invariant} {v.name}", v.cause, v.detail] for v in report.violations],
        )
    )


def render_rollback(report: RollbackReport, fmt: str) -> str:
    if fmt == "json":
        return to_json(rollback_dict(report))
    verb = "Would roll back" if report.dry_run else "Rolled back"
    owners = report.owners
    totals = (
        f"{plural(sum(o.organization_deleted for o in owners), 'organization')} deleted,"
        f" {plural(sum(len(o.projects_returned) for o in owners), 'project')} and"
        f" {plural(sum(o.billing_account_returned is not None for o in owners), 'billing account')} returned,"
        f" {plural(sum(len(o.members_removed) for o in owners), 'member')} and"
        f" {plural(sum(len(o.permissions_removed) for o in owners), 'permission')} removed"
    )
    lines = [
        f"{verb} {plural(len(owners), 'owner')}"
        + (f": {totals}." if owners else ".")
        + (" Nothing was written." if report.dry_run else "")
    ]
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


def rollback_dict(report: RollbackReport) -> dict[str, Any]:
    return {
        "dry_run": report.dry_run,
        "owners": [
            {
                "owner_id": o.owner_id,
                "organization": {
                    "id": o.organization_id,
                    "name": o.organization_name,
                    "created_by_job": o.organization_created,
                    "deleted": o.organization_deleted,
                },
                "projects_returned": list(o.projects_returned),
                "projects_left": list(o.projects_left),
                "members_removed": list(o.members_removed),
                "permissions_removed": [list(p) for p in o.permissions_removed],
                "billing_account_returned": o.billing_account_returned,
            }
            for o in report.owners
        ],
        "not_migrated": report.not_migrated,
        "failed": [{"owner_id": owner_id, "error": error} for owner_id, error in report.failed],
    }
