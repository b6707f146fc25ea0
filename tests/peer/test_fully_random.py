"""The selftest's masquerade with `fully-random`, for tables of family ip, ip6 and inet
(IPv4 and IPv6): ns2 reaches ns1 through ns0, which masquerades what leaves veth0.

The selftest pings and reads counters (and its masquerade results never reach its exit
code). Here each copy is held to what fully-random masquerade may do: at ns1 the source
is the router's address and the source port one masquerade may choose (1024..65535 for
a port of 1024 or more), the echo reply comes back to ns2 with ns2's own address, and
across several flows the ports really are drawn afresh, not kept as plain masquerade
keeps them. Sabotaged (no rule; plain masquerade), each fails for that reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from peer.conftest import ruleset
from support.crafted import mac_of

from netprobe.expect import ROUTED, Match, Outcome, at, at_exactly, expect, expect_from_host
from netprobe.topology import Topology
from netprobe.traffic import decode, udp

pytestmark = pytest.mark.root

ADDRESSES = {  # family → (ns1, the router on ns1's side, ns2)
    4: ("10.0.1.99", "10.0.1.1", "10.0.2.99"),
    6: ("dead:1::99", "dead:1::1", "dead:2::99"),
}
FAMILIES = [("ip", 4), ("ip6", 6), ("inet", 4), ("inet", 6)]
HIGH_PORTS = range(1024, 65536)  # what masquerade picks from for a source port >= 1024
FLOWS = 8  # the chance that all keep their port by luck is 1 in 64512**8

_sports = itertools.count(41000)  # a fresh flow per probe: conntrack remembers old ones


def masquerade(family: str, flags: str = "fully-random") -> str:
    return f"""
