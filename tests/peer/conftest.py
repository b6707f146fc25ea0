"""The network of the kernel's NAT selftest (tools/testing/selftests/net/netfilter/nft_nat.sh),
re-expressed for netprobe: a router ns0 between two hosts.

    ns1 eth0 ─── veth0 [ns0] veth1 ─── eth0 ns2
    10.0.1.99    10.0.1.1   10.0.2.1    10.0.2.99
    dead:1::99   dead:1::1  dead:2::1   dead:2::99

ns0 forwards per interface (`net.ipv4.conf.veth0.forwarding`, as the selftest's router
does, not `ip_forward`), and IPv6 with `conf.all.forwarding`. The network exists twice:
`lab` built by netprobe from a spec, and `handmade` made with plain `ip` and `sysctl`
commands, then adopted. Every scenario runs on both (the `nat` fixture): netprobe must
prove NAT as well on a network it did not build.

Each scenario loads its own nft tables with `ruleset` and removes them afterwards; the
network itself lives for the session (each of the two built once, as the selftest builds
its one), so a scenario leaves no state behind that another would meet.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from support.handmade import Handmade
from support.shadow import flush_conntrack

import netprobe
from netprobe.expect import prepare
from netprobe.topology import Topology

pytestmark = pytest.mark.root

ROUTER, CLIENT1, CLIENT2 = "ns0", "ns1", "ns2"

SPEC = """
name: nft-nat
hosts:
  ns0:
    interfaces:
      veth0: {veth: ns1:eth0, addresses: [10.0.1.1/24, "dead:1::1/64"]}
      veth1: {veth: ns2:eth0, addresses: [10.0.2.1/24, "dead:2::1/64"]}
    sysctls:
      net.ipv4.conf.veth0.forwarding: 1
      net.ipv4.conf.veth1.forwarding: 1
      net.ipv6.conf.all.forwarding: 1
  ns1:
    interfaces: {eth0: {addresses: [10.0.1.99/24, "dead:1::99/64"]}}
    routes: [{to: default, via: 10.0.1.1}, {to: default6, via: "dead:1::1"}]
  ns2:
    interfaces: {eth0: {addresses: [10.0.2.99/24, "dead:2::99/64"]}}
    routes: [{to: default, via: 10.0.2.1}, {to: default6, via: "dead:2::1"}]
"""

# The same network with the commands a person (or the selftest) would type.
HANDMADE = (
    "ip link add veth0 netns {ns0} type veth peer name eth0 netns {ns1}",
    "ip link add veth1 netns {ns0} type veth peer name eth0 netns {ns2}",
    "ip netns exec {ns0} sysctl -q net.ipv4.conf.veth0.forwarding=1",
    "ip netns exec {ns0} sysctl -q net.ipv4.conf.veth1.forwarding=1",
    "ip netns exec {ns0} sysctl -q net.ipv6.conf.all.forwarding=1",
    "ip -n {ns0} addr add 10.0.1.1/24 dev veth0",
    "ip -n {ns0} addr add dead:1::1/64 dev veth0 nodad",
    "ip -n {ns0} addr add 10.0.2.1/24 dev veth1",
    "ip -n {ns0} addr add dead:2::1/64 dev veth1 nodad",
    "ip -n {ns0} link set veth0 up",
    "ip -n {ns0} link set veth1 up",
    *(
        command.format(ns="{" + ns + "}", n=n)
        for ns, n in (("ns1", 1), ("ns2", 2))
        for command in (
            "ip -n {ns} addr add 10.0.{n}.99/24 dev eth0",
            "ip -n {ns} addr add dead:{n}::99/64 dev eth0 nodad",
            "ip -n {ns} link set eth0 up",
            "ip -n {ns} route add default via 10.0.{n}.1",
            "ip -n {ns} route add default via dead:{n}::1",
        )
    ),
)


@contextlib.contextmanager
def _lab() -> Iterator[Topology]:
    with netprobe.build(netprobe.loads(SPEC)) as topo:
        yield topo


@contextlib.contextmanager
def _handmade() -> Iterator[Topology]:
    with Handmade() as made:
        made.netns(ROUTER, CLIENT1, CLIENT2)
        made.run(*HANDMADE)
        with netprobe.build(made.spec("nft-nat-handmade")) as topo:
            yield topo


@pytest.fixture(scope="session", params=["lab", "handmade"])
def nat(request: pytest.FixtureRequest) -> Iterator[Topology]:
    """The selftest's network, built by netprobe ("lab") or by hand and adopted
    ("handmade"); capture sockets opened up front so no probe pays for them."""
    with (_lab if request.param == "lab" else _handmade)() as topo:
        prepare(topo)
        yield topo


@contextlib.contextmanager
def ruleset(topo: Topology, host: str, rules: str, *tables: str) -> Iterator[None]:
    """Load nft `rules` into `host` for the scenario; delete `tables` ("ip nat") after,
    whatever happened, and forget the connections tracked meanwhile: a NAT binding
    outlives its rule, and the network outlives the scenario."""
    topo.run(host, ["nft", "-f", "-"], input=rules, check=True)
    try:
        yield
    finally:
        for table in tables:
            topo.run(host, ["nft", "delete", "table", *table.split()])
        flush_conntrack(topo, host)


@contextlib.contextmanager
def sysctl(topo: Topology, host: str, key: str, value: str) -> Iterator[None]:
    """Set `key` in `host` for the scenario (a sabotage), restoring it after."""
    before = topo.sysctl(host, key)
    topo.run(host, ["sysctl", "-q", f"{key}={value}"], check=True)
    try:
        yield
    finally:
        if before is not None:
            topo.run(host, ["sysctl", "-q", f"{key}={before}"], check=True)
