"""The `rollout` command group, its global options, and the entry point that turns every error into
one line on stderr and its exit code."""

from __future__ import annotations

import getpass
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
from click.shell_completion import shell_complete
from sqlalchemy import Engine

from rollout import __version__, logs
from rollout.cli import exits
from rollout.engine.history import Invocation, new_run_id
from rollout.engine.planfile import load_plan, packaged_plan
from rollout.engine.planvalues import parse_duration
from rollout.engine.waveplan import WavePlan
from rollout.errors import RolloutError, UsageError, describe
from rollout.operations.indexes import missing_indexes
from rollout.render.table import printable
from rollout.store.engine import make_engine
from rollout.store.schema import check_schema

DEFAULT_DATABASE_URL = "sqlite:///rollout.db"
DEFAULT_PLAN = Path("jobs/waves.toml")
COMPLETE_VAR = "_ROLLOUT_COMPLETE"

log = structlog.get_logger("rollout.cli")


@dataclass(frozen=True)
class Options:
    """The global options, and the run id of this invocation (every log event carries it)."""

    database_url: str
    plan_path: Path
    plan_given: bool
    run_id: str
    verbose: bool
    operator: str

    def invocation(self, plan: WavePlan | None, parameters: str | None) -> Invocation:
        """Who runs what, as the run history records it."""
        return Invocation(self.operator, parameters, plan.fingerprint if plan is not None else None)

    def engine(self, *, check: bool = True, read_only: bool = False) -> Engine:
        """The database's engine; with `check`, refuses a database without the tables (exit 2).
        `read_only` for the commands that only read (a SQLite file is opened read-only)."""
        engine = make_engine(self.database_url, read_only=read_only)
        if check:
            check_schema(engine)
        return engine

    def plan(self, *, named: bool = False) -> WavePlan:
        """The plan file: `--plan`, ROLLOUT_PLAN, `jobs/waves.toml` here, or else the copy of
        `jobs/waves.toml` shipped in the package (so that an installed `rollout`, and the demo's
        database, work outside a checkout). With `named` (a run from cron, or one that writes off
        a terminal) the packaged copy is refused: such a run must say which plan it follows."""
        if self.plan_given or self.plan_path.exists():
            return load_plan(self.plan_path)
        if named:
            raise UsageError(
                f"no plan named: give --plan FILE or ROLLOUT_PLAN (no {self.plan_path} here); a run from"
                " cron or a script must say which plan it follows"
            )
        with packaged_plan() as packaged:
            log.warning(
                "plan.packaged",
                plan=str(packaged),
                detail=f"no --plan, no ROLLOUT_PLAN, no {self.plan_path} here",
            )
            return load_plan(packaged)


def on_terminal() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def say(message: str, event: str, *, level: str = "info", **fields: Any) -> None:
    """A message for the operator on stderr: a line of text on a terminal, a log event (with the
    same facts as fields) when stderr carries JSON lines."""
    if logs.is_json():
        getattr(log, level)(event, message=message, **fields)
    else:
        click.echo(message, err=True)


def warn_missing_indexes(engine: Engine) -> None:
    """The preflight of `plan` and `run`: a warning, with its statement, for each lookup of the job
    that no platform index serves (each batch would scan the table)."""
    lacking = missing_indexes(engine)
    for index in lacking:
        say(
            f"rollout: warning: no index on {index.lookup}: every batch scans {index.table}."
            f" As the table's owner: {index.statement}",
            "indexes.missing",
            level="warning",
            table=index.table,
            columns=list(index.columns),
            statement=index.statement,
        )
    if lacking:
        say(
            "rollout: `rollout db indexes` builds them, one at a time, without blocking the platform's writes",
            "indexes.hint",
            level="warning",
            missing=len(lacking),
        )


def default_operator() -> str:
    """Who runs the command: the person behind sudo, else the login name."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


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


FORMAT_HELP = "A table for people, JSON for scripts."

EXIT_CODES_HELP = """\b
Exit codes:
  0   success (also nothing to do, a time budget reached, owners deferred)
  1   finished, but some owners failed or drifted; or verify found violations
  2   usage or configuration error (bad plan, unknown wave or owner, bad URL, schema)
  3   another `run --auto` holds the lease, or this one lost it
  4   halted: paused, or the error budget was exceeded
  75  the database stayed unreachable after retries
