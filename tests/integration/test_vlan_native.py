"""802.1Q without 802.1Q devices: tagged frames are crafted, cross a plain Linux bridge
with their tags, and are captured with them (the tag the kernel moves aside is put back
from PACKET_AUXDATA). So VLAN rules of nftables' bridge family can be proven on a kernel
with neither VLAN devices nor VLAN filtering: here one drops VLAN 20 and passes VLAN 10."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import netprobe
from netprobe.expect import Barrier, at, expect, nowhere
from netprobe.traffic import ethernet, udp

pytestmark = [pytest.mark.root, pytest.mark.netprobe_requires("nftables", "bridge")]

RULES = """\
table bridge vlans {
    chain forward {
        type filter hook forward priority 0; policy accept;
        vlan id 20 counter drop
    }
}
"""

TOPOLOGY = """\
name: vlan-nft
hosts:
  h1:
    interfaces:
      eth0: {veth: switch:p1, mac: "02:00:00:00:01:01"}
  h2:
    interfaces:
      eth0: {veth: switch:p2, mac: "02:00:00:00:01:02"}
  switch:
    interfaces:
      br0: {bridge: {}}          # a plain bridge: no vlan_filtering
      p1: {master: br0}
      p2: {master: br0}
    firewall: {nft: vlans.nft}
"""

H1, H2 = "02:00:00:00:01:01", "02:00:00:00:01:02"


@pytest.fixture
def topo(tmp_path: Path) -> Iterator[netprobe.Topology]:
    (tmp_path / "vlans.nft").write_text(RULES)
    path = tmp_path / "vlan-nft.yaml"
    path.write_text(textwrap.dedent(TOPOLOGY))
    with netprobe.build(netprobe.load(path)) as built:
        yield built


def test_tagged_frames_cross_a_plain_bridge_and_are_captured_with_their_tags(
    topo: netprobe.Topology,
) -> None:
    outcome = expect(topo, udp(H1, H2, "10.10.0.1", "10.10.0.2", vlan=10), "h1:eth0",
                     at("h2:eth0"))
    outcome.assert_passed()  # the whole frame compared, its "vlan" field included
    (copy,) = outcome.reports["h2:eth0"].copies
    assert copy.frame.data[12:16] == bytes.fromhex("8100000a")


def test_qinq_tags_survive_too(topo: netprobe.Topology) -> None:
    outcome = expect(topo, udp(H1, H2, "10.10.0.1", "10.10.0.2", vlan=(100, 10)), "h1:eth0",
                     at("h2:eth0"))
    outcome.assert_passed()
    (copy,) = outcome.reports["h2:eth0"].copies
    assert copy.frame.data[12:20] == bytes.fromhex("88a80064" + "8100000a")


def test_an_nft_bridge_rule_drops_vlan_20_and_passes_vlan_10(topo: netprobe.Topology) -> None:
    passes = expect(topo, udp(H1, H2, "10.20.0.1", "10.20.0.2", vlan=10), "h1:eth0",
                    at("h2:eth0"), count=3)
    passes.assert_passed()
    barrier = Barrier(ethernet(H1, "ff:ff:ff:ff:ff:ff", vlan=10))  # VLAN 10 gets through
    dropped = expect(topo, udp(H1, H2, "10.20.0.1", "10.20.0.2", vlan=20), "h1:eth0",
                     nowhere(among=["h2:eth0"]), barrier=barrier, count=3)
    dropped.assert_passed()
    assert dropped.decided_by == "barrier"
    counted = topo.run("switch", ["nft", "list", "chain", "bridge", "vlans", "forward"]).stdout
    assert "vlan id 20 counter packets 3 " in counted
