"""What the CLI writes besides stdout: a report or a metrics file, checked before any work is done,
and metrics pushed to a Pushgateway."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path
from urllib.parse import urlsplit

import click
import structlog
from sqlalchemy import Engine

from rollout.engine.waveplan import WavePlan
from rollout.errors import RolloutError, UsageError
from rollout.operations import metrics
from rollout.operations import run as running
from rollout.render.metrics import push_metrics, write_metrics

log = structlog.get_logger("rollout.cli")


def writable(path: Path | None, what: str) -> Path | None:
    """`path` if a file can be written there (a temporary file is created and removed beside it),
    else one `UsageError` (exit 2) before anything else happens."""
    if path is None:
        return None
    if path.is_dir():
        raise UsageError(f"cannot write the {what} to {path}: it is a directory")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write the {what} to {path}: {folder} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".check"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write the {what} to {path}: {exc.strerror or exc}") from None
    return path


METRICS_FILE = click.option(
    "--metrics-file", type=click.Path(path_type=Path, dir_okay=False), help="Prometheus textfile to write."
)


def _gateway(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A click callback: a Pushgateway address (`http(s)://host:port`, or `host:port`) that can be
    used, checked before any work."""
    if value is None:
        return None
    parts = urlsplit(value if "://" in value else f"http://{value}")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise click.BadParameter(f"{value!r}: the port is not a number") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise click.BadParameter(f"{value!r} is not a Pushgateway address like http://pushgateway:9091")
    return value


METRICS_PUSH = click.option(
    "--metrics-push",
    metavar="URL",
    callback=_gateway,
    help="Prometheus Pushgateway to push the metrics to (grouped by job and wave): where no textfile collector runs.",
)


class Metrics:
    """Where a command's metrics go: a textfile, a Pushgateway, both or neither."""

    def __init__(self, engine: Engine, plan: WavePlan, path: Path | None, push: str | None) -> None:
        self.engine, self.plan, self.path, self.push = engine, plan, path, push

    def after(self, work: Callable[[], running.RunResult]) -> running.RunResult:
        """Runs `work` and writes the metrics after it; also when it was refused or halted (paused,
        lease held, error budget spent), which is what monitoring most needs to see."""
        try:
            result = work()
        except RolloutError:
            self.write(None)
            raise
        self.write(result)
        return result

    def write(self, result: running.RunResult | None) -> None:
        if self.path is None and self.push is None:
            return
        try:
            snapshot = metrics.snapshot(self.engine, self.plan, result)
            if self.path is not None:
                write_metrics(self.path, snapshot)
            if self.push is not None:
                push_metrics(self.push, snapshot, [w.name for w in self.plan.waves])
        except (RolloutError, OSError, ValueError, HTTPException) as exc:
            # The work is done and recorded: metrics that cannot be written are a warning.
            log.warning("metrics.unwritten", path=str(self.path), push=self.push, error=str(exc))
