"""The `rollout` command: parse, call one library function, render, pick the exit code."""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Any

import click
import structlog

from rollout import db, ledger, logs
from rollout.errors import RolloutError, UsageError
from rollout.plan import parse_duration
from rollout.report import render_rollback, render_status, render_verify
from rollout.runner import RunSummary
from rollout.settings import DEFAULT_DATABASE_URL, DEFAULT_PLAN, Settings

log = structlog.get_logger("rollout.cli")
_verbose = False


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.find_object(Settings)
    assert settings is not None
    return settings


def _engine(ctx: click.Context, *, check: bool = True) -> Any:
    engine = db.make_engine(_settings(ctx).database_url)
    if check:
        db.check_schema(engine)
    return engine


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a duration like 30m, 2h or 1h30m ({exc})") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--database-url",
    envvar="ROLLOUT_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    help="postgresql+psycopg://… or sqlite:///FILE (env ROLLOUT_DATABASE_URL).",
)
@click.option(
    "--plan",
    "plan_path",
    envvar="ROLLOUT_PLAN",
    type=click.Path(path_type=Path),
    default=None,
    help=f"The wave plan file (env ROLLOUT_PLAN; default {DEFAULT_PLAN}).",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "console"]),
    default=None,
    help="Default: console on a terminal, JSON lines otherwise.",
)
@click.option("-v", "--verbose", count=True, help="Debug logs, and tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors in the logs.")
@click.pass_context
def cli(
    ctx: click.Context,
    database_url: str,
    plan_path: Path | None,
    log_format: str | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Move legacy per-user projects into Organizations, progressively, in waves."""
    global _verbose
    _verbose = verbose > 0
    verbosity = -1 if quiet else min(verbose, 1)
    logs.configure(log_format, verbosity)
    logs.bind(ledger.new_run_id(), None)
    ctx.obj = Settings(database_url, plan_path or DEFAULT_PLAN, plan_path is not None, log_format, verbosity)


@cli.group("db")
def db_group() -> None:
    """The database: the job's tables, and the platform tables for rehearsals."""


@db_group.command("init")
@click.option(
    "--platform-schema", is_flag=True, help="Also create the platform tables of SPEC 2 (demo, tests)."
)
@click.pass_context
def db_init(ctx: click.Context, platform_schema: bool) -> int:
    """Create the job's own rollout_ tables (idempotent)."""
    engine = db.make_engine(_settings(ctx).database_url, create=True)
    db.init_schema(engine, platform=platform_schema)
    what = "platform and rollout tables" if platform_schema else "rollout tables"
    click.echo(f"{what} ready in {engine.url.render_as_string()}")
    return 0


@cli.command()
@click.option("--owners", type=click.IntRange(min=1), required=True, help="How many legacy owners to create.")
@click.option("--seed", "seed_value", type=int, default=0, show_default=True, help="Same seed, same data.")
@click.pass_context
def seed(ctx: click.Context, owners: int, seed_value: int) -> int:
    """Fill empty platform tables with realistic synthetic legacy data."""
    from rollout.seed import seed as seed_data

    engine = _engine(ctx)
    summary = seed_data(engine, owners, seed_value)
    click.echo(str(summary))
    return 0


def _run_summary_line(summary: RunSummary) -> str:
    c = summary.counts
    line = (
        f"run {summary.run_id}: {summary.outcome}: {c.migrated} migrated, {c.blocked} blocked, "
        f"{c.failed} failed" + (f", {c.drifted} drifted" if c.drifted else "") + f" in {c.batches} batches"
    )
    if summary.stopped_by:
        line += f" (stopped: {summary.stopped_by})"
    return line


@cli.command("plan")
@click.option("--wave", required=True, help="The wave to report on.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv", "markdown"]),
    default=None,
    help="Default: table on a terminal, json otherwise.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the report to this file (atomically) instead of stdout.",
)
@click.pass_context
def plan_command(ctx: click.Context, wave: str, fmt: str | None, output: Path | None) -> int:
    """The dry-run report of a wave: exactly what `run --wave` would do now. Writes nothing."""
    from rollout.plan_report import write_report

    plan = _settings(ctx).plan()
    selected = plan.wave(wave)
    engine = _engine(ctx)
    fmt = fmt or ("table" if output is None and sys.stdout.isatty() else "json")
    summary = write_report(engine, plan, selected, fmt, output, database=_safe_url(engine))
    if output is not None:
        click.echo(
            f"{fmt} report of wave {wave} written to {output}: {summary.owners} owners to migrate, "
            f"{summary.blocked} blocked",
            err=True,
        )
    return 0


def _safe_url(engine: Any) -> str:
    return str(engine.url.render_as_string(hide_password=True))


