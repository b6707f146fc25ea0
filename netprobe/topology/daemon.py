"""Long-running helper processes a topology starts inside a host (the OVS daemons).

Each is started inside its host's namespace and noted in the run's record at once (pid,
start time, and the private directory its command line names), so that `netprobe clean`
can stop the daemons of a killed run. A pid is acted on only while it still names the
same process: same start time, and the private directory in its command line; a recycled
pid is left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .owner import process_start_time

__all__ = ["Daemon", "is_ours", "start", "stop", "stop_recorded"]

_TERM_WAIT = 2.0  # seconds a daemon gets to exit on SIGTERM before SIGKILL


class Daemon:
    """A daemon this process started: its Popen, and its entry for the run record."""

    def __init__(self, proc: subprocess.Popen[bytes], entry: dict[str, Any]) -> None:
        self.proc = proc
        self.entry = entry

    @property
    def name(self) -> str:
        return str(self.entry["name"])

    def running(self) -> bool:
        return self.proc.poll() is None


def start(
    ns: str, argv: Sequence[str], *, env: Mapping[str, str], host: str, directory: str
) -> Daemon:
    """Start `argv` inside namespace `ns`, in a session of its own (a Ctrl-C meant for
    netprobe does not reach it: teardown stops it in order)."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, *argv],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
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
            daemon.proc.wait(_TERM_WAIT)
        except subprocess.TimeoutExpired:
            daemon.proc.kill()
            try:
                daemon.proc.wait(_TERM_WAIT)
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
    targets = list(chosen.items())
    for pid, _name in targets:
        _signal(pid, signal.SIGTERM)
    stopped, problems = [], []
    for pid, name in targets:
        if not _wait_gone(pid, _TERM_WAIT):
            _signal(pid, signal.SIGKILL)
            if not _wait_gone(pid, _TERM_WAIT):
                problems.append(f"{name} (pid {pid}) did not exit")
                continue
        stopped.append(f"{name} (pid {pid})")
    return stopped, problems


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait until `pid` has exited (gone, or a zombie its new parent has yet to reap)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/stat", "rb") as src:
                state = src.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in (b"Z", b"X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
