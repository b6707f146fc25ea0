"""The kernel is the truth: a topology answers from the live state, not its spec."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from netprobe.topology import Host, Interface, Port, Spec, Topology, Veth, build

pytestmark = pytest.mark.root


@pytest.fixture
def pair() -> Iterator[Topology]:
    spec = Spec("livestate", (
        Host("a", (Interface("e0", Veth("b:e0"), ("10.61.0.1/24",)),)),
        Host("b", (Interface("e0", None, ("10.61.0.2/24",)),)),
    ))
    with build(spec) as topo:
        yield topo


def _ip(topo: Topology, host: str, *argv: str) -> None:
    subprocess.run(["ip", "-n", topo.namespace(host) or "", *argv], check=True)


def test_changes_made_behind_its_back_are_seen(pair: Topology) -> None:
    _ip(pair, "a", "addr", "add", "10.62.0.1/24", "dev", "e0")
    _ip(pair, "a", "route", "add", "10.63.0.0/24", "via", "10.62.0.9")
    _ip(pair, "a", "neigh", "add", "10.61.0.2", "lladdr", "02:00:00:00:00:99", "dev", "e0",
        "nud", "permanent")
    _ip(pair, "b", "link", "add", "br9", "type", "bridge")
    _ip(pair, "b", "link", "set", "e0", "master", "br9")
    a, b = pair.live("a"), pair.live("b")
    assert [str(x) for x in a.interface("e0").addresses if x.version == 4] == [  # type: ignore[union-attr]
        "10.61.0.1/24", "10.62.0.1/24"
    ]
    assert "10.63.0.0/24 via 10.62.0.9 dev e0" in [str(r) for r in a.routes]
    entry = a.neighbour("10.61.0.2")
    assert entry is not None and (entry.mac, entry.state) == ("02:00:00:00:00:99", "permanent")
    assert b.interface("e0").master == "br9"  # type: ignore[union-attr]
    assert [i.name for i in b.ports_of("br9")] == ["e0"]
    assert pair.holder("10.62.0.1") == Port("a", "e0")
    assert pair.holder("10.99.0.1") is None


def test_veth_peers_are_paired_by_the_kernel(pair: Topology) -> None:
    assert pair.peer("a:e0") == Port("b", "e0")
    assert pair.peer("b:e0") == Port("a", "e0")
    assert pair.peer("a:lo") is None


def test_route_and_sysctl_come_from_the_kernel(pair: Topology) -> None:
    route = pair.route_to("a", "10.61.0.2")
    assert route is not None and route.dev == "e0" and route.src == "10.61.0.1"
    assert pair.route_to("a", "192.0.2.1") is None  # no default route: unreachable
    assert pair.sysctl("a", "net.ipv4.ip_forward") == "0"
    _ip(pair, "a", "link", "set", "e0", "mtu", "1400")
    assert pair.live("a").interface("e0").mtu == 1400  # type: ignore[union-attr]
    assert pair.sysctl("a", "net.ipv4.no_such_key") is None
