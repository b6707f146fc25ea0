"""pytest plugin (entry point `pytest11`): topologies as fixtures, always torn down.

Fixtures
    lab             function scope. A factory: ``topo = lab.build("examples/redblue.yaml")``
                    builds a topology (a path or a Spec), torn down when the test ends.
                    A relative path is looked up beside the test file first, then in
                    the current directory.
    netprobe_check  function scope. Runs a named check and returns its Result:
                    ``netprobe_check("nat").assert_passed()``, or on a topology of the test:
                    ``netprobe_check("veth", topo, a="x:eth0", b="y:eth0")``. A check that
                    fails leaves a bug-report bundle; its path is in the failure message.
Options
    --netprobe-bundles DIR        where failing checks write bundles (ini: netprobe_bundles;
                                  relative to the rootdir; default: netprobe-reports in the
                                  rootdir, kept across sessions). Each test's bundles, and
                                  the pcaps of its failed expectations, go in a folder named
                                  after its test id: DIR/test_gw.py--test_nat/nat-….
    --netprobe-leak-check         fail the session if a netprobe object one of its own runs
                                  made outlives it (ini: netprobe_leak_check = true); labs
                                  and other sessions' runs on the machine are not counted.
    --netprobe-no-explain         do not explain failing expectations (ini: netprobe_explain
                                  = false). By default, an expectation (`expect`,
                                  `expect_from_host`) that FAILs when asserted is explained
                                  there and then, while its network stands; the ranked
                                  causes go in the failure report, section "netprobe
                                  explanation" (at most 3 failures a test).
    --netprobe-kernel PATH|auto   the kernel a VM tier boots for checks this machine's kernel
                                  cannot run; the `netprobe_kernel` fixture (session) gives
                                  it to tests that call netprobe.vm.run_checks_in_vm, and
                                  skips them without it.
Markers
    root                          needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
    netprobe_requires(*names)     needs these kernel features or tools (names as in
                                  `netprobe doctor`); skipped with the reason and remedy.
                                  An unknown name is an error of the test (at setup, as
                                  for a bad skipif) that lists the known names.
Skips are reported at the test's own location.

Importing this module is cheap: netprobe's topology engine loads on first use.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .check import Result
    from .topology import Spec, Topology

__all__ = ["Lab", "lab", "netprobe_check", "netprobe_kernel"]

_EXPLAINER = "netprobe-explainer"
_EVIDENCE = "NETPROBE_EVIDENCE"  # netprobe.expect._evidence.ENV, without importing it


class Lab:
    """Builds topologies for one test and tears all of them down afterwards."""

    def __init__(self, base: str | os.PathLike[str] | None = None) -> None:
        self._live: list[Topology] = []
        self._base = Path(base) if base is not None else None  # the test file's directory

    def build(self, spec: Spec | str | os.PathLike[str]) -> Topology:
        """Build `spec` (a Spec or a file: relative, beside the test file, else the cwd)."""
        from .topology import as_spec, build

        if isinstance(spec, (str, os.PathLike)):
            spec = self.path(spec)  # where a relative file is: the lab's own concern
        topo = build(as_spec(spec))
        self._live.append(topo)
        return topo

    def path(self, file: str | os.PathLike[str]) -> Path:
        """Where a topology file named `file` is: as given if absolute; else beside the
        test file if it is there, else in the current directory."""
        given = Path(file)
        if self._base is not None and not given.is_absolute() and (self._base / given).exists():
            return self._base / given
        return given

    def teardown(self) -> None:
        """Tear down every topology the lab made, the newest first."""
        while self._live:
            self._live.pop().teardown()


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A topology factory whose topologies are removed when the test ends; relative
    paths are looked up beside the test file first, then in the current directory."""
    from ._privilege import is_root

    if not is_root():
        _skip("netprobe needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to build topologies")
    factory = Lab(request.path.parent)
    try:
        yield factory
    finally:
        factory.teardown()


@pytest.fixture
def netprobe_check(lab: Lab, request: pytest.FixtureRequest) -> Callable[..., Result]:
    """Run a registered check (its reference topology unless one is given; a relative
    file as `lab` finds it). A failure's bundle goes in the test's report folder."""
    from .bundle import run_check

    directory = _test_folder(request.node)

    def run(name: str, topology: Any = None, **params: Any) -> Result:
        if isinstance(topology, (str, os.PathLike)):
            topology = lab.path(topology)
        return run_check(name, topology, bundle_dir=directory, **params)

    return run


