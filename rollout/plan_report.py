"""The dry-run report of SPEC 7 in four formats, written as the batches are computed.

JSON and CSV stream: owners are written as they come and only the blocked list is spooled (to a
temporary file past a few MB), so a million-owner wave is never held in memory. Table and Markdown
are for people: the summary, the blocked owners, and a sample of the owners.
JSON carries a fingerprint of what it planned; `run --from-plan` refuses a report whose content no
longer matches it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine

from rollout.clock import utcnow
from rollout.dryrun import Summary, already_migrated, batches
from rollout.errors import UsageError
from rollout.migration import BatchPlan, BlockedOwner, OwnerPlan
from rollout.plan import Plan, Wave
from rollout.report import table

SAMPLE = 20
FINGERPRINT_PREFIX = "sha256:"


def owner_entry(owner: OwnerPlan) -> dict[str, Any]:
    return {
        "owner_id": owner.owner_id,
        "username": owner.username,
        "organization": {
            "name": owner.organization_name,
            "label": owner.organization_label,
            "existing": owner.existing,
            "id": owner.organization_id,
        },
        "projects": list(owner.projects),
        "members_to_add": list(owner.members_to_add),
        "billing_account_id": owner.billing_account_id,
    }


def blocked_entry(blocked: BlockedOwner) -> dict[str, Any]:
    return {"owner_id": blocked.owner_id, "username": blocked.username, "reason": blocked.reason}


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class Fingerprint:
    """A digest of the wave name, the owner entries in report order and the blocked entries in report
    order. Owners and blocked owners are digested apart, so the order in which a writer meets them
    (interleaved, batch by batch) does not matter."""

    def __init__(self, wave: str) -> None:
        self._wave = wave
        self._owners = hashlib.sha256()
        self._blocked = hashlib.sha256()

    def owner(self, entry: dict[str, Any]) -> None:
        self._owners.update(_canonical(entry))

    def blocked(self, entry: dict[str, Any]) -> None:
        self._blocked.update(_canonical(entry))

    def hexdigest(self) -> str:
        whole = hashlib.sha256(f"wave:{self._wave}\n".encode())
        whole.update(self._owners.digest() + self._blocked.digest())
        return FINGERPRINT_PREFIX + whole.hexdigest()


def fingerprint_of(report: dict[str, Any]) -> str:
    """The fingerprint a JSON report's content should carry."""
    fp = Fingerprint(str(report.get("wave")))
    for entry in report.get("owners", []):
        fp.owner(entry)
    for entry in report.get("blocked", []):
        fp.blocked(entry)
    return fp.hexdigest()


@dataclass(frozen=True)
class Context:
    wave: str
    plan_path: str
    database: str
    generated_at: str


def write_json(out: IO[str], batches: Iterable[BatchPlan], summary: Summary, ctx: Context) -> None:
    fp = Fingerprint(ctx.wave)
    out.write("{\n" + f'"wave": {json.dumps(ctx.wave)},\n"generated_at": {json.dumps(ctx.generated_at)},\n')
    out.write(
        f'"plan_file": {json.dumps(ctx.plan_path)},\n"database": {json.dumps(ctx.database)},\n"owners": ['
    )
    first = True
    with tempfile.SpooledTemporaryFile(max_size=4 << 20, mode="w+", encoding="utf-8") as blocked:
        first_blocked = True
        for batch in batches:
            summary.add(batch)
            for owner in batch.owners:
                entry = owner_entry(owner)
                fp.owner(entry)
                out.write(("\n  " if first else ",\n  ") + json.dumps(entry, ensure_ascii=False))
                first = False
            for b in batch.blocked:
                entry = blocked_entry(b)
                fp.blocked(entry)
                blocked.write(("\n  " if first_blocked else ",\n  ") + json.dumps(entry, ensure_ascii=False))
                first_blocked = False
        out.write("\n],\n" + '"blocked": [')
        blocked.seek(0)
        shutil.copyfileobj(blocked, out)
    out.write("\n],\n" + f'"summary": {json.dumps(summary.as_dict())},\n')
    out.write(f'"fingerprint": {json.dumps(fp.hexdigest())}\n' + "}\n")


CSV_COLUMNS = (
    "owner_id",
    "username",
    "action",
    "reason",
    "organization_name",
    "organization_label",
    "organization_existing",
    "projects",
    "members_to_add",
    "billing_account_id",
)


