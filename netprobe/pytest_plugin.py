"""pytest plugin (entry point `pytest11`): topologies as fixtures, always torn down.

Fixtures
    lab     function scope. A factory: ``topo = lab.build("examples/redblue.yaml")`` builds
            a topology (a path or a Spec) that is torn down when the test ends, pass or fail.
Markers
    root    the test needs CAP_NET_ADMIN; it is skipped, saying so, without it.

Importing this module is cheap: netprobe's topology engine loads on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .topology import Spec, Topology

__all__ = ["Lab", "lab"]


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "root: needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); skipped without it"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") is not None:
        from .privilege import is_root

        if not is_root():
            pytest.skip("needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")
