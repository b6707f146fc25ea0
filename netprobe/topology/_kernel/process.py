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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .owner import SESSION_ENV, process_start_time

RUN_ENV = "NETPROBE_RUN"
_RUN_MARK = f"{RUN_ENV}=".encode()
_SESSION_MARK = f"{SESSION_ENV}=".encode()
_PR_SET_PDEATHSIG = 1
TERM_WAIT = 2.0  # seconds a process gets to exit on SIGTERM before SIGKILL
WORKER_GRACE = 20.0  # a check's worker gets more: it tears its topology down first
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


def popen_group(
    argv: Sequence[str], *, runid: str, env: Mapping[str, str] | None = None, **options: Any
) -> subprocess.Popen[Any]:
    """`popen` for a program whose children must die with this process too (vng starts
    qemu, which a death signal set on vng alone would orphan): a shell leads a process
    group of its own, and passes the death signal on to the whole group."""
    guard = 'trap "trap - TERM; kill -TERM 0" TERM; "$@" & wait $!'
    return popen(
        ["sh", "-c", guard, "netprobe-group", *argv],
        runid=runid,
        env=env,
        start_new_session=True,
        **options,
    )


def run(
    argv: Sequence[str], *, runid: str, env: Mapping[str, str] | None = None, **options: Any
) -> subprocess.CompletedProcess[Any]:
    """subprocess.run for a short command of run `runid` (same marks as `popen`)."""
    return subprocess.run(
        _marked(argv, signal.SIGKILL), env=_tagged_env(runid, env), **options
    )


def tagged(runid: str) -> list[int]:
    """The processes whose environment says they belong to run `runid`."""
    mark = _RUN_MARK + runid.encode()
    return [pid for pid, variables in _environments() if mark in variables]


def _environments() -> Iterator[tuple[int, list[bytes]]]:
    """Every other process's environment, as its variables."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as src:
                yield int(entry), src.read().split(b"\0")
        except OSError:
            continue  # gone, or a kernel thread


def tagged_in_session(session: str) -> list[tuple[int, str]]:
    """(pid, run id) of every tagged process started in `session` (NETPROBE_SESSION, or
    a session nested in it), whatever its run."""
    found = []
    for pid, variables in _environments():
        run = next((v for v in variables if v.startswith(_RUN_MARK)), None)
        sessions = [v for v in variables if v.startswith(_SESSION_MARK)]
        if run is None or not sessions:
            continue
        value = sessions[0][len(_SESSION_MARK) :].decode(errors="replace")
        if value == session or value.startswith(session + "/"):
            found.append((pid, run[len(_RUN_MARK) :].decode(errors="replace")))
    return found


def stop_tagged(runid: str) -> tuple[list[str], list[str]]:
    """Stop every process tagged with `runid`: (what was stopped, problems)."""
    entries = [
        {"pid": pid, "start_time": process_start_time(pid), "name": _name(pid)}
        for pid in tagged(runid)
    ]
    return stop_recorded(e for e in entries if e["start_time"] is not None)


def stop_recorded(
    entries: Iterable[Mapping[str, Any]], *, grace: float = TERM_WAIT
) -> tuple[list[str], list[str]]:
    """Stop recorded processes that still are what was recorded (same pid and start
    time): SIGTERM, then SIGKILL to what lingers after `grace` s: (stopped, problems)."""
    targets: dict[int, str] = {}
    for entry in entries:
        pid, start = int(entry["pid"]), entry.get("start_time")
        if start is not None and process_start_time(pid) == start:
            targets.setdefault(pid, str(entry.get("name", "process")))
    return stop(targets, grace=grace)


def stop(targets: Mapping[int, str], *, grace: float = TERM_WAIT) -> tuple[list[str], list[str]]:
    """SIGTERM each pid, wait up to `grace` s, SIGKILL what lingers: (stopped, problems).
    Signals go through a pidfd taken first, so a pid reused meanwhile is never hit."""
    handles = {pid: _pidfd(pid) for pid in targets}
    try:
        for fd in handles.values():
            _signal(fd, signal.SIGTERM)
        deadline = time.monotonic() + grace
        stopped, problems = [], []
        for pid, name in targets.items():
            fd = handles[pid]
            if not _wait_gone(pid, deadline - time.monotonic()):
                _signal(fd, signal.SIGKILL)
                if not _wait_gone(pid, TERM_WAIT):
                    problems.append(f"{name} (pid {pid}) did not exit")
                    continue
            stopped.append(f"{name} (pid {pid})")
        return stopped, problems
    finally:
        for fd in handles.values():
            if fd is not None:
                os.close(fd)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except OSError:  # gone already
        return None


def _signal(fd: int | None, sig: int) -> None:
    if fd is not None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(fd, sig)


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as src:
            return src.read().strip()
    except OSError:
        return "process"


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait until `pid` has exited (gone, or a zombie its parent has yet to reap)."""
    deadline = time.monotonic() + max(timeout, 0)
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
