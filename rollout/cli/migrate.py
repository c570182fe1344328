"""`rollout plan` (the dry-run report) and `rollout run`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Any

import click
import structlog
from sqlalchemy import Engine

from rollout import logs
from rollout.cli import exits
from rollout.cli.app import cli, duration, on_terminal, options, safe_url, say, warn_missing_indexes
from rollout.cli.outputs import METRICS_FILE, METRICS_PUSH, Metrics, writable
from rollout.cli.progress import progress_bar
from rollout.clock import utcnow
from rollout.engine.changes import ChangeTotals
from rollout.engine.states import RunOutcome
from rollout.engine.summary import RunSummary
from rollout.engine.waveplan import Wave, WavePlan
from rollout.operations import dryrun
from rollout.operations import run as running
from rollout.operations.workers import check_workers, fan_out
from rollout.render.report import WRITERS, Context
from rollout.render.table import plural, printable, to_json
from rollout.render.views import run_dict, run_line

log = structlog.get_logger("rollout.cli")


def write_dry_run(engine: Engine, plan: WavePlan, wave: Wave, fmt: str, output: Path | None) -> ChangeTotals:
    """Computes the dry run of a wave and writes it to stdout or a file (whole or not at all)."""
    totals = ChangeTotals(already_migrated=dryrun.already_migrated(engine, plan, wave))
    ctx = Context(
        wave.name,
        str(plan.path),
        safe_url(engine),
        utcnow().isoformat(timespec="seconds"),
        dryrun.unknown_owners(engine, wave),
    )
    writer = WRITERS[fmt]

    def write(out: IO[str]) -> None:
        writer(out, dryrun.batches(engine, plan, wave), totals, ctx)

    if output is None:
        write(sys.stdout)
        return totals
    tmp = output.with_name(f".{output.name}.partial")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as out:
            write(out)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return totals


@cli.command("plan")
@click.option("--wave", required=True, help="The wave to report on.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv", "markdown"]),
    default=None,
    show_default="table on a terminal, json otherwise",
    help="table for people; markdown for a change ticket; csv, a row per owner; json, the report to approve.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the report to this file (atomically) instead of stdout.",
)
@click.pass_context
def plan_command(ctx: click.Context, wave: str, fmt: str | None, output: Path | None) -> int:
    """The dry-run report of a wave: exactly what `run --wave` would do now. Writes nothing."""
    writable(output, "report")
    opts = options(ctx)
    plan = opts.plan()
    selected = plan.wave(wave)
    logs.bind(opts.run_id, wave)
    engine = opts.engine(read_only=True)
    warn_missing_indexes(engine)
    fmt = fmt or ("table" if output is None and sys.stdout.isatty() else "json")
    totals = write_dry_run(engine, plan, selected, fmt, output)
    if output is not None:
        say(
            f"{fmt} report of wave {wave} written to {output}: {plural(totals.owners, 'owner')} to migrate,"
            f" {totals.blocked} blocked",
            "report.written",
            path=str(output),
            format=fmt,
            owners=totals.owners,
            blocked=totals.blocked,
        )
    return exits.OK


RESULT_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    help="The summary on stdout: a line, or a JSON object.",
)


@cli.command()
@click.option("--wave", help="Migrate the owners this wave selects.")
@click.option(
    "--owner",
    "owner_id",
    type=click.IntRange(1, 2**63 - 1),
    help="Migrate one owner, whatever its state (also after rollback).",
)
@click.option(
    "--from-plan",
    "from_plan",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Migrate exactly the owners of an approved JSON report; drifted owners are skipped.",
)
@click.option(
    "--auto", is_flag=True, help="Cron: the first wave that may run now, under a lease (exit 3 if held)."
)
@click.option(
    "--batch-size", type=click.IntRange(1, 10_000), help="A fixed number of owners per transaction."
)
@click.option("--max-owners", type=click.IntRange(min=1), help="Stop after attempting this many owners.")
@click.option("--time-budget", callback=duration, help="Stop between batches after this long, e.g. 50m.")
@click.option("--retry-failed", is_flag=True, help="Also attempt owners that failed before.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    help="Worker processes on the wave (PostgreSQL; SQLite runs one).",
)
@METRICS_FILE
@METRICS_PUSH
@RESULT_FORMAT
@click.pass_context
def run(
    ctx: click.Context,
    /,
    workers: int,
    metrics_file: Path | None,
    metrics_push: str | None,
    fmt: str,
    **request: Any,
) -> int:
    """Migrate owners: a wave, one owner, an approved report, or whatever cron should do now."""
    asked = running.RunRequest(**request)
    writable(metrics_file, "metrics file")
    opts = options(ctx)
    plan = opts.plan(named=asked.auto or not on_terminal())
    if asked.wave is not None:
        plan.wave(asked.wave)
    engine = opts.engine()
    asked_for = workers
    workers, fewer = check_workers(engine, asked, workers)
    if fewer is not None:
        say(f"rollout: warning: {fewer}", "run.one_worker", level="warning", workers=asked_for)
    warn_missing_indexes(engine)
    result = Metrics(engine, plan, metrics_file, metrics_push).after(
        lambda: running.run(
            engine,
            plan,
            asked,
            run_id=opts.run_id,
            progress=progress_bar(),
            invocation=opts.invocation(plan, asked.parameters()),
            fan_out=fan_out(workers) if workers > 1 else None,
        )
    )
    if result.summary is None:
        if fmt == "json":
            click.echo(
                to_json({"run_id": opts.run_id, "outcome": "nothing-to-do", "reason": result.nothing_to_do})
            )
        else:
            click.echo(f"nothing to do: {result.nothing_to_do}")
        return exits.OK
    if result.already_migrated:
        shown = ", ".join(map(str, result.already_migrated[:20])) + (
            " …" if len(result.already_migrated) > 20 else ""
        )
        say(
            f"  {plural(len(result.already_migrated), 'owner')} of the report migrated already (another wave, or an"
            f" earlier run of this report): {shown}",
            "report.already_migrated",
            owners=len(result.already_migrated),
        )
    return _report(result.summary, fmt)


@cli.command("sweep")
@click.option("--wave", help="Only the owners counted under this wave (default: every migrated owner).")
@click.option(
    "--batch-size", type=click.IntRange(1, 10_000), help="A fixed number of owners per transaction."
)
@METRICS_FILE
@METRICS_PUSH
@RESULT_FORMAT
@click.pass_context
def sweep_command(
    ctx: click.Context,
    wave: str | None,
    batch_size: int | None,
    metrics_file: Path | None,
    metrics_push: str | None,
    fmt: str,
) -> int:
    """Apply the migration's rules to what the platform wrote since owners were migrated: late
    projects, users with access who are not members, billing accounts left on the user."""
    writable(metrics_file, "metrics file")
    opts = options(ctx)
    plan = opts.plan(named=not on_terminal())
    selected = plan.wave(wave) if wave is not None else None
    engine = opts.engine()
    parameters = to_json({"wave": wave, "batch_size": batch_size})
    result = Metrics(engine, plan, metrics_file, metrics_push).after(
        lambda: running.sweep(
            engine,
            plan,
            selected,
            run_id=opts.run_id,
            batch_size=batch_size,
            invocation=opts.invocation(plan, parameters),
        )
    )
    assert result.summary is not None
    return _report(result.summary, fmt)


def _report(summary: RunSummary, fmt: str) -> int:
    click.echo(to_json(run_dict(summary)) if fmt == "json" else run_line(summary))
    for failed_owner, error in summary.failures:
        say(
            f"  owner {failed_owner} failed: {printable(error)}",
            "owner.failed",
            level="error",
            owner_id=failed_owner,
            error=error,
        )
    for drift in summary.drifted:
        say(
            f"  owner {drift.owner_id} drifted, skipped: {printable(drift.why)}",
            "owner.drifted",
            level="warning",
            owner_id=drift.owner_id,
            why=drift.why,
        )
    if summary.deferred:
        shown = ", ".join(map(str, summary.deferred[:20])) + (" …" if len(summary.deferred) > 20 else "")
        say(
            f"  deferred (rows held by other transactions; later runs try again): {shown}",
            "run.deferred",
            level="warning",
            owners=list(summary.deferred[:100]),
        )
    if summary.outcome is RunOutcome.HALTED:
        say(f"rollout: halted: {summary.stop_text}", "run.halted", level="error", reason=summary.stop_text)
    return exits.for_run(summary)
