"""The `rollout` command: parse, call one operation, render, pick the exit code.

Importing the command modules registers them on the group.
"""

from rollout.cli import demo, inspect, manage, migrate
from rollout.cli.app import cli, main, name_environment

name_environment(cli)

__all__ = ["cli", "demo", "inspect", "main", "manage", "migrate"]
