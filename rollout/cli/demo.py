"""`rollout demo`: the one-command tour on the embedded default."""

from __future__ import annotations

import json

import click

from rollout.cli import exits
from rollout.cli.app import cli, options
from rollout.cli.migrate import write_dry_run
from rollout.engine.states import RunMode
from rollout.operations.run import RunRequest, run_wave
from rollout.operations.setup import prepare_demo_database
from rollout.operations.status import read_status
from rollout.operations.verify import verify
from rollout.render.views import render_status, render_verify, run_line
from rollout.seed import seed


@cli.command()
@click.option("--owners", type=click.IntRange(min=10), default=2000, help="How many synthetic owners.")
@click.option("--seed", "seed_value", type=int, default=7, help="Same seed, same data.")
@click.option("--wave", default="ten-percent", show_default=True, help="The wave the tour runs.")
@click.pass_context
def demo(ctx: click.Context, owners: int, seed_value: int, wave: str) -> int:
    """The tour: fresh demo database, seeded, a wave's dry run and run, then status and verify."""
    opts = options(ctx)
    plan = opts.plan()
    selected = plan.wave(wave)
    engine = prepare_demo_database(opts.database_url, click.echo)
    click.echo(f"\n== Seeding {owners} legacy owners (seed {seed_value})")
    click.echo(str(seed(engine, owners, seed_value)))
    click.echo(f"\n== rollout plan --wave {wave}   (the dry run: plan {plan.path})")
    write_dry_run(engine, plan, selected, "table", None)
    click.echo(f"\n== rollout run --wave {wave}")
    result = run_wave(
        engine,
        plan,
        selected,
        RunRequest(wave=wave),
        opts.run_id,
        RunMode.WAVE,
        None,
        invocation=opts.invocation(plan, json.dumps({"demo": True, "wave": wave})),
    )
    assert result.summary is not None
    click.echo(run_line(result.summary))
    click.echo("\n== rollout status")
    click.echo(render_status(read_status(engine, plan), "table"))
    click.echo("\n== rollout verify")
    report = verify(engine)
    click.echo(render_verify(report, "table"))
    click.echo(
        f"\nThe demo database is {engine.url.render_as_string(hide_password=True)}; every command works on it, e.g. "
        "`rollout status` or `rollout run --wave fifty-percent`."
    )
    return max(exits.for_run(result.summary), exits.OK if report.ok else exits.FAILED)
