"""The `rollout` command group, its global options, and the entry point that turns every error into
one line on stderr and its exit code."""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import click
import structlog
from sqlalchemy import Engine

from rollout import logs
from rollout.cli import exits
from rollout.engine.ledger import new_run_id
from rollout.engine.planfile import load_plan, packaged_plan, parse_duration
from rollout.engine.waveplan import WavePlan
from rollout.errors import RolloutError, describe
from rollout.store.engine import make_engine
from rollout.store.schema import check_schema

DEFAULT_DATABASE_URL = "sqlite:///rollout.db"
DEFAULT_PLAN = Path("jobs/waves.toml")

log = structlog.get_logger("rollout.cli")


@dataclass(frozen=True)
class Options:
    """The global options, and the run id of this invocation (every log event carries it)."""

    database_url: str
    plan_path: Path
    plan_given: bool
    run_id: str
    verbose: bool

    def engine(self, *, check: bool = True, read_only: bool = False) -> Engine:
        """The database's engine; with `check`, refuses a database without the tables (exit 2).
        `read_only` for the commands that only read (a SQLite file is opened read-only)."""
        engine = make_engine(self.database_url, read_only=read_only)
        if check:
            check_schema(engine)
        return engine

    def plan(self) -> WavePlan:
        """The plan file: `--plan`, ROLLOUT_PLAN, `jobs/waves.toml` here, or else the copy of
        `jobs/waves.toml` shipped in the package (so that an installed `rollout`, and the demo's
        database, work outside a checkout; the log names the file used)."""
        if self.plan_given or self.plan_path.exists():
            return load_plan(self.plan_path)
        with packaged_plan() as packaged:
            log.info("plan.packaged", plan=str(packaged), detail=f"{self.plan_path} not found here")
            return load_plan(packaged)


def options(ctx: click.Context) -> Options:
    found = ctx.find_object(Options)
    assert found is not None, "the group callback sets the options"
    return found


def duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> timedelta | None:
    """A click callback for options like `--time-budget 50m`."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a duration like 30m, 2h or 1h30m ({exc})") from exc


def safe_url(engine: Engine) -> str:
    """The database as a report may show it: no password, and a SQLite file by its path."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and (url.database or "").startswith("file:"):
        return f"sqlite:///{unquote((url.database or '')[5:].split('?', 1)[0])}"
    return str(url.render_as_string(hide_password=True))


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
    logs.configure(log_format, -1 if quiet else min(verbose, 1))
    run_id = new_run_id()
    logs.bind(run_id, None)
    ctx.obj = Options(database_url, plan_path or DEFAULT_PLAN, plan_path is not None, run_id, verbose > 0)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every error is one line on stderr with its exit code; tracebacks with -v."""
    ctx: click.Context | None = None
    try:
        with cli.make_context("rollout", list(sys.argv[1:] if argv is None else argv)) as ctx:
            code: Any = cli.invoke(ctx)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except BrokenPipeError:
        # The reader went away (`rollout plan | head`): what it wanted it got.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = exits.OK
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("rollout: interrupted", err=True)
        code = exits.INTERRUPTED
    except click.ClickException as exc:
        click.echo(f"rollout: error: {exc.format_message()}", err=True)
        code = exits.USAGE
    except RolloutError as exc:
        _traceback_if_verbose(ctx)
        click.echo(f"rollout: error: {exc}", err=True)
        code = exits.for_error(exc)
    except Exception as exc:
        _traceback_if_verbose(ctx)
        click.echo(f"rollout: internal error: {describe(exc)} (run with -v for details)", err=True)
        code = exits.FAILED
    sys.stdout.flush()
    sys.exit(code if isinstance(code, int) else exits.OK)


def _traceback_if_verbose(ctx: click.Context | None) -> None:
    if ctx is not None and isinstance(ctx.obj, Options) and ctx.obj.verbose:
        traceback.print_exc()
