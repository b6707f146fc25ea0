"""The selftest's masquerade subtests: ns2's echo to ns1, forwarded by ns0 and masqueraded
behind ns0's address on veth0, in the ip, ip6 and inet families.

The selftest pings and reads counters in ns1 (whose results never reach its exit code).
Here one echo is followed: before the rule, the copy at ns1 carries ns2's own address (so
the rewrite is the rule's doing); with it, the copy at ns1 carries ns0's address, no
other copy reaches ns1, and the reply comes back to ns2 (conntrack undid the rewrite).
"""

from __future__ import annotations

import pytest

from netprobe.expect import Match, at_exactly, expect_from_host
from netprobe.topology import Topology

from .conftest import ruleset

pytestmark = pytest.mark.root

TO_NS1 = ("ns0:veth0", "ns1:eth0")  # ns1's link: past ns0's postrouting hook
V4 = ("10.0.1.99", "10.0.2.99", "10.0.1.1")  # ns1, ns2, ns0 on ns1's link
V6 = ("dead:1::99", "dead:2::99", "dead:1::1")


def masquerade(family: str) -> str:
    """A postrouting table of `family` masquerading what leaves ns0 by veth0."""
    return (
        f"table {family} nat {{\n chain postrouting {{\n"
        "  type nat hook postrouting priority 0; policy accept;\n"
        "  meta oif veth0 masquerade\n }\n}\n"
    )


def _at_ns1(topo: Topology, dst: str, src: str) -> None:
    """ns2's echo to `dst` leaves ns0 by veth0 and arrives at ns1 from `src` (each copy on
    ns1's link does), and its reply comes back to ns2."""
    outcome = expect_from_host(
        topo, "ns2", "icmp", dst,
        where=at_exactly(TO_NS1), match=Match(src=src), reply="echo-reply",
    )  # fmt: skip
    outcome.assert_passed()


@pytest.mark.parametrize("family,addresses", [
    ("ip", V4), ("ip6", V6), ("inet", V4), ("inet", V6),
], ids=["ip", "ip6", "inet", "inet6"])  # fmt: skip
def test_masquerade_hides_ns2_behind_ns0(
    nat: Topology, family: str, addresses: tuple[str, str, str]
) -> None:
    ns1, ns2, ns0 = addresses
    _at_ns1(nat, ns1, ns2)  # unmasqueraded first: ns1 sees ns2's own address
    with ruleset(nat, "ns0", masquerade(family), f"{family} nat"):
        _at_ns1(nat, ns1, ns0)
