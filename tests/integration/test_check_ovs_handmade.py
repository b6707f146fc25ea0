"""The OVS checks on switches made by hand: ovsdb-server and ovs-vswitchd started with
plain commands inside a namespace (netdev datapath, their own OVS_RUNDIR), bridges, ports,
tags, bonds and flows set with ovs-vsctl and ovs-ofctl, then adopted: the checks talk to
the OVS running there. Healthy each passes; each sabotage of test_check_ovs_*.py, made by
hand too, fails with the same diagnosis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.handmade_net import HandMade
from support.results import diagnosis_of

import netprobe
from netprobe.check import Result, Status, run_check

pytestmark = [pytest.mark.root, pytest.mark.netprobe_requires("ovs-vsctl")]

DROP = "priority=100,ip,nw_src=10.0.0.66,actions=drop"


@pytest.fixture
def hand() -> Iterator[HandMade]:
    with HandMade() as net:
        yield net


def _ovs_port(net: HandMade, host: str, switch: str, port: str, *vsctl: str) -> None:
    """A veth from host's eth0 to `port` of the switch's br0; TX checksum offload off on
    both ends (the netdev datapath fills in no checksum)."""
    net.veth(host, "eth0", switch, port)
    net.ovs(switch, "ovs-vsctl", "add-port", "br0", port, *vsctl)
    net.exec(host, "ethtool", "-K", "eth0", "tx", "off")
    net.exec(switch, "ethtool", "-K", port, "tx", "off")


def _switch(net: HandMade, name: str = "switch") -> None:
    net.ns(name)
    net.ovs_start(name)
    net.ovs(name, "ovs-vsctl", "add-br", "br0", "--", "set", "bridge", "br0",
            "datapath_type=netdev")
    net.ip(name, "link", "set", "br0", "up")


def _run(net: HandMade, check: str, **params: str) -> Result:
    with netprobe.build(net.spec(f"{check}-by-hand")) as topo:
        return run_check(check, topo, **params)


# -- ovs-flows ------------------------------------------------------------------------------


def flows_switch(net: HandMade, drop: str | None = DROP) -> None:
    """ovs-flows.yaml by hand: h1, h2, bad on switch:br0, whose table drops bad's IPv4."""
    _switch(net)
    for index, (host, mac, ip) in enumerate((("h1", "02:00:00:00:0f:01", "10.0.0.1/24"),
                                             ("h2", "02:00:00:00:0f:02", "10.0.0.2/24"),
                                             ("bad", "02:00:00:00:0f:66", "10.0.0.66/24")), 1):
        net.ns(host)
        _ovs_port(net, host, "switch", f"p{index}")
        net.ip(host, "link", "set", "eth0", "address", mac)
        net.addr(host, "eth0", ip)
    table = [drop] if drop else []
    net.ovs("switch", "ovs-ofctl", "replace-flows", "br0", "-",
            input="\n".join([*table, "priority=0,actions=NORMAL"]) + "\n")


def test_ovs_flows_passes_on_a_switch_made_by_hand(hand: HandMade) -> None:
    flows_switch(hand)
    result = _run(hand, "ovs-flows")
    assert result.status is Status.PASS, result.evidence()
    assert "ip,nw_src=10.0.0.66, priority 100" in result.steps[-1].detail


def test_a_drop_flow_missing_by_hand_is_named(hand: HandMade) -> None:
    flows_switch(hand, None)
    diagnosis = diagnosis_of(_run(hand, "ovs-flows"))
    assert "no flow on switch:br0 drops IPv4 from 10.0.0.66" in diagnosis
    assert "'priority 0'" in diagnosis


def test_a_drop_flow_aimed_wrong_by_hand_is_named(hand: HandMade) -> None:
    flows_switch(hand, DROP.replace("10.0.0.66", "10.0.0.67"))
    diagnosis = diagnosis_of(_run(hand, "ovs-flows"))
    assert "no flow on switch:br0 drops IPv4 from 10.0.0.66" in diagnosis
    assert "nw_src=10.0.0.67" in diagnosis


def test_a_drop_flow_too_broad_by_hand_is_named(hand: HandMade) -> None:
    flows_switch(hand, DROP.replace("10.0.0.66", "10.0.0.0/24"))
    diagnosis = diagnosis_of(_run(hand, "ovs-flows"))
    assert "switch:br0 drops IPv4 h1:eth0 → h2:eth0 too" in diagnosis


def test_a_drop_flow_deleted_by_hand_is_noticed(hand: HandMade) -> None:
    flows_switch(hand)
    hand.ovs("switch", "ovs-ofctl", "del-flows", "br0", "ip,nw_src=10.0.0.66")
    assert "no flow on switch:br0 drops IPv4 from 10.0.0.66" in \
        diagnosis_of(_run(hand, "ovs-flows"))


def test_a_host_without_ovs_is_no_ovs_bridge(hand: HandMade) -> None:
    flows_switch(hand)
    result = _run(hand, "ovs-flows", bridge="h1:eth0")
    assert result.status is Status.ERROR
    assert "an OVS bridge of this topology" in result.summary