@pytest.fixture(scope="session")
def netprobe_kernel(request: pytest.FixtureRequest) -> Path:
    """The kernel image given with --netprobe-kernel (auto: the newest Debian kernel in
    /boot), for tests that run checks in a VM with netprobe.vm; skips without it."""
    chosen = request.config.getoption("netprobe_kernel")
    if not chosen:
        _skip("needs a full kernel: run pytest with --netprobe-kernel PATH|auto")
    from .vm import find_kernel

    return find_kernel() if chosen == "auto" else Path(chosen)


def _skip(reason: str) -> None:
    """Skip the running test, reported at the test's location rather than this file's
    (pytest's own skip markers report theirs the same way)."""
    raise pytest.skip.Exception(reason, _use_item_location=True)


def _bundles(config: pytest.Config) -> Path:
    chosen = config.getoption("netprobe_bundles") or config.getini("netprobe_bundles")
    return config.rootpath / str(chosen or "netprobe-reports")


def _test_folder(item: pytest.Item) -> str:
    """The test's own report folder, named after its id (made when first written)."""
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", item.nodeid.replace("::", "--")).strip("_")
    return str(_bundles(item.config) / name[:160])


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add netprobe's command-line options and ini settings."""
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
        "--netprobe-no-explain",
        dest="netprobe_no_explain",
        action="store_true",
        help="do not explain failing expectations in the failure report",
    )
    parser.addini(
        "netprobe_explain", "explain failing expectations in reports", type="bool", default=True
    )
    group.addoption(
        "--netprobe-kernel",
        dest="netprobe_kernel",
        metavar="PATH|auto",
        help="run tests that need a full kernel in a VM booted from this kernel image "
        "(auto: the newest Debian kernel in /boot)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the leak guard when asked, the explainer unless told not to, and
    netprobe's markers."""
    if config.getoption("netprobe_leak_check") or config.getini("netprobe_leak_check"):
        from ._pytest_leaks import LeakGuard

        config.pluginmanager.register(LeakGuard(), "netprobe-leak-guard")
    if not config.getoption("netprobe_no_explain") and config.getini("netprobe_explain"):
        from ._pytest_explain import Explainer

        config.pluginmanager.register(Explainer(), _EXPLAINER)
    config.addinivalue_line(
        "markers", "root: needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); skipped without it"
    )
    config.addinivalue_line(
        "markers",
        "netprobe_requires(*names): needs these kernel features or tools "
        "(as netprobe doctor names them); skipped, with the reason, without them",
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop explaining: the failure hook goes with the session."""
    explainer = config.pluginmanager.get_plugin(_EXPLAINER)
    if explainer is not None:
        explainer.close()
        config.pluginmanager.unregister(explainer)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """The pcaps of an expectation the test asserts go in the test's report folder."""
    before = os.environ.get(_EVIDENCE)
    os.environ[_EVIDENCE] = _test_folder(item)
    try:
        return (yield)
    finally:
        if before is None:
            del os.environ[_EVIDENCE]
        else:
            os.environ[_EVIDENCE] = before


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test needing (netprobe_requires) what this machine lacks; an unknown name fails it."""
    required = [n for m in item.iter_markers("netprobe_requires") for n in m.args]
    if required:
        from ._capabilities import KERNEL_FEATURES, TOOLS, probe, unknown

        bad = unknown(required)
        if bad:  # an error of the test, as pytest makes a skipif it cannot evaluate
            pytest.fail(
                f"usage error: netprobe_requires({', '.join(map(repr, bad))}): no such kernel "
                f"feature or tool; known: {', '.join(dict.fromkeys(KERNEL_FEATURES + TOOLS))}",
                pytrace=False,
            )
        missing = [c for c in probe(required) if not c.present]
        if missing:
            _skip("; ".join(f"needs {c.name}: {c.detail} (remedy: {c.remedy})" for c in missing))
    if item.get_closest_marker("root") is not None:
        from ._privilege import is_root

        if not is_root():
            _skip("needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")
