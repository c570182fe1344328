"""`rollout status` and `rollout verify`: read-only views of the rollout."""

from __future__ import annotations

import click

from rollout.cli import exits
from rollout.cli.app import cli, options
from rollout.operations.status import read_status
from rollout.operations.verify import verify as run_verify
from rollout.render.views import render_status, render_verify


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def status(ctx: click.Context, fmt: str) -> int:
    """Per wave: selected, migrated, failed, blocked, remaining; the pause switch; recent runs."""
    opts = options(ctx)
    plan = opts.plan()
    click.echo(render_status(read_status(opts.engine(read_only=True), plan), fmt))
    return exits.OK


@cli.command()
@click.option("--wave", help="Only the owners migrated by this wave.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def verify(ctx: click.Context, wave: str | None, fmt: str) -> int:
    """Check the invariants for every migrated owner; exit 1 on any violation."""
    opts = options(ctx)
    plan = opts.plan()
    selected = plan.wave(wave) if wave is not None else None
    report = run_verify(opts.engine(read_only=True), selected, plan)
    click.echo(render_verify(report, fmt))
    return exits.OK if report.ok else exits.FAILED
