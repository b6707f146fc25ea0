"""The selftest's DNAT clash subtest: ns1 sends from one source port first to 10.0.2.1,
which ns0 DNATs to its own 10.0.1.1, then to 10.0.1.1 directly. Both flows have the same
reply tuple; conntrack must tell them apart, and ns0's listener (bound to 10.0.1.1 only)
must answer each step.

The selftest compares the text that came back; here each datagram must stay in ns0 (no
port on ns2's link sees it) and be answered on ns1's connected socket, which takes a
reply only from the address and port it sent to: the DNAT undone in step 1, none in 2.
"""

from __future__ import annotations

import pytest
from support.listener import listening

from netprobe.expect import expect_from_host, nowhere
from netprobe.topology import Topology

from .conftest import ruleset

pytestmark = pytest.mark.root

DNAT = """table ip dnat-test {
 chain prerouting {
  type nat hook prerouting priority dstnat; policy accept;
  ip daddr 10.0.2.1 udp dport 1234 counter dnat to 10.0.1.1:1234
 }
}
"""
NS2_LINK = ("ns0:veth1", "ns2:eth0")


def test_dnat_clash_both_steps_answered_by_ns0(nat: Topology) -> None:
    with ruleset(nat, "ns0", DNAT, "ip dnat-test"), listening(nat, "ns0", "udp", 1234, "10.0.1.1"):
        for step, dst in enumerate(("10.0.2.1", "10.0.1.1"), 1):
            outcome = expect_from_host(
                nat, "ns1", "udp", dst, 1234,
                sport=4321, where=nowhere(among=NS2_LINK), reply="answer",
            )  # fmt: skip
            assert outcome.passed, f"step {step}: {outcome.evidence()}"
            replies = [h for h in outcome.result.reply_path if h.port == "ns1:eth0"]
            assert replies and (replies[-1].src, replies[-1].sport) == (dst, 1234), (
                f"step {step}: the reply came back from elsewhere\n{outcome.evidence()}"
            )