@cli.command()
@click.option("--wave", help="Migrate the owners this wave selects.")
@click.option(
    "--owner", "owner_id", type=int, help="Migrate one owner, whatever its state (also after rollback)."
)
@click.option(
    "--from-plan",
    "from_plan",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Migrate exactly the owners of an approved JSON report; drifted owners are skipped.",
)
@click.option(
    "--auto", is_flag=True, help="Cron: the first wave that may run now, under a lock (exit 3 if held)."
)
@click.option("--batch-size", type=click.IntRange(1, 10_000), help="Owners per transaction (plan default).")
@click.option("--max-owners", type=click.IntRange(min=1), help="Stop after attempting this many owners.")
@click.option("--time-budget", callback=_duration, help="Stop between batches after this long, e.g. 50m.")
@click.option("--retry-failed", is_flag=True, help="Also attempt owners that failed before.")
@click.option("--workers", type=click.IntRange(min=1), default=1, help="Only 1 for now (see README).")
@click.option(
    "--metrics-file", type=click.Path(path_type=Path, dir_okay=False), help="Prometheus textfile to write."
)
@click.pass_context
def run(ctx: click.Context, /, workers: int, metrics_file: Path | None, **options: Any) -> int:
    """Migrate owners: a wave, one owner, an approved report, or whatever cron should do now."""
    from rollout import service

    if workers != 1:
        raise UsageError(
            "--workers is not implemented yet: run one process per wave (several processes on one wave are safe)"
        )
    request = service.RunRequest(**options)
    request.check()
    engine = _engine(ctx)
    run_id = structlog.contextvars.get_contextvars()["run_id"]
    try:
        outcome = service.run(engine, _settings(ctx), request, run_id=run_id, progress=_progress_bar())
    except RolloutError:
        # A refused or halted run is what monitoring most needs to see (paused, lock held...).
        _write_metrics(engine, ctx, metrics_file, service.Outcome(None, "refused"))
        raise
    _write_metrics(engine, ctx, metrics_file, outcome)
    if outcome.summary is None:
        click.echo(f"nothing to do: {outcome.nothing_to_do}")
        return 0
    summary = outcome.summary
    click.echo(_run_summary_line(summary))
    for failed_owner, error in summary.failures:
        click.echo(f"  owner {failed_owner} failed: {error}", err=True)
    for drift in summary.drifted:
        click.echo(f"  owner {drift.owner_id} drifted, skipped: {drift.why}", err=True)
    if summary.outcome == "halted":
        click.echo(f"rollout: halted: {summary.stopped_by}", err=True)
    return summary.exit_code


def _write_metrics(engine: Any, ctx: click.Context, path: Path | None, outcome: Any) -> None:
    if path is None:
        return
    from rollout.metrics import write_metrics

    try:
        write_metrics(engine, _settings(ctx).plan_if_present(), path, outcome)
    except RolloutError as exc:
        log.error("metrics.unwritten", path=str(path), error=str(exc))


class _Bar:
    """Owners done out of those selected, with rate and time left, on stderr."""

    def __init__(self, total: int | None) -> None:
        self._bar: Any = click.progressbar(
            length=total or 0,
            label="owners",
            file=sys.stderr,
            show_pos=True,
            show_eta=True,
            item_show_func=lambda rate: rate,
        )
        self._started = time.monotonic()
        self._done = 0
        self._bar.__enter__()

    def update(self, owners: int) -> None:
        self._done += owners
        rate = self._done / max(time.monotonic() - self._started, 1e-6)
        self._bar.update(owners, f"{rate:,.0f} owners/s")

    def finish(self) -> None:
        self._bar.__exit__(None, None, None)


def _progress_bar() -> Any:
    """A bar on a terminal; nothing when stderr goes to a file or a pipe."""
    return _Bar if sys.stderr.isatty() else None


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def status(ctx: click.Context, fmt: str) -> int:
    """Per wave: selected, migrated, failed, blocked, remaining; the pause switch; recent runs."""
    from rollout.status import status as read_status

    plan = _settings(ctx).plan()
    click.echo(render_status(read_status(_engine(ctx), plan), fmt))
    return 0


