"""The dhcp check on Proxmox bridged mode made by hand (plain `ip`, `nft`, dnsmasq started
by hand in uniquely named namespaces) and adopted: it passes when healthy, and each
sabotage of test_check_dhcp.py, made by hand too, fails with the same fault named.

A TAP made by hand has no descriptor netprobe holds (on a real Proxmox host, QEMU holds
it), so the VMs here are namespaces on veths into vmbr0, as Proxmox's containers are:
the check plays the DHCP client from vm100:eth0 (its kernel holds no address there, so
it answers nothing the server sends)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import dnsmasq
from support.handmade_net import HandMade
from support.results import failed_steps

import netprobe
from netprobe.check import Result, Status, run_check

pytestmark = pytest.mark.root

PARAMS = {"client": "vm100:eth0", "others": "vm101:eth0", "uplink": "pve:eno1"}
CLIENT_MAC = "02:00:00:00:01:00"
DISCOVER = ("DISCOVER from vm100:eth0 floods vmbr0: out of eno1 to lan:eth0, and to "
            "vm101:eth0")
OFFER = "OFFER from lan:eth0 back to vm100:eth0 only"


def proxmox_bridged(net: HandMade) -> None:
    """vm100, vm101 ── vmbr0 [pve] eno1 ═══ eth0 [lan] 192.168.10.1 (no server yet)."""
    for host in ("pve", "lan", "vm100", "vm101"):
        net.ns(host)
    net.veth("pve", "eno1", "lan", "eth0")
    net.veth("vm100", "eth0", "pve", "veth100i0")
    net.veth("vm101", "eth0", "pve", "veth101i0")
    net.ip("vm100", "link", "set", "eth0", "address", CLIENT_MAC)
    net.bridge("pve", "vmbr0", "eno1", "veth100i0", "veth101i0")
    net.addr("pve", "vmbr0", "192.168.10.2/24")
    net.route("pve", "default", "via", "192.168.10.1")
    net.addr("lan", "eth0", "192.168.10.1/24")


def serve(net: HandMade, host: str, interface: str, first: str, last: str,
          *extra: str) -> None:
    """dnsmasq started by hand (it detaches itself), killed when the network is closed."""
    command = dnsmasq.argv(Path(net.dir), host, interface, first, last, router="192.168.10.1",
                           dns=["192.168.10.1"], extra=extra)
    command.remove("--keep-in-foreground")
    net.daemon(host, command, f"{net.dir}/{host}.pid")
    dnsmasq.wait_bound(lambda: net.exec(host, "ss", "-H", "-uln"))


@pytest.fixture
def hand() -> Iterator[HandMade]:
    with HandMade() as net:
        yield net


def _run(net: HandMade, **params: str) -> Result:
    with netprobe.build(net.spec("proxmox-bridged-by-hand")) as topo:
        return run_check("dhcp", topo, **{**PARAMS, **params})


def test_dhcp_passes_on_a_bridge_made_by_hand(hand: HandMade) -> None:
    proxmox_bridged(hand)
    serve(hand, "lan", "eth0", "192.168.10.100", "192.168.10.199")
    result = _run(hand)
    assert result.status is Status.PASS, result.evidence()
    assert [s.name for s in result.steps][:2] == [DISCOVER, OFFER]
    assert len(result.steps) == 8


def test_by_hand_the_port_off_vmbr0_is_named(hand: HandMade) -> None:
    proxmox_bridged(hand)
    serve(hand, "lan", "eth0", "192.168.10.100", "192.168.10.199")
    hand.ip("pve", "link", "set", "veth100i0", "nomaster")
    result = _run(hand)
    assert result.status is Status.FAIL
    assert failed_steps(result) == [DISCOVER]
    assert result.diagnosis == (
        "pve:veth100i0 (the client's port) is not a port of vmbr0: it has no master "
        "(`ip link set veth100i0 master vmbr0` in pve)")


def test_by_hand_a_bridge_nft_rule_dropping_dhcp_is_named(hand: HandMade) -> None:
    proxmox_bridged(hand)
    serve(hand, "lan", "eth0", "192.168.10.100", "192.168.10.199")
    hand.nft("pve", "table bridge guard {\n chain dhcp_in {\n type filter hook forward "
                    "priority 0; policy accept;\n udp sport 68 udp dport 67 drop\n }\n}\n")
    result = _run(hand)
    assert result.status is Status.FAIL
    assert failed_steps(result) == [DISCOVER]
    assert result.diagnosis is not None and result.diagnosis.startswith(
        "pve's nft rule `udp sport 68 udp dport 67 drop` (chain bridge guard dhcp_in"), \
        result.diagnosis


def test_by_hand_the_pool_already_leased_to_another_mac_is_named(hand: HandMade) -> None:
    proxmox_bridged(hand)
    expires = int(time.time()) + 3600
    hand.file("lan.leases", f"{expires} 02:00:00:00:01:02 192.168.10.100 ct102 *\n")
    serve(hand, "lan", "eth0", "192.168.10.100", "192.168.10.100")
    result = _run(hand)
    assert result.status is Status.FAIL
    assert failed_steps(result) == [OFFER]
    assert result.diagnosis is not None and result.diagnosis.endswith(
        "and made no offer: its pool 192.168.10.100-192.168.10.100 is full (1 of 1 addresses "
        "leased: 192.168.10.100 to 02:00:00:00:01:02)"), result.diagnosis
    assert f"saw the DISCOVER from {CLIENT_MAC} (its log: " in result.diagnosis


def test_by_hand_dnsmasq_on_the_wrong_interface_is_named(hand: HandMade) -> None:
    proxmox_bridged(hand)
    hand.ns("office2")
    hand.veth("lan", "eth1", "office2", "eth0")
    hand.addr("lan", "eth1", "192.168.20.1/24")
    serve(hand, "lan", "eth1", "192.168.20.100", "192.168.20.199")
    result = _run(hand)
    assert result.status is Status.FAIL
    assert failed_steps(result) == [OFFER]
    assert result.diagnosis is not None and result.diagnosis.startswith(
        "the DHCP server in lan does not serve eth0: dnsmasq (pid "), result.diagnosis
    assert result.diagnosis.endswith("listens on eth1, not on eth0 where the DISCOVER arrived")


def test_by_hand_a_rogue_dhcp_server_is_named(hand: HandMade) -> None:
    proxmox_bridged(hand)
    serve(hand, "lan", "eth0", "192.168.10.100", "192.168.10.199")
    hand.ns("rogue")
    hand.veth("rogue", "eth0", "pve", "veth102i0")
    hand.ip("pve", "link", "set", "veth102i0", "master", "vmbr0")
    hand.ip("rogue", "link", "set", "eth0", "address", "02:00:00:00:06:66")
    hand.addr("rogue", "eth0", "192.168.10.250/24")
    serve(hand, "rogue", "eth0", "192.168.10.240", "192.168.10.245", "--no-ping")
    result = _run(hand)
    assert result.status is Status.FAIL
    assert failed_steps(result)[0] == OFFER
    assert result.diagnosis is not None and result.diagnosis.startswith(
        "a second DHCP server answers on vmbr0: server 192.168.10.250 (MAC 02:00:00:00:06:66) "
        "OFFER 192.168.10.24"), result.diagnosis
    assert "it came in by vmbr0's port veth102i0, from rogue:eth0" in result.diagnosis


def test_by_hand_a_server_that_serves_dhcpv6_too_is_read(hand: HandMade) -> None:
    """Its DHCPv6 range is not one of the pool's (the full pool is still named)."""
    proxmox_bridged(hand)
    hand.addr("lan", "eth0", "fd42::1/64")
    expires = int(time.time()) + 3600
    hand.file("lan.leases", f"{expires} 02:00:00:00:01:02 192.168.10.100 ct102 *\n")
    serve(hand, "lan", "eth0", "192.168.10.100", "192.168.10.100",
          "--dhcp-range=fd42::10,fd42::ff,64")
    result = _run(hand)
    assert result.status is Status.FAIL
    assert failed_steps(result) == [OFFER]
    assert result.diagnosis is not None and result.diagnosis.endswith(
        "and made no offer: its pool 192.168.10.100-192.168.10.100 is full (1 of 1 addresses "
        "leased: 192.168.10.100 to 02:00:00:00:01:02)"), result.diagnosis
