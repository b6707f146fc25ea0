"""The selftest's port-shadow mitigation by port remapping ("pat"): ns0 masquerades what
leaves veth0 and, for UDP from ns2 with a source port of 1405 or less, remaps that port
to one of 1406..65535 at random.

The shadow attempt: ns2 sends from port 1405 (the router's service port) to ns1:41404,
so that a later datagram ns1:41404 → router:1405 would match the reply direction of that
flow and be forwarded to ns2 instead of reaching the router's service. The selftest sees
only which socket answered; here the remapped port itself is held to 1406..65535 at
ns1, the datagram to the router must reach no port of ns2 (a barrier forwarded to ns2
behind it proves the absence) and must land in the router's own socket. Sabotaged
(without the pat table), both fail: the port stays 1405, and the router's datagram
goes to ns2.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from peer.conftest import ruleset
from support.crafted import mac_of, received, udp_listener
from support.shadow import flush_conntrack

from netprobe.expect import ROUTED, Barrier, Outcome, at, expect, nowhere
from netprobe.topology import Topology
from netprobe.traffic import udp

pytestmark = pytest.mark.root

SERVICE, HIGH = 1405, 41404
REMAPPED = range(SERVICE + 1, 65536)

MASQUERADE = """
table ip nat {
    chain postrouting {
        type nat hook postrouting priority 0; policy accept;
        oifname "veth0" masquerade
    }
}"""
PAT = f"""
table ip pat {{
    chain postrouting {{
        type nat hook postrouting priority -1; policy accept;
        iifname "veth1" udp sport <= {SERVICE} masquerade to :{REMAPPED[0]}-{REMAPPED[-1]} random
    }}
}}"""


@pytest.fixture
def masqueraded(nat: Topology) -> Iterator[Topology]:
    """The router's masquerade; conntrack flushed before and after, so no flow of
    another scenario meets this one, and none outlives it."""
    flush_conntrack(nat, "ns0")
    try:
        with ruleset(nat, "ns0", MASQUERADE, "ip nat"):
            yield nat
    finally:
        flush_conntrack(nat, "ns0")


def _shadow(topo: Topology) -> Outcome:
    """ns2 → ns1:41404 from the service port, judged at ns1 (source: the router's
    address, the port one pat may pick)."""
    frame = udp(mac_of(topo, "ns2", "eth0"), mac_of(topo, "ns0", "veth1"),
                "10.0.2.99", "10.0.1.99", sport=SERVICE, dport=HIGH)  # fmt: skip
    return expect(topo, frame, "ns2:eth0", at("ns1:eth0"),
                  match=ROUTED.rewriting(src="10.0.1.1", sport=REMAPPED))  # fmt: skip


def _to_router(topo: Topology) -> Outcome:
    """ns1:41404 → the router's service port: it must reach no port of ns2. The barrier,
    ns1 → ns2 through the router, is forwarded behind it."""
    ns1, router = mac_of(topo, "ns1", "eth0"), mac_of(topo, "ns0", "veth0")
    frame = udp(ns1, router, "10.0.1.99", "10.0.1.1", sport=HIGH, dport=SERVICE)
    barrier = Barrier(udp(ns1, router, "10.0.1.99", "10.0.2.99", sport=HIGH, dport=9), "ns1:eth0")
    return expect(topo, frame, "ns1:eth0", nowhere(among=["ns2:eth0"]), barrier=barrier)


def test_pat_remaps_the_service_port_and_the_router_keeps_its_service(
    masqueraded: Topology,
) -> None:
    topo = masqueraded
    with ruleset(topo, "ns0", PAT, "ip pat"), udp_listener(topo, "ns0", SERVICE) as service:
        _shadow(topo).assert_passed()
        outcome = _to_router(topo)
        outcome.assert_passed()
        assert outcome.decided_by == "barrier", outcome.evidence()
        got = received(service)
    sent = outcome.sent[0]["payload"]
    assert got == sent, f"the router's service got {got!r}, not the datagram sent"


@pytest.mark.sabotage
def test_without_pat_the_port_is_kept_and_the_service_shadowed(masqueraded: Topology) -> None:
    topo = masqueraded
    shadow = _shadow(topo)
    assert not shadow.passed
    assert f"l4.sport: expected {REMAPPED[0]}..65535, seen {SERVICE}" in shadow.evidence()
    outcome = _to_router(topo)
    assert not outcome.passed
    assert outcome.reason == "probe 1 reached ns2:eth0, where it must not", outcome.evidence()
