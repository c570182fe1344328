"""Where a timed run spent its CPU: in the job's processes (the client) or in the database server.

The client's is what the bench's children used (`RUSAGE_CHILDREN`: the `rollout` command and, once
reaped, its workers) plus the bench's own. The server's is read from /proc when PostgreSQL runs on
this host: every process the postmaster started, the live ones (`utime + stime`) and the ended ones,
whose times the postmaster collected when it reaped them (`cutime + cstime`); the postmaster is the
parent of the bench's own backend. Everything the server does meanwhile counts: its background
processes (WAL writer, checkpointer, autovacuum, the run's own and any left by the step before) and
any other client of the same server, so the figure is an upper bound of the run's own cost. On a
remote server, `server` is None.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Cpu:
    client: float
    server: float | None

    def __sub__(self, before: Cpu) -> Cpu:
        server = None if self.server is None or before.server is None else self.server - before.server
        return Cpu(self.client - before.client, server)


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 onwards), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def postmaster_pid(admin: Engine) -> int | None:
    """The local postmaster's pid, or None when the server is not on this host: the parent of
    this session's backend, if its working directory is the server's data directory."""
    with admin.connect() as conn:
        backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        data_directory = conn.execute(
            text("SELECT setting FROM pg_settings WHERE name = 'data_directory'")  # hidden unless privileged
        ).scalar_one_or_none()
        fields = _stat(backend)
        if fields is None or data_directory is None:
            return None
        postmaster = int(fields[1])  # ppid
        try:
            local = Path(f"/proc/{postmaster}/cwd").resolve() == Path(data_directory).resolve()
        except OSError:
            return None
        return postmaster if local else None


def server_seconds(postmaster: int | None) -> float | None:
    """CPU seconds used so far by the server's processes, the ended ones included."""
    if postmaster is None:
        return None
    while True:  # a child reaped during the scan would count nowhere: scan again
        reaped = _reaped_ticks(postmaster)
        if reaped is None:
            return None
        live = 0
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                fields = _stat(int(entry.name))
                if fields is not None and int(fields[1]) == postmaster:
                    live += int(fields[11]) + int(fields[12])  # utime, stime
        if _reaped_ticks(postmaster) == reaped:
            return (reaped + live) / _TICKS


def _reaped_ticks(postmaster: int) -> int | None:
    own = _stat(postmaster)
    return None if own is None else int(own[13]) + int(own[14])  # cutime, cstime


def now(postmaster: int | None) -> Cpu:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    client = children.ru_utime + children.ru_stime + own.ru_utime + own.ru_stime
    return Cpu(client, server_seconds(postmaster))


def describe(used: Cpu, yardstick_s: float) -> str:
    """`CPU: client 12.3 s, database server 25.1 s (2.04 x the yardstick's wall time)`."""
    if used.server is None:
        return f"CPU: client {used.client:.1f} s, database server not measurable (not on this host)"
    return (
        f"CPU: client {used.client:.1f} s, database server {used.server:.1f} s"
        f" ({used.server / yardstick_s:.2f} x the yardstick's wall time)"
    )
