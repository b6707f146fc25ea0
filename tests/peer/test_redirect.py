"""The selftest's redirect subtests: ns2's echo to ns1, redirected by ns0's prerouting
hook to ns0 itself, in the ip, ip6 and inet families.

The selftest reads counters (its results never reach its exit code). Here one echo is
followed: it must reach no port on ns1's link, its reply must come back to ns2, and that
reply must start at ns0 (its first sighting leaving ns0 towards ns2): ns0 answered.
"""

from __future__ import annotations

import pytest

from netprobe.expect import HostOutcome, expect_from_host, nowhere
from netprobe.topology import Topology

from .conftest import ruleset

pytestmark = pytest.mark.root

NS1_LINK = ("ns0:veth0", "ns1:eth0")
V4 = ("ip protocol icmp ip saddr 10.0.2.99 ip daddr 10.0.1.99", "10.0.1.99")
V6 = ("meta l4proto icmpv6 ip6 saddr dead:2::99 ip6 daddr dead:1::99", "dead:1::99")


def redirect(family: str, match: str) -> str:
    """A prerouting table of `family` redirecting what `match`es from veth1 to ns0."""
    return (
        f"table {family} nat {{\n chain prerouting {{\n"
        "  type nat hook prerouting priority 0; policy accept;\n"
        f"  meta iif veth1 {match} redirect\n }}\n}}\n"
    )


def answered_by(outcome: HostOutcome) -> str | None:
    """Where the reply began: the port of its first sighting (None: no reply seen)."""
    back = outcome.result.reply_path
    return back[0].port if back else None


@pytest.mark.parametrize("family,rule", [
    ("ip", V4), ("ip6", V6), ("inet", V4), ("inet", V6),
], ids=["ip", "ip6", "inet", "inet6"])  # fmt: skip
def test_redirect_answers_ns2_from_ns0(nat: Topology, family: str, rule: tuple[str, str]) -> None:
    match, dst = rule
    with ruleset(nat, "ns0", redirect(family, match), f"{family} nat"):
        outcome = expect_from_host(
            nat, "ns2", "icmp", dst, where=nowhere(among=NS1_LINK), reply="echo-reply"
        )
    outcome.assert_passed()
    assert answered_by(outcome) == "ns0:veth1", f"not answered by ns0\n{outcome.evidence()}"
