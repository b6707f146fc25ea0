"""Where an expectation's pcaps go when nobody said where (`assert_passed`).

$NETPROBE_EVIDENCE names a directory to keep them in (the pytest plugin sets it to the
test's report folder). Without it they go to one temporary directory of this process,
removed when the process exits, so nothing is left behind in /tmp.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

ENV = "NETPROBE_EVIDENCE"

_scratch: dict[int, str] = {}  # pid → this process's temporary directory


def new_dir() -> str:
    """A fresh directory for one outcome's pcaps."""
    chosen = os.environ.get(ENV)
    if chosen:
        os.makedirs(chosen, exist_ok=True)
        return tempfile.mkdtemp(prefix="evidence-", dir=chosen)
    return tempfile.mkdtemp(prefix="outcome-", dir=_scratch_dir())


def is_temporary(path: str) -> bool:
    """Whether `path` is in the directory removed when this process exits."""
    scratch = _scratch.get(os.getpid())
    return scratch is not None and path.startswith(scratch + os.sep)


def _scratch_dir() -> str:
    pid = os.getpid()
    if pid not in _scratch:  # a forked child makes its own: never removes its parent's
        _scratch[pid] = tempfile.mkdtemp(prefix="netprobe-evidence-")
        atexit.register(_remove, pid)
    return _scratch[pid]


def _remove(pid: int) -> None:
    if os.getpid() == pid and pid in _scratch:
        shutil.rmtree(_scratch.pop(pid), ignore_errors=True)


def discard() -> None:
    """Remove this process's temporary directory now: for a process that ends without
    running its exit handlers (a forked worker's os._exit)."""
    _remove(os.getpid())
