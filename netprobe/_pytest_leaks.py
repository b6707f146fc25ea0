"""The pytest plugin's leak guard (``--netprobe-leak-check``, ini ``netprobe_leak_check``):
the session fails if a netprobe object made by *this* session outlives it.

The session gets an id (NETPROBE_SESSION, inherited by xdist workers and by every
netprobe process the tests start) that each run record and each process netprobe starts
carries. Labs left up with `topo up`, and the runs of other test sessions on the same
machine, are never counted; a session started from inside this one is part of it
(OUTER/INNER); objects that no record owns at all are counted (whose they were cannot
be told).
"""

from __future__ import annotations

import os
import secrets
import time

import pytest


class LeakGuard:
    """Inventory at session start and finish; what this session's runs left is a failure."""

    def __init__(self) -> None:
        from .topology._kernel.owner import SESSION_ENV

        # Set before xdist starts its workers (pytest_configure), so that they inherit it;
        # a session started from inside another is nested in it: OUTER/INNER.
        if not os.environ.get("PYTEST_XDIST_WORKER"):
            own = f"pytest-{os.getpid()}-{secrets.token_hex(3)}"
            outer = os.environ.get(SESSION_ENV)
            os.environ[SESSION_ENV] = f"{outer}/{own}" if outer else own
        self.session = os.environ[SESSION_ENV]
        self.before: set[str] = set()

    def _inventory(self) -> set[str]:
        from ._privilege import is_root
        from .topology import leftovers

        return set(leftovers(session=self.session)) if is_root() else set()

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Take the inventory the session starts with."""
        self.before = self._inventory()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Fail the session if its runs left namespaces, links or daemons behind."""
        if os.environ.get("PYTEST_XDIST_WORKER"):
            return  # the controller judges the whole session
        left = self._inventory() - self.before
        deadline = time.monotonic() + 2.0  # an ownerless object another run is tearing down
        while left and time.monotonic() < deadline:  # goes away: wait for it, not a guess
            time.sleep(0.05)
            left &= self._inventory()
        if not left:
            return
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "netprobe objects outlived the test session:\n  " + "\n  ".join(sorted(left))
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
