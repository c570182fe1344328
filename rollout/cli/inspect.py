"""`rollout status`, `verify`, `show` and `runs`: read-only views of the rollout."""

from __future__ import annotations

import click

from rollout.cli import exits
from rollout.cli.app import FORMAT_HELP, cli, options
from rollout.operations.show import show_owner
from rollout.operations.status import read_status, run_history
from rollout.operations.verify import verify as run_verify
from rollout.render.history import render_runs, render_show
from rollout.render.views import render_status, render_verify


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help=FORMAT_HELP)
@click.pass_context
def status(ctx: click.Context, fmt: str) -> int:
    """Per wave: selected, migrated, failed, blocked, remaining; the pause switch; recent runs."""
    opts = options(ctx)
    plan = opts.plan()
    click.echo(render_status(read_status(opts.engine(read_only=True), plan), fmt))
    return exits.OK


@cli.command()
@click.option("--wave", help="Only the owners migrated by this wave.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help=FORMAT_HELP)
@click.pass_context
def verify(ctx: click.Context, wave: str | None, fmt: str) -> int:
    """Check the invariants for every migrated owner; exit 1 on any violation."""
    opts = options(ctx)
    plan = opts.plan()
    selected = plan.wave(wave) if wave is not None else None
    report = run_verify(opts.engine(read_only=True), selected, plan)
    click.echo(render_verify(report, fmt))
    return exits.OK if report.ok else exits.FAILED


@cli.command()
@click.option("--owner", "owner_id", type=click.IntRange(1, 2**63 - 1), required=True, help="The owner.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help=FORMAT_HELP)
@click.pass_context
def show(ctx: click.Context, owner_id: int, fmt: str) -> int:
    """Everything the job recorded about one owner: state, organization, projects, members,
    permissions, billing, failures, the runs that touched it."""
    click.echo(render_show(show_owner(options(ctx).engine(read_only=True), owner_id), fmt))
    return exits.OK


@cli.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, help="How many runs, newest first.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help=FORMAT_HELP)
@click.pass_context
def runs(ctx: click.Context, limit: int, fmt: str) -> int:
    """The history of every invocation: runs, sweeps, rollbacks, and those with nothing to do or refused."""
    click.echo(render_runs(run_history(options(ctx).engine(read_only=True), limit), fmt))
    return exits.OK
