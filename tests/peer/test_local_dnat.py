"""The selftest's local DNAT subtests: ns0's own traffic rewritten in its nat OUTPUT hook.

Where the selftest reads packet counters after a ping (which count an echo reply that
came from anywhere, and whose results never reach its exit code), each scenario here
follows the one echo: out of which port of ns0 it left, with which destination, that it
never appeared on the other link, and that its reply came back.
"""

from __future__ import annotations

import pytest
from support.listener import listening

from netprobe.expect import Match, at_exactly, expect_from_host
from netprobe.topology import Topology

from .conftest import ruleset

pytestmark = pytest.mark.root

LINKS = ("ns0:veth0", "ns1:eth0", "ns0:veth1", "ns2:eth0")
TO_NS1, TO_NS2 = ("ns0:veth0", "ns1:eth0"), ("ns0:veth1", "ns2:eth0")


def _dnat(family: str, match: str, target: str, l3: str = "") -> str:
    """An OUTPUT-hook DNAT table of `family` ("inet" names the target's `l3` family)."""
    return (
        f"table {family} nat {{\n chain output {{\n"
        "  type nat hook output priority 0; policy accept;\n"
        f"  {match} dnat {l3} to {target}\n }}\n}}\n"
    )


def _only(ports: tuple[str, ...]) -> object:
    return at_exactly(ports, among=LINKS)


@pytest.mark.parametrize("family,l3,ns1,ns2", [
    ("ip", "", "10.0.1.99", "10.0.2.99"), ("inet", "ip", "10.0.1.99", "10.0.2.99"),
    ("ip6", "", "dead:1::99", "dead:2::99"), ("inet", "ip6", "dead:1::99", "dead:2::99"),
], ids=["ip", "inet", "ip6", "inet6"])  # fmt: skip
def test_local_dnat_sends_ns0s_echo_to_ns2(
    nat: Topology, family: str, l3: str, ns1: str, ns2: str
) -> None:
    rules = _dnat(family, f"{l3 or family} daddr {ns1}", ns2, l3)
    with ruleset(nat, "ns0", rules, f"{family} nat"):
        outcome = expect_from_host(
            nat, "ns0", "icmp", ns1,
            where=_only(TO_NS2), match=Match(dst=ns2), reply="echo-reply",
        )  # fmt: skip
    outcome.assert_passed()


@pytest.mark.parametrize("family,l3", [("ip", ""), ("inet", "ip")])
def test_flushed_output_chain_reaches_ns1_again(nat: Topology, family: str, l3: str) -> None:
    rules = _dnat(family, "ip daddr 10.0.1.99", "10.0.2.99", l3)
    with ruleset(nat, "ns0", rules, f"{family} nat"):
        rewritten = expect_from_host(nat, "ns0", "icmp", "10.0.1.99", where=_only(TO_NS2))
        rewritten.assert_passed()  # the rule was in force before the flush
        nat.run("ns0", ["nft", "flush", "chain", family, "nat", "output"], check=True)
        outcome = expect_from_host(
            nat, "ns0", "icmp", "10.0.1.99",
            where=_only(TO_NS1), match=Match(dst="10.0.1.99"), reply="echo-reply",
        )  # fmt: skip
    outcome.assert_passed()


def test_port_rewrite_without_l3_address(nat: Topology) -> None:
    """`dnat to :2000` rewrites the port only: a connection to another port of ns1 (where
    nothing listens) must reach ns1 on 2000, and be answered by the listener there. The
    selftest connects to 2000 itself, so it passes without the rule too."""
    rules = _dnat("inet", "meta l4proto tcp", ":2000")
    with listening(nat, "ns1", "tcp", 2000), ruleset(nat, "ns0", rules, "inet nat"):
        outcome = expect_from_host(
            nat, "ns0", "tcp", "10.0.1.99", 2001,
            where=_only(TO_NS1), match=Match(dst="10.0.1.99", dport=2000), reply="syn-ack",
        )  # fmt: skip
    outcome.assert_passed()
