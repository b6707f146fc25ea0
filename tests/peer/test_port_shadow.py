"""The selftest's port-shadow subtests: by default a fake conntrack entry planted from
inside (ns2) captures what ns1 sends to the router's service; a forward filter on the
service port and notrack for it each keep the service ns0's (tests/support/shadow.py).

The selftest reads which text came back; here the reply's own source and the probe's
path say who answered, and each mitigation is seen acting on the fake entry itself: the
filter drops it in ns0 (it never reaches ns1), notrack lets it through masqueraded.
"""

from __future__ import annotations

import pytest
from support.shadow import FAKE_DROPPED, MASQUERADE, shadow_round

from netprobe.topology import Topology

from .conftest import ruleset

pytestmark = pytest.mark.root

PORT_FILTER = """table ip filter {
 chain forward {
  type filter hook forward priority 0; policy accept;
  meta iif veth1 udp sport 1405 drop
 }
}
"""
NOTRACK = """table ip raw {
 chain prerouting {
  type filter hook prerouting priority -300; policy accept;
  meta iif veth0 udp dport 1405 notrack
 }
 chain output {
  type filter hook output priority -300; policy accept;
  meta oif veth0 udp sport 1405 notrack
 }
}
"""


def test_port_shadow_default_answers_from_ns2(nat: Topology) -> None:
    with ruleset(nat, "ns0", MASQUERADE, "ip nat"):
        shadow_round(nat, "ns2")


def test_port_shadow_port_filter_keeps_ns0s_service(nat: Topology) -> None:
    with (
        ruleset(nat, "ns0", MASQUERADE, "ip nat"),
        ruleset(nat, "ns0", PORT_FILTER, "ip filter"),
    ):
        shadow_round(nat, "ns0", fake=FAKE_DROPPED)


def test_port_shadow_notrack_keeps_ns0s_service(nat: Topology) -> None:
    with ruleset(nat, "ns0", MASQUERADE, "ip nat"), ruleset(nat, "ns0", NOTRACK, "ip raw"):
        shadow_round(nat, "ns0")
