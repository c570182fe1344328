"""The deployment files in `jobs/`: every command they run parses with this release's CLI (a
renamed flag must fail here, not at 3 a.m. in cron), names its plan, stops before the next
invocation is due, and runs with the least privilege the platform team asks for."""

from __future__ import annotations

import re
import shlex
import warnings
from datetime import timedelta

import click
import pytest

from rollout.cli import cli
from rollout.engine.planvalues import parse_duration
from tests.support import REPO

JOBS = REPO / "jobs"


def _parse(args: list[str]) -> dict[str, object]:
    """The options of `rollout ARGS` as click parses them (nothing runs)."""
    ctx = cli.make_context("rollout", list(args), resilient_parsing=False)
    with warnings.catch_warnings():  # click 9 moves the command into `args`
        warnings.simplefilter("ignore", DeprecationWarning)
        name, *rest = [*getattr(ctx, "protected_args", ()), *ctx.args]
    command = cli.get_command(ctx, name)
    assert command is not None, f"no command {name!r}"
    sub = command.make_context(name, rest, parent=ctx)
    return {**ctx.params, **sub.params, "command": name}


def crontab_args() -> list[str]:
    line = next(
        line for line in (JOBS / "crontab").read_text().splitlines() if line and not line.startswith("#")
    )
    words = shlex.split(line.split("/opt/rollout/bin/rollout", 1)[1].split(">>", 1)[0])
    return words


def service_args() -> list[str]:
    exec_start = re.search(r"^ExecStart=(\S+) (.*)$", (JOBS / "rollout.service").read_text(), re.M)
    assert exec_start is not None
    return shlex.split(exec_start.group(2))


def cronjob_args() -> list[str]:
    text = (JOBS / "cronjob.yaml").read_text()
    block = text.split("args:\n", 1)[1].split("env:", 1)[0]
    return [m.group(1) for m in re.finditer(r"^\s*- (\S+)\s*$", block, re.M)]


@pytest.mark.parametrize(
    ("args", "interval"),
    [
        (crontab_args, timedelta(minutes=15)),
        (service_args, timedelta(hours=1)),
        (cronjob_args, timedelta(minutes=30)),
    ],
    ids=["crontab", "systemd", "kubernetes"],
)
def test_each_deployment_runs_auto_within_its_interval(args: object, interval: timedelta) -> None:
    assert callable(args)
    params = _parse(args())
    assert params["command"] == "run" and params["auto"] is True
    assert params["log_format"] == "json"
    assert params["metrics_file"] or params["metrics_push"]
    budget = params["time_budget"]
    assert isinstance(budget, timedelta) and budget < interval


def test_a_renamed_flag_would_fail_this_check() -> None:
    with pytest.raises(click.NoSuchOption):
        _parse(["run", "--auto", "--time-limit", "5m"])


def test_systemd_stops_a_stuck_run_after_its_budget_and_takes_exit_3_as_success() -> None:
    service = (JOBS / "rollout.service").read_text()
    runtime = re.search(r"^RuntimeMaxSec=(\S+)$", service, re.M)
    assert runtime is not None
    budget = _parse(service_args())["time_budget"]
    # systemd writes minutes as `min`.
    assert isinstance(budget, timedelta) and parse_duration(runtime.group(1).replace("min", "m")) > budget
    assert re.search(r"^SuccessExitStatus=3$", service, re.M)
    assert re.search(r"^EnvironmentFile=/etc/rollout/env$", service, re.M)
    # cron treats exit 3 as systemd does: not worth a mail.
    assert "[ $rc -eq 3 ]" in (JOBS / "crontab").read_text()


def test_the_cronjob_runs_the_dockerfiles_image_without_privileges() -> None:
    cronjob = (JOBS / "cronjob.yaml").read_text()
    dockerfile = (JOBS / "Dockerfile").read_text()
    for setting in (
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        'drop: ["ALL"]',
        "concurrencyPolicy: Forbid",
        "automountServiceAccountToken: false",
    ):
        assert setting in cronjob, setting
    assert re.search(r'^\s*timeZone: "[A-Za-z/_]+"$', cronjob, re.M)
    image = re.search(r"^\s*image: (\S+)$", cronjob, re.M)
    assert image is not None and f"-t {image.group(1)} " in dockerfile
    # The plan is named (ROLLOUT_PLAN), as `run --auto` requires.
    assert re.search(r"- name: ROLLOUT_PLAN\n\s*value: /etc/rollout/waves.toml", cronjob)
    deadline = re.search(r"activeDeadlineSeconds: (\d+)", cronjob)
    budget = _parse(cronjob_args())["time_budget"]
    assert deadline is not None and isinstance(budget, timedelta)
    assert int(deadline.group(1)) > budget.total_seconds()


def test_the_image_is_multi_stage_non_root_and_pinned() -> None:
    dockerfile = (JOBS / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) == 2
    user = re.search(r"^USER (\d+)", dockerfile, re.M)
    assert user is not None and int(user.group(1)) != 0
    assert "--constraint constraints.txt" in dockerfile
    assert "--constraint constraints.txt" in (REPO / ".ci" / "run").read_text()
    pinned = [
        line
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert pinned and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==\S+", line) for line in pinned), pinned


def test_the_wave_job_runs_one_named_wave_with_indexed_pods() -> None:
    """jobs/wave-job.yaml: N pods, each a worker of the same wave (`rollout run --wave`), with the
    same plan and secret as the CronJob; a pod's failure is not retried by Kubernetes (its claim
    is taken over by the others)."""
    text = (JOBS / "wave-job.yaml").read_text()
    block = text.split("args:\n", 1)[1].split("env:", 1)[0]
    args = [m.group(1) for m in re.finditer(r"^\s*- (\S+)\s*$", block, re.M)]
    params = _parse(args)
    assert params["command"] == "run" and params["wave"] == "WAVE_NAME" and params["workers"] == 1
    assert params["log_format"] == "json" and params["metrics_push"]
    assert re.search(r"^\s*completionMode: Indexed$", text, re.M)
    completions = re.search(r"^\s*completions: (\d+)$", text, re.M)
    parallelism = re.search(r"^\s*parallelism: (\d+)$", text, re.M)
    assert completions and parallelism and completions.group(1) == parallelism.group(1)
    assert re.search(r"^\s*backoffLimit: 0$", text, re.M)
    assert "name: rollout-db" in text and "name: rollout-plan" in text


def test_systemd_signals_only_the_main_process() -> None:
    """With `--workers N` the main process passes a stop signal on once: systemd must not signal
    the workers too (a second signal aborts their batch)."""
    assert re.search(r"^KillMode=mixed$", (JOBS / "rollout.service").read_text(), re.M)
