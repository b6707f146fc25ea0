"""The selftest's stateless NAT: ns0 rewrites addresses in prerouting at priority -400
(before any defragmentation) from two maps, with no connection tracking: what ns2
(10.0.2.99) sends to ns1 leaves with source 10.0.2.2, and what ns1 sends to 10.0.2.2
goes to 10.0.2.99.

The selftest pings, then sends a 4096-byte UDP datagram, compares the file received and
counts three packets from 10.0.2.2 before ns1's defragmentation. Here the datagram is
sent as fragments netprobe built, each with a nonce of its own: every fragment must
reach ns1:eth0 with source 10.0.2.2 (named one by one if one does not), and the socket
on ns1 must receive the datagram whole, so the rewrite kept the checksum right. The
echo reply must come back to ns2 with its own address. Sabotaged (no table; a rule that
drops one fragment), each fails naming what went wrong.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from peer.conftest import ruleset
from support.crafted import mac_of, received, udp_listener

from netprobe.expect import ROUTED, Match, Outcome, at, at_exactly, expect, expect_from_host
from netprobe.topology import Topology
from netprobe.traffic import Template, fragments

pytestmark = pytest.mark.root

PORT, SIZE = 4233, 4096

STATELESS = """
table ip stateless {
    map to_ns1 {
        typeof meta iifname . ip saddr . ip daddr : ip saddr
        elements = { "veth1" . 10.0.2.99 . 10.0.1.99 : 10.0.2.2 }
    }
    map to_ns2 {
        typeof meta iifname . ip saddr . ip daddr : ip daddr
        elements = { "veth0" . 10.0.1.99 . 10.0.2.2 : 10.0.2.99 }
    }
    chain prerouting {
        type filter hook prerouting priority -400; policy accept;
        ip saddr set meta iifname . ip saddr . ip daddr map @to_ns1
        ip daddr set meta iifname . ip saddr . ip daddr map @to_ns2
    }
}"""
DROP_LATER_FRAGMENTS = """
table ip fragdrop {
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip frag-off & 0x1fff != 0 drop
    }
}"""


@pytest.fixture
def stateless(nat: Topology) -> Iterator[Topology]:
    with ruleset(nat, "ns0", STATELESS, "ip stateless"):
        yield nat


def _datagram_fragments(topo: Topology, version: int) -> list[Template]:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    src, dst = ("10.0.2.99", "10.0.1.99") if version == 4 else ("dead:2::99", "dead:1::99")
    l3 = IP(src=src, dst=dst) if version == 4 else IPv6(src=src, dst=dst)
    eth = Ether(src=mac_of(topo, "ns2", "eth0"), dst=mac_of(topo, "ns0", "veth1"))
    datagram = eth / l3 / UDP(sport=40000, dport=PORT) / Raw(os.urandom(SIZE))
    return fragments(datagram, 1480 if version == 4 else 1448)


def _payload(outcome: Outcome) -> bytes:
    """The datagram's UDP payload as sent: the injected fragments' data, in offset order,
    without the UDP header."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
    from scapy.layers.l2 import Ether

    body = b""
    for frame in outcome.injected[: len(outcome.sent)]:
        packet = Ether(frame.data)
        body += bytes(packet[IPv6ExtHdrFragment].payload if IPv6 in packet else packet[IP].payload)
    return body[8:]


def test_ping_is_rewritten_both_ways(stateless: Topology) -> None:
    outcome = expect_from_host(
        stateless, "ns2", "icmp", "10.0.1.99", where=at_exactly(["ns0:veth1", "ns1:eth0"]),
        match={"ns0:veth1": Match(), "ns1:eth0": Match(src="10.0.2.2")}, reply="echo-reply",
        back={"ns0:veth0": Match(), "ns2:eth0": Match(dst="10.0.2.99")},
    )  # fmt: skip
    outcome.assert_passed()


def test_every_fragment_is_rewritten_and_the_datagram_delivered(stateless: Topology) -> None:
    frames = _datagram_fragments(stateless, 4)
    assert len(frames) == 3
    with udp_listener(stateless, "ns1", PORT) as sock:
        outcome = expect(stateless, frames, "ns2:eth0", at("ns1:eth0"),
                         match=ROUTED.rewriting(src="10.0.2.2"))  # fmt: skip
        outcome.assert_passed()
        got = received(sock)
    assert len(outcome.reports["ns1:eth0"].copies) == 3
    assert got == _payload(outcome), f"ns1 received {len(got or b'')} bytes, not the datagram"


def test_ipv6_fragments_are_forwarded_and_reassembled(nat: Topology) -> None:
    """The same datagram over IPv6 (no NAT: the table is IPv4's): each fragment, with
    its Fragment header, reaches ns1 and ns1 reassembles it."""
    frames = _datagram_fragments(nat, 6)
    with udp_listener(nat, "ns1", PORT, v6=True) as sock:
        outcome = expect(nat, frames, "ns2:eth0", at("ns1:eth0"), match=ROUTED)
        outcome.assert_passed()
        got = received(sock)
    assert got == _payload(outcome)


@pytest.mark.sabotage
def test_without_the_table_the_ping_names_the_port_and_its_shape(nat: Topology) -> None:
    outcome = expect_from_host(
        nat, "ns2", "icmp", "10.0.1.99", where=at_exactly(["ns0:veth1", "ns1:eth0"]),
        match={"ns0:veth1": Match(), "ns1:eth0": Match(src="10.0.2.2")}, reply="echo-reply",
    )  # fmt: skip
    assert outcome.reason.startswith("the probe arrived altered at ns1:eth0: "), outcome.reason
    assert "ip.src: expected 10.0.2.2, seen 10.0.2.99" in outcome.reason
    assert "at_exactly ns0:veth1 (exact) ns1:eth0 (rewrites: src=10.0.2.2)" in outcome.evidence()


@pytest.mark.sabotage
def test_without_the_table_every_fragment_keeps_its_source(nat: Topology) -> None:
    outcome = expect(nat, _datagram_fragments(nat, 4), "ns2:eth0", at("ns1:eth0"),
                     match=ROUTED.rewriting(src="10.0.2.2"))  # fmt: skip
    assert outcome.reason == "probe 1 frame 1 arrived altered at ns1:eth0", outcome.evidence()
    assert "ip.src: expected 10.0.2.2, seen 10.0.2.99" in outcome.evidence()


@pytest.mark.sabotage
def test_a_dropped_fragment_is_named(stateless: Topology) -> None:
    with ruleset(stateless, "ns0", DROP_LATER_FRAGMENTS, "ip fragdrop"):
        outcome = expect(stateless, _datagram_fragments(stateless, 4), "ns2:eth0",
                         at("ns1:eth0"), match=ROUTED.rewriting(src="10.0.2.2"))  # fmt: skip
    assert outcome.reason == "probe 1 frame 2 never reached ns1:eth0", outcome.evidence()
    assert len(outcome.reports["ns1:eth0"].copies) == 1
