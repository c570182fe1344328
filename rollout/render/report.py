"""The dry-run report in four formats, written as the batches are computed.

JSON and CSV stream: owners are written as they come and only the blocked list is spooled (to a
temporary file past a few MB), so a million-owner wave is never held in memory. Table and Markdown
are for people: the summary, the blocked owners, and a sample of the owners. JSON carries the
fingerprint of what it planned (`operations.dryrun.Fingerprint`), which `run --from-plan` checks.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any

from rollout.engine.changes import BatchChanges, BlockedOwner, ChangeTotals, OwnerChanges
from rollout.operations.dryrun import Fingerprint, blocked_entry, owner_entry
from rollout.render.table import markdown_table, spreadsheet_safe, table

SAMPLE = 20


@dataclass(frozen=True)
class Context:
    wave: str
    plan_path: str
    database: str
    generated_at: str
    unknown_owners: tuple[int, ...] = ()  # listed in the wave, not users at all


def _unknown_line(ctx: Context) -> str:
    shown = ", ".join(map(str, ctx.unknown_owners))
    return f"Listed owners that are not users (nothing to migrate for them): {shown}.\n\n" if shown else ""


def write_json(out: IO[str], batches: Iterable[BatchChanges], summary: ChangeTotals, ctx: Context) -> None:
    fp = Fingerprint(ctx.wave)
    out.write("{\n" + f'"wave": {json.dumps(ctx.wave)},\n"generated_at": {json.dumps(ctx.generated_at)},\n')
    out.write(
        f'"plan_file": {json.dumps(ctx.plan_path)},\n"database": {json.dumps(ctx.database)},\n'
        f'"unknown_owners": {json.dumps(list(ctx.unknown_owners))},\n"owners": ['
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
    out.write("\n],\n" + f'"summary": {json.dumps(summary_dict(summary))},\n')
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


def write_csv(out: IO[str], batches: Iterable[BatchChanges], summary: ChangeTotals, ctx: Context) -> None:
    """One row per owner of the wave: `migrate` rows and `blocked` rows, in user-id order per batch.
    A text a spreadsheet would run as a formula is prefixed with `'`."""
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
        writer.writerows([spreadsheet_safe(v) for v in row] for _, row in sorted(rows, key=lambda r: r[0]))


@dataclass
class _Sample:
    owners: list[OwnerChanges]
    blocked: list[BlockedOwner]


def _collect(batches: Iterable[BatchChanges], summary: ChangeTotals, blocked_limit: int = 200) -> _Sample:
    sample = _Sample([], [])
    for batch in batches:
        summary.add(batch)
        sample.owners.extend(batch.owners[: max(0, SAMPLE - len(sample.owners))])
        sample.blocked.extend(batch.blocked[: max(0, blocked_limit - len(sample.blocked))])
    return sample


def _summary_rows(summary: ChangeTotals) -> list[list[Any]]:
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


def _owner_row(o: OwnerChanges) -> list[Any]:
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


def write_markdown(
    out: IO[str], batches: Iterable[BatchChanges], summary: ChangeTotals, ctx: Context
) -> None:
    """A section to paste into a change ticket."""
    sample = _collect(batches, summary)
    out.write(f"## Organizations rollout: wave `{ctx.wave}`\n\n")
    out.write(f"Dry run of {ctx.generated_at} against `{ctx.database}`, plan `{ctx.plan_path}`.\n\n")
    out.write(_unknown_line(ctx))
    out.write("### Summary\n\n" + markdown_table(["", "count"], _summary_rows(summary)) + "\n\n")
    out.write(f"### Blocked owners ({summary.blocked})\n\n")
    if sample.blocked:
        out.write(
            markdown_table(
                ["owner", "username", "reason"], [[b.owner_id, b.username, b.reason] for b in sample.blocked]
            )
        )
        if summary.blocked > len(sample.blocked):
            out.write(f"\n\n…and {summary.blocked - len(sample.blocked)} more (see the JSON or CSV report).")
        out.write("\n\n")
    else:
        out.write("None.\n\n")
    out.write(f"### Owners (first {len(sample.owners)} of {summary.owners})\n\n")
    out.write(markdown_table(OWNER_HEADERS, [_owner_row(o) for o in sample.owners]) + "\n\n")
    out.write(
        "### Command\n\n```sh\n"
        f"rollout plan --wave {ctx.wave} --format json --output {ctx.wave}.json   # the approved report\n"
        f"rollout run --from-plan {ctx.wave}.json\n```\n"
    )


def write_table(out: IO[str], batches: Iterable[BatchChanges], summary: ChangeTotals, ctx: Context) -> None:
    sample = _collect(batches, summary)
    out.write(f"Dry run of wave {ctx.wave} ({ctx.generated_at}); nothing was written.\n\n")
    out.write(_unknown_line(ctx))
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


Writer = Callable[[IO[str], Iterable[BatchChanges], ChangeTotals, Context], None]
WRITERS: dict[str, Writer] = {
    "json": write_json,
    "csv": write_csv,
    "markdown": write_markdown,
    "table": write_table,
}


def summary_dict(totals: ChangeTotals) -> dict[str, Any]:
    """The JSON report's summary: the totals, blocked reasons sorted."""
    return dataclasses.asdict(totals) | {"blocked_by_reason": dict(sorted(totals.blocked_by_reason.items()))}
