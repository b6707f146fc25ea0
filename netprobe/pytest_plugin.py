"""pytest plugin (entry point `pytest11`): topologies as fixtures, always torn down.

Fixtures
    lab             function scope. A factory: ``topo = lab.build("examples/redblue.yaml")``
                    builds a topology (a path or a Spec), torn down when the test ends.
    netprobe_check  function scope. Runs a named check and returns its Result:
                    ``netprobe_check("nat").assert_passed()``, or on a topology of the test:
                    ``netprobe_check("veth", topo, a="x:eth0", b="y:eth0")``. A check that
                    fails leaves a bug-report bundle; its path is in the failure message.
Options
    --netprobe-bundles DIR        where failing checks write bundles (ini: netprobe_bundles;
                                  default: netprobe-reports under pytest's temporary
                                  directory, one per xdist worker).
    --netprobe-leak-check         fail the session if a netprobe object one of its own runs
                                  made outlives it (ini: netprobe_leak_check = true); labs
                                  and other sessions' runs on the machine are not counted.
    --netprobe-kernel PATH|auto   the kernel a VM tier boots for checks this machine's kernel
                                  cannot run; the `netprobe_kernel` fixture (session) gives
                                  it to tests that call netprobe.vm.run_checks_in_vm, and
                                  skips them without it.
Markers
    root                          needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
    netprobe_requires(*names)     needs these kernel features or tools (names as in
                                  `netprobe doctor`); skipped with the reason and remedy.

Importing this module is cheap: netprobe's topology engine loads on first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .check import Result
    from .topology import Spec, Topology

__all__ = ["Lab", "lab", "netprobe_check", "netprobe_kernel"]


class Lab:
    """Builds topologies for one test and tears all of them down afterwards."""

    def __init__(self) -> None:
        self._live: list[Topology] = []

    def build(self, spec: Spec | str | os.PathLike[str]) -> Topology:
        from .topology import build, load

        if isinstance(spec, (str, os.PathLike)):
            spec = load(spec)
        topo = build(spec)
        self._live.append(topo)
        return topo

    def teardown(self) -> None:
        while self._live:
            self._live.pop().teardown()


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A topology factory whose topologies are removed when the test ends."""
    from .privilege import is_root

    if not is_root():
        pytest.skip("netprobe needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to build topologies")
    factory = Lab()
    try:
        yield factory
    finally:
        factory.teardown()


@pytest.fixture
def netprobe_check(
    lab: Lab, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Result]:
    """Run a registered check (its reference topology unless one is given)."""
    from .check import run_check

    directory = _bundle_dir(request.config, tmp_path_factory)

    def run(name: str, topology: Any = None, **params: Any) -> Result:
        return run_check(name, topology, bundle_dir=directory, **params)

    return run


@pytest.fixture(scope="session")
def netprobe_kernel(request: pytest.FixtureRequest) -> Path:
    """The kernel image given with --netprobe-kernel (auto: the newest Debian kernel in
    /boot), for tests that run checks in a VM with netprobe.vm; skips without it."""
    chosen = request.config.getoption("netprobe_kernel")
    if not chosen:
        pytest.skip("needs a full kernel: run pytest with --netprobe-kernel PATH|auto")
    from .vm import find_kernel

    return find_kernel() if chosen == "auto" else Path(chosen)


def _bundle_dir(config: pytest.Config, factory: pytest.TempPathFactory) -> str:
    chosen = config.getoption("netprobe_bundles") or config.getini("netprobe_bundles")
    if chosen:
        return os.path.join(str(config.rootpath), str(chosen))
    return str(factory.getbasetemp() / "netprobe-reports")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netprobe")
    group.addoption(
        "--netprobe-bundles",
        dest="netprobe_bundles",
        metavar="DIR",
        help="where failing netprobe checks write their bug-report bundles",
    )
    parser.addini("netprobe_bundles", "where failing netprobe checks write bundles", default="")
    group.addoption(
        "--netprobe-leak-check",
        dest="netprobe_leak_check",
        action="store_true",
        help="fail the session if a netprobe object made by one of its runs outlives it",
    )
    parser.addini(
        "netprobe_leak_check", "fail the session on netprobe leftovers", type="bool", default=False
    )
    group.addoption(
        "--netprobe-kernel",
        dest="netprobe_kernel",
        metavar="PATH|auto",
        help="run tests that need a full kernel in a VM booted from this kernel image "
        "(auto: the newest Debian kernel in /boot)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("netprobe_leak_check") or config.getini("netprobe_leak_check"):
        from .pytest_leaks import LeakGuard

        config.pluginmanager.register(LeakGuard(), "netprobe-leak-guard")
    config.addinivalue_line(
        "markers", "root: needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); skipped without it"
    )
    config.addinivalue_line(
        "markers",
        "netprobe_requires(*names): needs these kernel features or tools "
        "(as netprobe doctor names them); skipped, with the reason, without them",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    required = [n for m in item.iter_markers("netprobe_requires") for n in m.args]
    if required:
        from .capabilities import probe

        missing = [c for c in probe(required) if not c.present]
        if missing:
            pytest.skip(
                "; ".join(f"needs {c.name}: {c.detail} (remedy: {c.remedy})" for c in missing)
            )
    if item.get_closest_marker("root") is not None:
        from .privilege import is_root

        if not is_root():
            pytest.skip("needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")
