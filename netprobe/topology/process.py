"""Processes netprobe starts (workers, listeners, monitors, tcpdump, daemons, guests) die
with their owner, and `netprobe clean` finds any that did not.

Two marks make that so:

- PR_SET_PDEATHSIG (set by util-linux's setpriv, which then execs the command): the
  kernel signals the child when the thread that started it exits, SIGKILL of the owner
  included (so start them from a thread that lives as long as they should);
- the environment variable NETPROBE_RUN=RUNID, which everything the child starts in turn
  inherits (qemu under vng), read back by `clean` from /proc/PID/environ.

Forked workers (no exec, so no environment of their own) are listed in their run's
record instead, by pid and start time.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .owner import process_start_time

__all__ = [
    "RUN_ENV",
    "die_with_parent",
    "popen",
    "run",
    "stop",
    "stop_recorded",
    "stop_tagged",
    "tagged",
]

RUN_ENV = "NETPROBE_RUN"
_PR_SET_PDEATHSIG = 1
_TERM_WAIT = 2.0  # seconds a process gets to exit on SIGTERM before SIGKILL
_libc = ctypes.CDLL(None, use_errno=True)
_SETPRIV = shutil.which("setpriv")  # util-linux


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """In a child: ask for `sig` when the parent goes; if it has gone already (it died
    between fork and here), go now."""
    _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(128 + int(sig))


def _marked(argv: Sequence[str], sig: int) -> list[str]:
    """`argv` behind setpriv, which sets the death signal and execs it (a preexec_fn
    would make every start a full fork of this process: ~10 ms instead of ~0.5)."""
    if shutil.which(argv[0]) is None:  # as subprocess would, not as setpriv's exit 127
        raise FileNotFoundError(errno.ENOENT, f"no such program: {argv[0]!r}", argv[0])
    if _SETPRIV is None:
        return list(argv)
    return [_SETPRIV, "--pdeathsig", signal.Signals(sig).name[3:], "--", *argv]


def _tagged_env(runid: str, env: Mapping[str, str] | None) -> dict[str, str]:
    return {**(os.environ if env is None else env), RUN_ENV: runid}


def popen(
    argv: Sequence[str],
    *,
    runid: str,
    env: Mapping[str, str] | None = None,
    outlive: bool = False,
    death_signal: int = signal.SIGTERM,
    **options: Any,
) -> subprocess.Popen[Any]:
    """subprocess.Popen for a process of run `runid`: tagged, and signalled when this
    process dies unless it is meant to `outlive` it (the daemons of `topo up`)."""
    full = list(argv) if outlive else _marked(argv, death_signal)
    return subprocess.Popen(full, env=_tagged_env(runid, env), **options)


def run(
    argv: Sequence[str], *, runid: str, env: Mapping[str, str] | None = None, **options: Any
) -> subprocess.CompletedProcess[Any]:
    """subprocess.run for a short command of run `runid` (same marks as `popen`)."""
    return subprocess.run(
        _marked(argv, signal.SIGKILL), env=_tagged_env(runid, env), **options
    )


def tagged(runid: str) -> list[int]:
    """The processes whose environment says they belong to run `runid`."""
    mark = f"{RUN_ENV}={runid}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as src:
                variables = src.read().split(b"\0")
        except OSError:
            continue  # gone, or a kernel thread
        if mark in variables:
            found.append(int(entry))
    return found


def stop_tagged(runid: str) -> tuple[list[str], list[str]]:
    """Stop every process tagged with `runid`: (what was stopped, problems)."""
    entries = [
        {"pid": pid, "start_time": process_start_time(pid), "name": _name(pid)}
        for pid in tagged(runid)
    ]
    return stop_recorded(e for e in entries if e["start_time"] is not None)


def stop_recorded(entries: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """Stop recorded processes that still are what was recorded (same pid and start
    time): SIGTERM, then SIGKILL to what lingers. Returns (stopped, problems)."""
    targets: dict[int, str] = {}
    for entry in entries:
        pid, start = int(entry["pid"]), entry.get("start_time")
        if start is not None and process_start_time(pid) == start:
            targets.setdefault(pid, str(entry.get("name", "process")))
    return stop(targets)


def stop(targets: Mapping[int, str]) -> tuple[list[str], list[str]]:
    """SIGTERM each pid, wait, SIGKILL what lingers: (stopped, problems)."""
    for pid in targets:
        _signal(pid, signal.SIGTERM)
    stopped, problems = [], []
    for pid, name in targets.items():
        if not _wait_gone(pid, _TERM_WAIT):
            _signal(pid, signal.SIGKILL)
            if not _wait_gone(pid, _TERM_WAIT):
                problems.append(f"{name} (pid {pid}) did not exit")
                continue
        stopped.append(f"{name} (pid {pid})")
    return stopped, problems


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as src:
            return src.read().strip()
    except OSError:
        return "process"


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait until `pid` has exited (gone, or a zombie its parent has yet to reap)."""
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