def write_csv(out: IO[str], batches: Iterable[BatchPlan], summary: Summary, ctx: Context) -> None:
    """One row per owner of the wave: `migrate` rows and `blocked` rows, in user-id order per batch."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for batch in batches:
        summary.add(batch)
        rows = [
            (
                o.owner_id,
                [
                    o.owner_id,
                    o.username,
                    "migrate",
                    "",
                    o.organization_name,
                    o.organization_label,
                    str(o.existing).lower(),
                    " ".join(o.projects),
                    " ".join(map(str, o.members_to_add)),
                    o.billing_account_id if o.billing_account_id is not None else "",
                ],
            )
            for o in batch.owners
        ]
        rows += [
            (b.owner_id, [b.owner_id, b.username, "blocked", b.reason, "", "", "", "", "", ""])
            for b in batch.blocked
        ]
        writer.writerows(row for _, row in sorted(rows, key=lambda r: r[0]))


@dataclass
class _Sample:
    owners: list[OwnerPlan]
    blocked: list[BlockedOwner]


def _collect(batches: Iterable[BatchPlan], summary: Summary, blocked_limit: int = 200) -> _Sample:
    sample = _Sample([], [])
    for batch in batches:
        summary.add(batch)
        sample.owners.extend(batch.owners[: max(0, SAMPLE - len(sample.owners))])
        sample.blocked.extend(batch.blocked[: max(0, blocked_limit - len(sample.blocked))])
    return sample


def _summary_rows(summary: Summary) -> list[list[Any]]:
    rows: list[list[Any]] = [
        ["owners to migrate", summary.owners],
        ["organizations to create", summary.organizations_to_create],
        ["organizations reused", summary.organizations_reused],
        ["projects to move", summary.projects],
        ["members to add", summary.members_to_add],
        ["billing accounts to move", summary.billing_accounts],
        ["owners blocked", summary.blocked],
    ]
    rows += [[f"  blocked: {reason}", n] for reason, n in sorted(summary.blocked_by_reason.items())]
    rows.append(["already migrated", summary.already_migrated])
    return rows


def _owner_row(o: OwnerPlan) -> list[Any]:
    return [
        o.owner_id,
        o.username,
        o.organization_name + (" (existing)" if o.existing else ""),
        o.organization_label,
        len(o.projects),
        len(o.members_to_add),
        o.billing_account_id if o.billing_account_id is not None else "-",
    ]


OWNER_HEADERS = [
    "owner",
    "username",
    "organization",
    "label",
    "projects",
    "members to add",
    "billing account",
]


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_markdown(out: IO[str], batches: Iterable[BatchPlan], summary: Summary, ctx: Context) -> None:
    """A section to paste into a change ticket."""
    sample = _collect(batches, summary)
    out.write(f"## Organizations rollout: wave `{ctx.wave}`\n\n")
    out.write(f"Dry run of {ctx.generated_at} against `{ctx.database}`, plan `{ctx.plan_path}`.\n\n")
    out.write("### Summary\n\n" + _md_table(["", "count"], _summary_rows(summary)) + "\n\n")
    out.write(f"### Blocked owners ({summary.blocked})\n\n")
    if sample.blocked:
        out.write(
            _md_table(
                ["owner", "username", "reason"], [[b.owner_id, b.username, b.reason] for b in sample.blocked]
            )
        )
        if summary.blocked > len(sample.blocked):
            out.write(f"\n\n…and {summary.blocked - len(sample.blocked)} more (see the JSON or CSV report).")
        out.write("\n\n")
    else:
        out.write("None.\n\n")
    out.write(f"### Owners (first {len(sample.owners)} of {summary.owners})\n\n")
    out.write(_md_table(OWNER_HEADERS, [_owner_row(o) for o in sample.owners]) + "\n\n")
    out.write(
        "### Command\n\n```sh\n"
        f"rollout plan --wave {ctx.wave} --format json --output {ctx.wave}.json   # the approved report\n"
        f"rollout run --from-plan {ctx.wave}.json\n```\n"
    )


def write_table(out: IO[str], batches: Iterable[BatchPlan], summary: Summary, ctx: Context) -> None:
    sample = _collect(batches, summary)
    out.write(f"Dry run of wave {ctx.wave} ({ctx.generated_at}); nothing was written.\n\n")
    out.write(table(["", "count"], _summary_rows(summary)) + "\n\n")
    if sample.blocked:
        out.write(
            "Blocked owners:\n"
            + table(
                ["owner", "username", "reason"], [[b.owner_id, b.username, b.reason] for b in sample.blocked]
            )
            + "\n\n"
        )
    if sample.owners:
        more = summary.owners - len(sample.owners)
        out.write(
            f"Owners (first {len(sample.owners)}"
            + (f"; {more} more in --format csv or json" if more else "")
            + "):\n"
            + table(OWNER_HEADERS, [_owner_row(o) for o in sample.owners])
            + "\n"
        )


WRITERS = {"json": write_json, "csv": write_csv, "markdown": write_markdown, "table": write_table}


def write_report(
    engine: Engine, plan: Plan, wave: Wave, fmt: str, output: Path | None, *, database: str
) -> Summary:
    """Computes the dry run of a wave and writes it; a file is written whole or not at all."""
    summary = Summary(already_migrated=already_migrated(engine, plan, wave))
    ctx = Context(wave.name, str(plan.path), database, utcnow().isoformat(timespec="seconds"))
    writer = WRITERS[fmt]
    if output is None:
        writer(sys.stdout, batches(engine, plan, wave), summary, ctx)
        return summary
    if not output.parent.is_dir():
        raise UsageError(f"cannot write {output}: {output.parent} is not a directory")
    tmp = output.with_name(f".{output.name}.partial")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as out:
            writer(out, batches(engine, plan, wave), summary, ctx)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return summary
