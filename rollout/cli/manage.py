"""`rollout db init`, `seed`, `rollback`, `pause` and `resume`."""

from __future__ import annotations

import time
from collections.abc import Iterable

import click

from rollout import logs
from rollout.cli import exits
from rollout.cli.app import FORMAT_HELP, cli, on_terminal, options, say
from rollout.errors import UsageError
from rollout.operations.control import set_paused
from rollout.operations.indexes import build_indexes, missing_indexes
from rollout.operations.rollback import check_owner, rollback, wave_migrated_owners
from rollout.render.table import plural, printable, to_json
from rollout.render.views import render_rollback
from rollout.seed import seed as seed_data
from rollout.store.engine import make_engine
from rollout.store.indexes import Index
from rollout.store.schema import grants, init_schema


@cli.group("db")
def db_group() -> None:
    """The database: the job's tables, and the platform tables for rehearsals."""


@db_group.command("init")
@click.option("--platform-schema", is_flag=True, help="Also create the platform tables (demo, tests).")
@click.pass_context
def db_init(ctx: click.Context, platform_schema: bool) -> int:
    """Create the job's own rollout_ tables (idempotent)."""
    # Only a rehearsal database (the platform tables included) may be a new SQLite file.
    engine = make_engine(options(ctx).database_url, create=platform_schema)
    _, after = init_schema(engine, platform=platform_schema)
    what = "platform and rollout tables" if platform_schema else "rollout tables"
    click.echo(f"{what} ready (revision {after}) in {engine.url.render_as_string(hide_password=True)}")
    return exits.OK


@db_group.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> int:
    """Move the job's rollout_ tables to this release's revision, keeping the ledger."""
    engine = make_engine(options(ctx).database_url)
    before, after = init_schema(engine, platform=False, upgrade_only=True)
    if before == after:
        click.echo(f"rollout tables already at revision {after}")
    else:
        click.echo(f"rollout tables upgraded from revision {before or '(none)'} to {after}")
    return exits.OK


@db_group.command("grants")
@click.option("--role", required=True, help="The PostgreSQL role the job connects as.")
@click.option("--read-only", is_flag=True, help="Only what `plan`, `status` and `verify` need.")
def db_grants(role: str, read_only: bool) -> int:
    """Print the GRANT statements the job's role needs (run them as the tables' owner)."""
    for statement in grants(role, read_only=read_only):
        click.echo(statement)
    return exits.OK


@db_group.command("indexes")
@click.option(
    "--print", "print_only", is_flag=True, help="Print the statements of the missing ones; build nothing."
)
@click.pass_context
def db_indexes(ctx: click.Context, print_only: bool) -> int:
    """Build the platform indexes the job relies on that are missing, one at a time, without
    blocking the platform's writes (CONCURRENTLY on PostgreSQL). Run it as the tables' owner."""
    engine = options(ctx).engine()
    if print_only:
        lacking = missing_indexes(engine)
        for index in lacking:
            click.echo(index.statement)
        if not lacking:
            click.echo("-- every index the job relies on is present")
        return exits.OK
    started = time.monotonic()

    def announce(index: Index) -> None:
        say(
            f"building {index.name} on {index.lookup}: {index.statement}",
            "indexes.building",
            index=index.name,
        )

    built = build_indexes(engine, announce)
    if built:
        click.echo(f"built {plural(len(built), 'index', 'indexes')} in {time.monotonic() - started:.1f} s")
    else:
        click.echo("every index the job relies on is present; nothing built")
    return exits.OK


@cli.command()
@click.option("--owners", type=click.IntRange(min=1), required=True, help="How many legacy owners to create.")
@click.option("--seed", "seed_value", type=int, default=0, show_default=True, help="Same seed, same data.")
@click.pass_context
def seed(ctx: click.Context, owners: int, seed_value: int) -> int:
    """Fill empty platform tables with realistic synthetic legacy data."""
    click.echo(str(seed_data(options(ctx).engine(), owners, seed_value)))
    return exits.OK


@cli.command("rollback")
@click.option("--owner", "owner_id", type=click.IntRange(1, 2**63 - 1), help="Roll back this owner.")
@click.option("--wave", help="Roll back every migrated owner `status` counts under this wave.")
@click.option("--dry-run", is_flag=True, help="Print what would be undone; write nothing.")
@click.option("--yes", is_flag=True, help="Roll a wave back without asking (needed off a terminal).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help=FORMAT_HELP)
@click.pass_context
def rollback_command(
    ctx: click.Context, owner_id: int | None, wave: str | None, dry_run: bool, yes: bool, fmt: str
) -> int:
    """Undo what the job did for an owner or a wave. A wave's rollback shows what it would undo and
    asks first on a terminal; off a terminal it needs --yes."""
    if (owner_id is None) == (wave is None):
        raise UsageError("give exactly one of --owner ID or --wave W")
    if wave is not None and not (dry_run or yes or on_terminal()):
        raise UsageError(
            f"rolling back wave {wave} undoes every owner it counts: add --yes, or --dry-run first"
        )
    opts = options(ctx)
    plan = opts.plan(named=not (dry_run or on_terminal()))
    engine = opts.engine()
    logs.bind(opts.run_id, wave)
    owners: Iterable[int]
    if owner_id is not None:
        check_owner(engine, owner_id)
        owners = [owner_id]
    else:
        selected = plan.wave(wave or "")
        if not (dry_run or yes):
            preview = rollback(
                engine, wave_migrated_owners(engine, plan, selected), run_id=opts.run_id, dry_run=True
            )
            click.echo(render_rollback(preview, "table").splitlines()[0], err=True)
            asked = f"Roll back these {plural(len(preview.owners), 'owner')} of wave {wave}?"
            if not click.confirm(asked, err=True):
                click.echo("nothing was rolled back", err=True)
                return exits.OK
        owners = wave_migrated_owners(engine, plan, selected)
    parameters = to_json({"owner_id": owner_id, "wave": wave})
    report = rollback(
        engine,
        owners,
        run_id=opts.run_id,
        dry_run=dry_run,
        wave=wave,
        invocation=opts.invocation(plan, parameters),
    )
    click.echo(render_rollback(report, fmt))
    if owner_id is not None and report.not_migrated:
        say(
            f"rollout: owner {owner_id} is not migrated by the job; nothing to roll back",
            "rollback.not_migrated",
            level="warning",
            owner_id=owner_id,
        )
    for failed_owner, error in report.failed:
        say(
            f"  owner {failed_owner} could not be rolled back: {printable(error)}",
            "rollback.owner_failed",
            level="error",
            owner_id=failed_owner,
            error=error,
        )
    return exits.FAILED if report.failed else exits.OK


@cli.command()
@click.option(
    "--reason", help="Shown by status and by the runs it refuses (default: the reason given before)."
)
@click.pass_context
def pause(ctx: click.Context, reason: str | None) -> int:
    """Stop running workers after their batch; refuse new runs."""
    opts = options(ctx)
    set_paused(opts.engine(), True, reason, opts.operator)
    click.echo(
        "paused: running workers stop after their current batch; new runs exit 4 until `rollout resume`"
    )
    return exits.OK


@cli.command()
@click.pass_context
def resume(ctx: click.Context) -> int:
    """Allow runs again after `rollout pause`."""
    opts = options(ctx)
    set_paused(opts.engine(), False, None, opts.operator)
    click.echo("resumed")
    return exits.OK