# -- ovs-vlan -------------------------------------------------------------------------------


def vlan_switch(net: HandMade, p2_tag: str = "10", trunks: str = "10,20") -> None:
    """ovs-vlan.yaml by hand: access ports p1, p2 (VLAN 10), p3 (VLAN 20), trunk `up`."""
    _switch(net)
    for host, port, tag, mac in (("h1", "p1", "10", "02:00:00:00:0a:01"),
                                 ("h2", "p2", p2_tag, "02:00:00:00:0a:02"),
                                 ("h3", "p3", "20", "02:00:00:00:14:03")):
        net.ns(host)
        _ovs_port(net, host, "switch", port, f"tag={tag}")
        net.ip(host, "link", "set", "eth0", "address", mac)
    net.ns("core")
    _ovs_port(net, "core", "switch", "up", f"trunks={trunks}")


def test_ovs_vlan_passes_on_a_switch_made_by_hand(hand: HandMade) -> None:
    vlan_switch(hand)
    result = _run(hand, "ovs-vlan")
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 3 * 2 + 2


def test_an_access_tag_set_wrong_by_hand_is_named(hand: HandMade) -> None:
    vlan_switch(hand, p2_tag="20")
    assert ("switch:p2 (the port of h2:eth0) is an access port of VLAN 20, expected an "
            "access port of VLAN 10") in diagnosis_of(_run(hand, "ovs-vlan"))


def test_a_trunk_missing_a_vlan_by_hand_is_named(hand: HandMade) -> None:
    vlan_switch(hand, trunks="10")
    assert "switch:up (the trunk to core:eth0) carries VLANs 10, not VLANs 20" in \
        diagnosis_of(_run(hand, "ovs-vlan"))


# -- ovs-bond -------------------------------------------------------------------------------


def bonded(net: HandMade, u2_bridge: str = "br0") -> None:
    """ovs-bond.yaml by hand: hv's OVS bond0 (b1 primary, b2) to tor's Linux bridge."""
    for host in ("h1", "h2", "tor"):
        net.ns(host)
    _switch(net, "hv")
    _ovs_port(net, "h1", "hv", "p1")
    for member, far in (("b1", "u1"), ("b2", "u2")):
        net.veth("hv", member, "tor", far)
        net.exec("hv", "ethtool", "-K", member, "tx", "off")
        net.exec("tor", "ethtool", "-K", far, "tx", "off")
    net.ovs("hv", "ovs-vsctl", "add-bond", "br0", "bond0", "b1", "b2",
            "bond_mode=active-backup", "other_config:bond-primary=b1")
    net.veth("h2", "eth0", "tor", "p2")
    net.bridge("tor", "br0", "u1", "p2")
    if u2_bridge == "br0":
        net.ip("tor", "link", "set", "u2", "master", "br0")
    else:
        net.bridge("tor", u2_bridge, "u2")
    for host, mac, ip in (("h1", "02:00:00:00:b0:01", "10.0.0.1/24"),
                          ("h2", "02:00:00:00:b0:02", "10.0.0.2/24")):
        net.ip(host, "link", "set", "eth0", "address", mac)
        net.addr(host, "eth0", ip)


def test_ovs_bond_passes_on_a_bond_made_by_hand(hand: HandMade) -> None:
    bonded(hand)
    result = _run(hand, "ovs-bond")
    assert result.status is Status.PASS, result.evidence()
    steps = {s.name: s for s in result.steps}
    assert steps["hv:bond0 fails over from b1 when tor:u1 goes down"].detail == \
        "active member then: b2"


def test_a_backup_link_set_down_by_hand_is_named(hand: HandMade) -> None:
    bonded(hand)
    hand.ip("tor", "link", "set", "u2", "down")
    diagnosis = diagnosis_of(_run(hand, "ovs-bond", max_failover="0.3"))
    assert ("hv:bond0 has no live backup for b1: the link of b2 is down at its far end, "
            "tor:u2") in diagnosis


def test_a_bond_with_both_links_down_by_hand_has_no_active_member(hand: HandMade) -> None:
    bonded(hand)
    for link in ("u1", "u2"):
        hand.ip("tor", "link", "set", link, "down")
    result = _run(hand, "ovs-bond", max_failover="0.3")
    assert diagnosis_of(result) == "hv:bond0 has no active member: every member's link is down"


def test_a_backup_cabled_to_the_wrong_bridge_by_hand_is_named(hand: HandMade) -> None:
    bonded(hand, u2_bridge="br-other")
    diagnosis = diagnosis_of(_run(hand, "ovs-bond", max_failover="0.3"))
    assert ("hv:bond0's backup b2 leads to tor:u2, whose master is br-other, not br0 like "
            "the active member's far end tor:u1") in diagnosis


def test_a_name_that_is_no_ovs_bond_by_hand_is_bad_input(hand: HandMade) -> None:
    bonded(hand)
    result = _run(hand, "ovs-bond", bond="hv:br0")
    assert result.status is Status.ERROR
    assert "an ovs_bond of this topology" in result.summary
