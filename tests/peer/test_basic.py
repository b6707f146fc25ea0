"""The selftest's first subtest: the router reaches both hosts, IPv4 and IPv6, and each
echo goes out of the one link it should and nowhere else."""

from __future__ import annotations

import pytest

from netprobe.expect import Match, at, expect_from_host
from netprobe.topology import Topology

pytestmark = pytest.mark.root


@pytest.mark.parametrize("dst,port", [
    ("10.0.1.99", "ns1:eth0"), ("10.0.2.99", "ns2:eth0"),
    ("dead:1::99", "ns1:eth0"), ("dead:2::99", "ns2:eth0"),
])  # fmt: skip
def test_router_reaches_both_hosts(nat: Topology, dst: str, port: str) -> None:
    outcome = expect_from_host(
        nat, "ns0", "icmp", dst, where=at(port), match=Match(), reply="echo-reply"
    )
    outcome.assert_passed()
