"""Suite-wide guard: the session fails if any netprobe object outlives it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netprobe.privilege import is_root

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

pytest_plugins = ["pytester"]

_before: list[str] = []


def _inventory() -> list[str]:
    from netprobe.topology import leftovers

    return leftovers()


def pytest_sessionstart(session: pytest.Session) -> None:
    if is_root():
        _before[:] = _inventory()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not is_root() or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    left = sorted(set(_inventory()) - set(_before))
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "netprobe objects outlived the test session:\n  " + "\n  ".join(left)
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
