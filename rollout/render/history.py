"""The history for support: `rollout runs` (every invocation, newest first) and `rollout show
--owner` (everything the ledger holds on one owner). Tables for a terminal, JSON for machines."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from rollout.operations.show import OwnerStory
from rollout.render.table import plural, printable, table, to_json
from rollout.store.dialect import as_datetime


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
        lines.append(f"  last error ({plural(story.failed_attempts, 'failed attempt')}): {story.last_error}")
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