Every option can also be set in the environment: ROLLOUT_<OPTION>, or
ROLLOUT_<COMMAND>_<OPTION> for a command's (e.g. ROLLOUT_RUN_BATCH_SIZE)."""


@click.group(
    epilog=EXIT_CODES_HELP,
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
        "auto_envvar_prefix": "ROLLOUT",
        "show_default": True,
    },
)
@click.version_option(version=__version__, prog_name="rollout", message="%(prog)s %(version)s")
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
@click.option(
    "--operator",
    default=None,
    help="Who runs the command, for the run history (default: $SUDO_USER, else you).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    database_url: str,
    plan_path: Path | None,
    log_format: str | None,
    verbose: int,
    quiet: bool,
    operator: str | None,
) -> None:
    """Move legacy per-user projects into Organizations, progressively, in waves.

    Shell completion: eval "$(_ROLLOUT_COMPLETE=bash_source rollout)" (zsh_source, fish_source).
    """
    logs.configure(log_format, -1 if quiet else min(verbose, 1))
    run_id = new_run_id()
    logs.bind(run_id, None)
    ctx.obj = Options(
        database_url,
        plan_path or DEFAULT_PLAN,
        plan_path is not None,
        run_id,
        verbose > 0,
        operator or default_operator(),
    )


def name_environment(command: click.Command, prefix: str = "ROLLOUT") -> None:
    """Gives every option without one its environment variable, named after its flag:
    ROLLOUT_<OPTION> for the group's, ROLLOUT_<COMMAND>_<OPTION> for a command's (click would
    name them after the Python parameter, e.g. ROLLOUT_STATUS_FMT for `status --format`)."""
    for param in command.params:
        if isinstance(param, click.Option) and not param.envvar and param.name not in ("help", "version"):
            flag = max((o for o in param.opts if o.startswith("--")), key=len)
            param.envvar = f"{prefix}_{flag[2:].upper().replace('-', '_')}"
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            name_environment(sub, f"{prefix}_{name.upper().replace('-', '_')}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: every error is one line on stderr with its exit code; tracebacks with -v."""
    ctx: click.Context | None = None
    instruction = os.environ.get(COMPLETE_VAR)
    if instruction:
        sys.exit(shell_complete(cli, {}, "rollout", COMPLETE_VAR, instruction))
    try:
        with cli.make_context("rollout", list(sys.argv[1:] if argv is None else argv)) as ctx:
            code: Any = cli.invoke(ctx)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except BrokenPipeError:
        # The reader went away (`rollout plan | head`): what it wanted it got.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = exits.OK
    except click.exceptions.NoArgsIsHelpError as exc:
        # `rollout` alone: the help, on stdout, as click prints it.
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        code = exits.USAGE
    except (click.exceptions.Abort, KeyboardInterrupt):
        code = exits.INTERRUPTED
        click.echo(logs.error_line("interrupted", code), err=True)
    except click.ClickException as exc:
        code = exits.USAGE
        click.echo(logs.error_line(exc.format_message(), code), err=True)
    except RolloutError as exc:
        _traceback_if_verbose(ctx)
        code = exits.for_error(exc)
        # A pause reason, a wave or owner name may come back in the message: never raw on a terminal.
        click.echo(logs.error_line(str(exc) if logs.is_json() else printable(str(exc)), code), err=True)
    except Exception as exc:
        _traceback_if_verbose(ctx)
        code = exits.FAILED
        click.echo(
            logs.error_line(f"internal error: {describe(exc)} (run with -v for details)", code), err=True
        )
    sys.stdout.flush()
    sys.exit(code if isinstance(code, int) else exits.OK)


def _traceback_if_verbose(ctx: click.Context | None) -> None:
    if ctx is not None and isinstance(ctx.obj, Options) and ctx.obj.verbose:
        traceback.print_exc()