@cli.command()
@click.option("--wave", help="Only the owners migrated by this wave.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def verify(ctx: click.Context, wave: str | None, fmt: str) -> int:
    """Check the invariants of SPEC 9 for every migrated owner; exit 1 on any violation."""
    from rollout.verify import verify as run_verify

    if wave is not None:
        _settings(ctx).plan().wave(wave)
    report = run_verify(_engine(ctx), wave)
    click.echo(render_verify(report, fmt))
    return 0 if report.ok else 1


@cli.command("rollback")
@click.option("--owner", "owner_id", type=int, help="Roll back this owner.")
@click.option("--wave", help="Roll back every owner this wave's runs migrated.")
@click.option("--dry-run", is_flag=True, help="Print what would be undone; write nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def rollback_command(
    ctx: click.Context, owner_id: int | None, wave: str | None, dry_run: bool, fmt: str
) -> int:
    """Undo what the job did for an owner or a wave (SPEC 8)."""
    from rollout.rollback import check_owner, rollback, wave_migrated_owners

    if (owner_id is None) == (wave is None):
        raise UsageError("give exactly one of --owner ID or --wave W")
    engine = _engine(ctx)
    run_id = structlog.contextvars.get_contextvars()["run_id"]
    logs.bind(run_id, wave)
    if owner_id is not None:
        check_owner(engine, owner_id)
        owners: Any = [owner_id]
    else:
        _settings(ctx).plan().wave(wave or "")
        owners = wave_migrated_owners(engine, wave or "")
    report = rollback(engine, owners, run_id=run_id, dry_run=dry_run)
    click.echo(render_rollback(report, fmt))
    if owner_id is not None and report.not_migrated:
        click.echo(f"rollout: owner {owner_id} is not migrated by the job; nothing to roll back", err=True)
    for failed_owner, error in report.failed:
        click.echo(f"  owner {failed_owner} could not be rolled back: {error}", err=True)
    return 1 if report.failed else 0


@cli.command()
@click.option("--reason", help="Shown by status and by the runs it refuses.")
@click.pass_context
def pause(ctx: click.Context, reason: str | None) -> int:
    """Stop running workers after their batch; refuse new runs."""
    ledger.set_paused(_engine(ctx), True, reason)
    click.echo(
        "paused: running workers stop after their current batch; new runs exit 4 until `rollout resume`"
    )
    return 0


@cli.command()
@click.pass_context
def resume(ctx: click.Context) -> int:
    """Allow runs again after `rollout pause`."""
    ledger.set_paused(_engine(ctx), False, None)
    click.echo("resumed")
    return 0


@cli.command()
@click.option("--owners", type=click.IntRange(min=10), default=2000, show_default=True)
@click.option("--seed", "seed_value", type=int, default=7, show_default=True)
@click.option("--wave", default="ten-percent", show_default=True, help="The wave the tour runs.")
@click.pass_context
def demo(ctx: click.Context, owners: int, seed_value: int, wave: str) -> int:
    """The tour: fresh demo database, seeded, a wave run, then status and verify."""
    from rollout import service
    from rollout.demo import prepare
    from rollout.plan_report import write_report
    from rollout.seed import seed as seed_data
    from rollout.status import status as read_status
    from rollout.verify import verify as run_verify

    settings = _settings(ctx)
    plan = settings.plan()
    selected_wave = plan.wave(wave)
    engine = prepare(settings.database_url, click.echo)
    click.echo(f"\n== Seeding {owners} legacy owners (seed {seed_value})")
    click.echo(str(seed_data(engine, owners, seed_value)))
    click.echo(f"\n== rollout plan --wave {wave}   (the dry run: plan {plan.path})")
    write_report(engine, plan, selected_wave, "table", None, database=_safe_url(engine))
    click.echo(f"\n== rollout run --wave {wave}")
    run_id = structlog.contextvars.get_contextvars()["run_id"]
    summary = service.run_wave(
        engine, plan, selected_wave, service.RunRequest(wave=wave), run_id, "wave", None
    )
    click.echo(_run_summary_line(summary))
    click.echo("\n== rollout status")
    click.echo(render_status(read_status(engine, plan), "table"))
    click.echo("\n== rollout verify")
    report = run_verify(engine)
    click.echo(render_verify(report, "table"))
    click.echo(
        f"\nThe demo database is {engine.url.render_as_string()}; every command works on it, e.g. "
        "`rollout status` or `rollout run --wave fifty-percent`."
    )
    return max(summary.exit_code, 0 if report.ok else 1)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every error is one line on stderr with its exit code; tracebacks with -v."""
    try:
        code = cli.main(args=argv, prog_name="rollout", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("rollout: interrupted", err=True)
        code = 130
    except click.ClickException as exc:
        click.echo(f"rollout: error: {exc.format_message()}", err=True)
        code = 2
    except RolloutError as exc:
        if _verbose:
            traceback.print_exc()
        click.echo(f"rollout: error: {exc}", err=True)
        code = exc.exit_code
    except Exception as exc:
        if _verbose:
            traceback.print_exc()
        click.echo(
            f"rollout: internal error: {type(exc).__name__}: {db.describe(exc)} (run with -v for details)",
            err=True,
        )
        code = 1
    sys.stdout.flush()
    sys.exit(code if isinstance(code, int) else 0)
