"""The results of `run`, `status`, `verify` and `rollback` for operators: tables for a terminal,
JSON for machines. Pure functions of the results."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from rollout.engine.runner import RunSummary
from rollout.engine.tally import WaveStatus
from rollout.operations.rollback import RollbackReport
from rollout.operations.show import OwnerStory
from rollout.operations.status import Status
from rollout.operations.verify import Cause, VerifyReport
from rollout.render.table import plural, printable, table, to_json
from rollout.store.dialect import as_datetime


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
    }


def status_dict(status: Status) -> dict[str, Any]:
    return {
        "waves": [dataclasses.asdict(w) | {"complete": w.complete} for w in status.waves],
        "paused": status.control.paused,
        "pause_reason": status.control.reason,
        "paused_by": status.control.changed_by,
        "paused_at": status.control.changed_at.isoformat(timespec="seconds")
        if status.control.paused and status.control.changed_at
        else None,
        "runs": list(status.runs),
        "failed_owners": list(status.failed_owners),
        "unknown_owners": {wave: list(ids) for wave, ids in status.unknown_owners.items()},
    }


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
                    _completion(w),
                ]
                for w in status.waves
            ],
        ),
        "",
        "Recent runs (`rollout runs` for more):",
        runs_table(status.runs, short=True),
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
    return f"PAUSED by {control.changed_by or 'unknown'} at {when}: {control.reason or 'no reason given'}"


def _seconds(value: Any) -> str:
    """An ISO time to the second, as people read it."""
    return str(value)[:19].replace("T", " ") if value else ""


def _duration(run: dict[str, Any]) -> float | None:
    started, finished = as_datetime(run.get("started_at")), as_datetime(run.get("finished_at"))
    return (finished - started).total_seconds() if started and finished else None


def _parameters(text: str | None) -> dict[str, Any]:
    """A run's recorded parameters (JSON); a value recorded by an older release as it was."""
    if not text:
        return {}
    try:
        found = json.loads(text)
    except ValueError:
        return {"parameters": text}
    return found if isinstance(found, dict) else {"parameters": found}


def _given(parameters: dict[str, Any]) -> str:
    """The parameters that were given: `owner_id=6 batch_size=50`."""
    return " ".join(f"{k}={v}" for k, v in parameters.items() if v not in (None, False) and k != "wave")


def runs_table(runs: Iterable[dict[str, Any]], *, short: bool = False) -> str:
    """The run history, newest first: what ran, by whom, how it ended, how fast (`short`: what
    `status` shows, without the plan and the parameters)."""
    rows = []
    for r in runs:
        took = _duration(r)
        rate = round(r["attempted"] / took, 1) if took and r["attempted"] else None
        rows.append(
            [
                r["id"],
                r["mode"],
                r["wave"] or "",
                r.get("operator") or "",
                _seconds(r["started_at"]),
                f"{took:.0f}" if took is not None else "",
                r["outcome"] or "running",
                r["migrated"],
                r["failed"],
                r["blocked"],
                r.get("deferred", 0),
                rate if rate is not None else "",
                (r.get("plan_fingerprint") or "").removeprefix("sha256:")[:12],
                printable(_given(_parameters(r.get("parameters")))),
            ]
        )
    headers = ["run", "mode", "wave", "operator", "started (UTC)", "seconds", "outcome", "migrated", "failed"]
    headers += ["blocked", "deferred", "owners/s", "plan", "with"]
    return table(headers[:-2] if short else headers, [row[:-2] for row in rows] if short else rows)


def render_runs(runs: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return to_json(
            [r | {"duration_s": _duration(r), "parameters": _parameters(r.get("parameters"))} for r in runs]
        )
    return runs_table(runs) if runs else "No runs yet."


def render_show(story: OwnerStory, fmt: str) -> str:
    """`rollout show --owner ID`."""
    if fmt == "json":
        return to_json(dataclasses.asdict(story))
    org = story.organization
    lines = [
        f"Owner {story.owner_id} ({story.username}){' — user deleted' if story.user_deleted else ''}",
        f"  state: {story.state or 'never touched by the job'}"
        + (f", wave {story.wave}" if story.wave else "")
        + (f", run {story.run_id}" if story.run_id else "")
        + (f", migrated {story.migrated_at}" if story.migrated_at else "")
        + (f", updated {story.updated_at}" if story.updated_at else ""),
    ]
    if org is not None:
        how = "created by the job" if org["created_by_job"] else "reused (it existed)"
        now = "" if org["exists"] else " — it no longer exists"
        lines.append(f"  organization: {org['id']} {org['name']} ({how}){now}")
    if story.blocked_reason:
        lines.append(f"  blocked: {story.blocked_reason}")
    if story.last_error:
        lines.append(f"  last error ({story.failed_attempts} failed attempts): {story.last_error}")
    if story.billing_account is not None:
        b = story.billing_account
        where = (
            f"organization {b['organization_id_now']}"
            if b["organization_id_now"]
            else f"user {b['user_id_now']}"
        )
        lines.append(f"  billing account {b['id']} moved; now on {where}")
    if story.legacy_projects_now:
        lines.append(f"  legacy projects now: {', '.join(story.legacy_projects_now)}")
    parts = ["\n".join(printable(line) for line in lines)]
    if story.projects:
        parts.append(
            "Projects moved:\n"
            + table(
                ["project", "moved into", "organization now", "access unchanged", "run", "access digest"],
                [
                    [
                        p["project_id"],
                        p["moved_into"],
                        p["organization_now"],
                        "yes" if p["access_unchanged"] else "NO",
                        p["run_id"],
                        p["access_digest"][:16],
                    ]
                    for p in story.projects
                ],
            )
        )
    if story.members_added or story.permissions_added:
        parts.append(
            "Members and permissions the job added:\n"
            + table(
                ["user", "added", "still there", "run"],
                [
                    [m["user_id"], "membership", "yes" if m["still_member"] else "no", m["run_id"]]
                    for m in story.members_added
                ]
                + [
                    [p["user_id"], f"permission {p['permission']}", "", p["run_id"]]
                    for p in story.permissions_added
                ],
            )
        )
    if story.rollbacks:
        parts.append(
            "Rollbacks:\n"
            + table(
                [
                    "run",
                    "when (UTC)",
                    "operator",
                    "undid run",
                    "organization",
                    "created by the job",
                    "projects",
                ],
                [
                    [
                        b["run_id"],
                        _seconds(b["rolled_back_at"]),
                        b["operator"] or "",
                        b["migrated_by_run"] or "",
                        f"{b['organization_id']} {b['organization_name']}" if b["organization_id"] else "",
                        "yes" if b["organization_created"] else "no",
                        b["projects_moved"],
                    ]
                    for b in story.rollbacks
                ],
            )
        )
    if story.runs:
        parts.append(
            "Runs that touched this owner:\n"
            + table(
                ["run", "mode", "wave", "operator", "started (UTC)", "outcome"],
                [
                    [r["id"], r["mode"], r["wave"], r["operator"], _seconds(r["started_at"]), r["outcome"]]
                    for r in story.runs
                ],
            )
        )
    return "\n\n".join(parts)


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
    lines = [
        f"{verb} {plural(len(report.owners), 'owner')}." + (" Nothing was written." if report.dry_run else "")
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