table {family} nat {{
    chain postrouting {{
        type nat hook postrouting priority 0; policy accept;
        oifname "veth0" masquerade {flags}
    }}
}}"""


@pytest.fixture
def family_rules(nat: Topology, request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    family, version = request.param
    with ruleset(nat, "ns0", masquerade(family), f"{family} nat"):
        yield family, version


def _flows(topo: Topology, version: int, match: Match) -> list[Outcome]:
    """One UDP probe per fresh flow from ns2:eth0 to ns1, each judged at ns1:eth0."""
    ns1, _, ns2 = ADDRESSES[version]
    src_mac, router_mac = mac_of(topo, "ns2", "eth0"), mac_of(topo, "ns0", "veth1")
    return [
        expect(topo, udp(src_mac, router_mac, ns2, ns1, sport=next(_sports), dport=9),
               "ns2:eth0", at("ns1:eth0"), match=match)
        for _ in range(FLOWS)
    ]  # fmt: skip


def _rewritten_ports(outcomes: list[Outcome]) -> list[tuple[int, int]]:
    """(sent, seen at ns1) source port of each flow."""
    pairs = []
    for outcome in outcomes:
        copy = outcome.reports["ns1:eth0"].copies[0]
        pairs.append((outcome.sent[0]["l4.sport"], decode(copy.frame.data)["l4.sport"]))
    return pairs


@pytest.mark.parametrize("family_rules", FAMILIES, indirect=True, ids=lambda f: f"{f[0]}-v{f[1]}")
def test_ping_is_masqueraded_both_ways(nat: Topology, family_rules: tuple[str, int]) -> None:
    _, version = family_rules
    ns1, router, ns2 = ADDRESSES[version]
    outcome = expect_from_host(
        nat, "ns2", "icmp", ns1, where=at("ns1:eth0"),
        match=Match(src=router, id=range(65536)), reply="echo-reply",
        back={"ns0:veth0": Match(dst=router), "ns2:eth0": Match(dst=ns2).masking("id")},
    )  # fmt: skip
    outcome.assert_passed()


@pytest.mark.parametrize("family_rules", FAMILIES, indirect=True, ids=lambda f: f"{f[0]}-v{f[1]}")
def test_source_ports_are_drawn_at_random(nat: Topology, family_rules: tuple[str, int]) -> None:
    _, version = family_rules
    _, router, _ = ADDRESSES[version]
    outcomes = _flows(nat, version, ROUTED.rewriting(src=router, sport=HIGH_PORTS))
    for outcome in outcomes:
        outcome.assert_passed()
    pairs = _rewritten_ports(outcomes)
    assert any(sent != seen for sent, seen in pairs), f"every flow kept its port: {pairs}"


@pytest.mark.sabotage
def test_without_the_rule_the_source_is_not_masqueraded(nat: Topology) -> None:
    ns1, router, ns2 = ADDRESSES[4]
    outcome = expect_from_host(
        nat, "ns2", "icmp", ns1, where=at("ns1:eth0"), match=Match(src=router),
        reply="echo-reply",
    )  # fmt: skip
    assert not outcome.passed
    assert f"ip.src: expected {router}, seen {ns2}" in outcome.reason, outcome.evidence()


@pytest.mark.sabotage
@pytest.mark.parametrize("version", [4, 6])
def test_plain_masquerade_keeps_the_ports(nat: Topology, version: int) -> None:
    """The sabotage fully-random exists for: plain masquerade passes the range (the kept
    port is a high port too) but keeps every port, and the test says so."""
    family = "ip" if version == 4 else "ip6"
    _, router, _ = ADDRESSES[version]
    with ruleset(nat, "ns0", masquerade(family, ""), f"{family} nat"):
        outcomes = _flows(nat, version, ROUTED.rewriting(src=router, sport=HIGH_PORTS))
    assert all(o.passed for o in outcomes), outcomes[0].evidence()
    assert all(sent == seen for sent, seen in _rewritten_ports(outcomes))


@pytest.mark.sabotage
def test_a_port_outside_the_range_is_named(nat: Topology) -> None:
    """A range the rewrite misses: the diff shows the range readably."""
    _, router, _ = ADDRESSES[4]
    with ruleset(nat, "ns0", masquerade("ip"), "ip nat"):
        (outcome, *_) = _flows(nat, 4, ROUTED.rewriting(src=router, sport=range(1, 1024)))
    assert not outcome.passed
    assert "l4.sport: expected 1..1023, seen " in outcome.evidence()


def _one_send_two_shapes(topo: Topology, version: int) -> Outcome:
    """One probe, judged where it enters the router (as sent) and at ns1 (masqueraded)."""
    ns1, router, ns2 = ADDRESSES[version]
    frame = udp(mac_of(topo, "ns2", "eth0"), mac_of(topo, "ns0", "veth1"), ns2, ns1,
                sport=next(_sports), dport=9)  # fmt: skip
    both = ["ns0:veth1", "ns1:eth0"]
    return expect(
        topo, frame, "ns2:eth0", at_exactly(both, among=both),
        match={"ns0:veth1": Match(), "ns1:eth0": ROUTED.rewriting(src=router, sport=HIGH_PORTS)},
    )  # fmt: skip


@pytest.mark.parametrize("family_rules", FAMILIES, indirect=True, ids=lambda f: f"{f[0]}-v{f[1]}")
def test_one_send_has_a_shape_per_port(nat: Topology, family_rules: tuple[str, int]) -> None:
    outcome = _one_send_two_shapes(nat, family_rules[1])
    outcome.assert_passed()
    assert outcome.match_at("ns0:veth1") == Match()


@pytest.mark.sabotage
def test_a_shape_per_port_names_the_port_that_missed_it(nat: Topology) -> None:
    outcome = _one_send_two_shapes(nat, 4)  # no masquerade rule
    assert outcome.reason == "probe 1 arrived altered at ns1:eth0", outcome.evidence()
    shape = ROUTED.rewriting(src="10.0.1.1", sport=HIGH_PORTS).describe()
    assert f"  ns1:eth0 (must see it; {shape}): " in outcome.evidence()
    assert "ip.src: expected 10.0.1.1, seen 10.0.2.99" in outcome.evidence()


@pytest.mark.sabotage
def test_without_the_rule_the_reply_is_not_sent_to_the_router(nat: Topology) -> None:
    ns1, router, ns2 = ADDRESSES[4]
    outcome = expect_from_host(
        nat, "ns2", "icmp", ns1, reply="echo-reply", back={"ns1:eth0": Match(dst=router)}
    )
    assert outcome.reason == (
        f"the reply passed ns1:eth0 altered: ip.dst: expected {router}, seen {ns2}"
    ), outcome.evidence()
    assert f"the reply back at ns1:eth0 (rewrites: dst={router})" in outcome.evidence()
