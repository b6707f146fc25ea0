"""The ovs-lacp check on OVS bonds made by hand: ovsdb-server and ovs-vswitchd started
with plain commands in two namespaces, bridges and LACP bonds set with ovs-vsctl, then
adopted. Healthy it passes; with LACP off on the switch's bond it names that."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.handmade_net import HandMade
from support.results import diagnosis_of

import netprobe
from netprobe.check import Result, Status, run_check

pytestmark = [pytest.mark.root, pytest.mark.netprobe_requires("ovs-vsctl")]


@pytest.fixture
def hand() -> Iterator[HandMade]:
    with HandMade() as net:
        yield net


def _switch(net: HandMade, name: str, mac: str) -> None:
    net.ns(name)
    net.ovs_start(name)
    net.ovs(name, "ovs-vsctl", "add-br", "br0", "--", "set", "bridge", "br0",
            "datapath_type=netdev", f'other-config:hwaddr="{mac}"')
    net.ip(name, "link", "set", "br0", "up")


def _tx_off(net: HandMade, *ends: tuple[str, str]) -> None:
    for host, dev in ends:
        net.exec(host, "ethtool", "-K", dev, "tx", "off")


def lacp_bonded(net: HandMade, switch_lacp: str = "active") -> None:
    """ovs-lacp.yaml by hand: server's bond0 (b1, b2) to switch's bond0 (u1, u2)."""
    _switch(net, "server", "02:00:00:00:1a:a0")
    _switch(net, "switch", "02:00:00:00:1a:b0")
    for member, far in (("b1", "u1"), ("b2", "u2")):
        net.veth("server", member, "switch", far)
        _tx_off(net, ("server", member), ("switch", far))
    for host, members, lacp in (("server", ("b1", "b2"), "active"),
                                ("switch", ("u1", "u2"), switch_lacp)):
        net.ovs(host, "ovs-vsctl", "add-bond", "br0", "bond0", *members,
                "bond_mode=balance-tcp", f"lacp={lacp}", "other_config:lacp-time=fast",
                "other_config:bond-rebalance-interval=1000")
    for client, switch, port, mac, ip in (
            ("c1", "server", "p1", "02:00:00:00:1a:01", "10.0.0.1/24"),
            ("c2", "switch", "p2", "02:00:00:00:1a:02", "10.0.0.2/24")):
        net.ns(client)
        net.veth(client, "eth0", switch, port)
        net.ovs(switch, "ovs-vsctl", "add-port", "br0", port)
        _tx_off(net, (client, "eth0"), (switch, port))
        net.ip(client, "link", "set", "eth0", "address", mac)
        net.addr(client, "eth0", ip)


def _run(net: HandMade, **params: str) -> Result:
    with netprobe.build(net.spec("ovs-lacp-by-hand")) as topo:
        return run_check("ovs-lacp", topo, **params)


def test_ovs_lacp_passes_on_bonds_made_by_hand(hand: HandMade) -> None:
    lacp_bonded(hand)
    result = _run(hand)
    assert result.status is Status.PASS, result.evidence()
    assert "longest gap " in result.steps[2].detail


def test_lacp_off_on_the_switch_by_hand_is_named(hand: HandMade) -> None:
    lacp_bonded(hand, switch_lacp="off")
    diagnosis = diagnosis_of(_run(hand, max_negotiation="3"))
    assert "switch:bond0 has lacp=off: no partner for server:bond0" in diagnosis
