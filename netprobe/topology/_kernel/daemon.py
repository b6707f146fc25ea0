"""Long-running helper processes a topology starts inside a host (the OVS daemons).

Each is started inside its host's namespace and noted in the run's record at once (pid,
start time, and the private directory its command line names), so that `netprobe clean`
can stop the daemons of a killed run. A pid is acted on only while it still names the
same process: same start time, and the private directory in its command line; a recycled
pid is left alone.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import netns, process
from .owner import process_start_time


class Daemon:
    """A daemon this process started: its Popen, and its entry for the run record."""

    def __init__(self, proc: subprocess.Popen[bytes], entry: dict[str, Any]) -> None:
        self.proc = proc
        self.entry = entry

    @property
    def name(self) -> str:
        """The daemon's name in the run record."""
        return str(self.entry["name"])

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc.poll() is None


def start(
    ns: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    host: str,
    directory: str,
    runid: str,
    outlive: bool = False,
    output: str | None = None,
) -> Daemon:
    """Start `argv` inside namespace `ns`, in a session of its own (a Ctrl-C meant for
    netprobe does not reach it: teardown stops it in order). It dies with this process
    unless it is to `outlive` it (a topology left up). `output`: a file its stdout and
    stderr are appended to (else they go nowhere)."""
    sink = open(output, "ab") if output else None  # noqa: SIM115 (the child keeps it)
    try:
        proc = process.popen(
            netns.exec_argv(ns, list(argv)),
            runid=runid,
            env={**os.environ, **env},
            outlive=outlive,
            stdin=subprocess.DEVNULL,
            stdout=sink or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if sink else subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        if sink is not None:
            sink.close()
    entry = {
        "host": host,
        "name": os.path.basename(argv[0]),
        "pid": proc.pid,
        "start_time": process_start_time(proc.pid),
        "dir": directory,
    }
    return Daemon(proc, entry)


def stop(daemons: Iterable[Daemon]) -> list[str]:
    """Stop daemons this process started, last started first; returns problems."""
    problems = []
    for daemon in reversed(list(daemons)):
        if daemon.proc.poll() is not None:
            continue
        daemon.proc.terminate()
        try:
            daemon.proc.wait(process.TERM_WAIT)
        except subprocess.TimeoutExpired:
            daemon.proc.kill()
            try:
                daemon.proc.wait(process.TERM_WAIT)
            except subprocess.TimeoutExpired:
                problems.append(f"{daemon.name} (pid {daemon.proc.pid}) did not exit")
    return problems


def is_ours(pid: int, start_time: int | None, directory: str) -> bool:
    """True while `pid` is the process recorded: same start time (if recorded) and its
    command line names `directory`."""
    if start_time is not None and process_start_time(pid) != start_time:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as src:
            cmdline = src.read().decode(errors="replace")
    except OSError:
        return False
    return directory in cmdline.replace("\0", " ")


def stop_recorded(entries: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """Stop recorded daemons that are not this process's children (a killed run's):
    (what was stopped, problems)."""
    chosen: dict[int, str] = {}
    for entry in entries:
        pid = int(entry["pid"])
        if pid not in chosen and is_ours(pid, entry.get("start_time"), str(entry["dir"])):
            chosen[pid] = str(entry.get("name", "daemon"))
    return process.stop(chosen)
