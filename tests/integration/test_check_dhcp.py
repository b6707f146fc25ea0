"""The dhcp check passes on Proxmox bridged mode (a VM's TAP on vmbr0, the office router's
dnsmasq behind the uplink) and names the fault on each sabotage: the TAP off the bridge,
a bridge-family nft rule dropping DHCP, the pool exhausted, dnsmasq on the wrong
interface, a rogue DHCP server on the bridge."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from support import dnsmasq
from support.results import failed_steps

import netprobe
from netprobe import Spec
from netprobe.check import Status, reference_path, run_check
from netprobe.topology import DhcpServer, Host, Interface, Veth

pytestmark = pytest.mark.root

STEPS = [
    "DISCOVER from pve:tap100i0@vm floods vmbr0: out of eno1 to lan:eth0, and to "
    "pve:tap101i0@vm",
    "OFFER from lan:eth0 back to pve:tap100i0@vm only",
    "REQUEST (selecting {ip} from 192.168.10.1) floods vmbr0 to lan:eth0, and to "
    "pve:tap101i0@vm",
    "ACK from lan:eth0 back to pve:tap100i0@vm only",
    "renewal: unicast REQUEST from {ip} (ciaddr) to 192.168.10.1 reaches lan:eth0 only",
    "renewal ACKed by lan:eth0 to pve:tap100i0@vm only",
]


def _reference() -> Spec:
    return netprobe.load(reference_path("proxmox-bridged.yaml"))


def _hosts(spec: Spec, **changed: Host) -> Spec:
    hosts = tuple(changed.pop(h.name, h) for h in spec.hosts) + tuple(changed.values())
    return dataclasses.replace(spec, hosts=hosts)


def _server(spec: Spec, **fields: object) -> Spec:
    lan = spec.host("lan")
    servers = tuple(dataclasses.replace(s, **fields) for s in lan.dhcp_servers)
    return _hosts(spec, lan=dataclasses.replace(lan, dhcp_servers=servers))


def test_dhcp_passes_on_proxmox_bridged_mode() -> None:
    result = run_check("dhcp")
    assert result.status is Status.PASS, result.evidence()
    names = [s.name for s in result.steps]
    ip = names[3].split("selecting ")[1].split(" ")[0]
    assert 100 <= int(ip.rsplit(".", 1)[1]) <= 199
    expected = [n.format(ip=ip) for n in STEPS]
    assert [names[0], names[1], names[3], names[4], names[6], names[7]] == expected
    assert names[2] == (f"OFFER: {ip} in 192.168.10.100-192.168.10.199, router 192.168.10.1, "
                        "DNS 192.168.10.1, from server 192.168.10.1")
    assert "barrier reached pve:tap101i0@vm" in result.steps[1].detail


def test_a_router_other_than_expected_is_named() -> None:
    result = run_check("dhcp", router="192.168.10.254")
    assert result.status is Status.FAIL
    assert failed_steps(result) == [result.steps[2].name]
    assert result.diagnosis is not None and result.diagnosis.endswith(
        "with router 192.168.10.1, not 192.168.10.254")


def test_the_tap_not_enslaved_to_vmbr0_is_named() -> None:
    spec = _reference()
    pve = spec.host("pve")
    ifaces = tuple(dataclasses.replace(i, master=None) if i.name == "tap100i0" else i
                   for i in pve.interfaces)
    result = run_check("dhcp", _hosts(spec, pve=dataclasses.replace(pve, interfaces=ifaces)))
    assert result.status is Status.FAIL
    assert failed_steps(result) == [STEPS[0]]
    assert result.diagnosis == (
        "pve:tap100i0 (the client's port) is not a port of vmbr0: it has no master "
        "(`ip link set tap100i0 master vmbr0` in pve)")


DROP_DHCP = """
table bridge filter {
    chain forward {
        type filter hook forward priority 0; policy accept;
        udp dport { 67, 68 } drop
    }
}
"""


def test_a_bridge_nft_rule_dropping_dhcp_is_named(tmp_path: Path) -> None:
    with netprobe.build(_reference()) as topo:
        (tmp_path / "drop.nft").write_text(DROP_DHCP)
        topo.run("pve", ["nft", "-f", str(tmp_path / "drop.nft")], check=True)
        result = run_check("dhcp", topo)
    assert result.status is Status.FAIL
    assert failed_steps(result) == [STEPS[0]]
    assert result.diagnosis is not None
    assert result.diagnosis.startswith("pve's nft rule `udp dport { 67, 68 } drop` (chain "
                                       "bridge filter forward"), result.diagnosis


def test_the_pool_exhausted_is_named() -> None:
    """A range of one address, taken by a real client (udhcpc) on the same bridge."""
    spec = _server(_reference(), range=("192.168.10.100", "192.168.10.100"))
    pve = spec.host("pve")
    port = Interface("veth102i0", Veth("ct102:eth0"), master="vmbr0")
    ct = Host("ct102", (Interface("eth0", mac="02:00:00:00:01:02", dhcp=True),))
    spec = _hosts(spec, pve=dataclasses.replace(pve, interfaces=(*pve.interfaces, port)),
                  ct102=ct)
    result = run_check("dhcp", spec, others="pve:tap101i0@vm")
    assert result.status is Status.FAIL
    assert failed_steps(result) == [STEPS[1]]
    assert result.diagnosis is not None
    assert result.diagnosis.startswith(
        "the DHCP server on lan:eth0 (dnsmasq, pid "), result.diagnosis
    assert ("saw the DISCOVER from bc:24:11:00:01:00" in result.diagnosis
            and result.diagnosis.endswith(
                "and made no offer: its pool 192.168.10.100-192.168.10.100 is full (1 of 1 "
                "addresses leased: 192.168.10.100 to 02:00:00:00:01:02)")), result.diagnosis


def test_dnsmasq_on_the_wrong_interface_is_named(tmp_path: Path) -> None:
    """The router's dnsmasq serves its other LAN (eth1), not eth0 where the VM asks."""
    spec = _reference()
    lan = spec.host("lan")
    other = Interface("eth1", Veth("office2:eth0"), addresses=("192.168.20.1/24",))
    servers = (DhcpServer("eth1", ("192.168.20.100", "192.168.20.199")),)
    lan = dataclasses.replace(lan, interfaces=(*lan.interfaces, other), dhcp_servers=servers)
    result = run_check("dhcp", _hosts(spec, lan=lan, office2=Host("office2")))
    assert result.status is Status.FAIL
    assert failed_steps(result) == [STEPS[1]]
    assert result.diagnosis is not None
    assert result.diagnosis.startswith("the DHCP server in lan does not serve eth0: dnsmasq "
                                       "(pid "), result.diagnosis
    assert result.diagnosis.endswith(
        "listens on eth1, not on eth0 where the DISCOVER arrived"), result.diagnosis


def test_no_dhcp_server_at_all_is_named() -> None:
    result = run_check("dhcp", _no_server())
    assert result.status is Status.FAIL
    assert result.diagnosis == ("no DHCP server runs in lan: nothing answers the DISCOVER "
                                "that reached lan:eth0")


def _no_server() -> Spec:
    spec = _reference()
    return _hosts(spec, lan=dataclasses.replace(spec.host("lan"), dhcp_servers=()))


def test_a_rogue_dhcp_server_on_the_bridge_is_named(tmp_path: Path) -> None:
    """A third namespace on vmbr0 runs its own dnsmasq (no ping check: it answers first)."""
    spec = _reference()
    pve = spec.host("pve")
    port = Interface("veth102i0", Veth("rogue:eth0"), master="vmbr0")
    rogue = Host("rogue", (Interface("eth0", mac="02:00:00:00:06:66",
                                     addresses=("192.168.10.250/24",)),))
    spec = _hosts(spec, pve=dataclasses.replace(pve, interfaces=(*pve.interfaces, port)),
                  rogue=rogue)
    with netprobe.build(spec) as topo:
        dnsmasq.start(topo, "rogue", dnsmasq.argv(
            tmp_path, "rogue", "eth0", "192.168.10.240", "192.168.10.245",
            router="192.168.10.250", extra=["--no-ping"]))
        result = run_check("dhcp", topo)
    assert result.status is Status.FAIL
    assert failed_steps(result)[0] == STEPS[1]
    assert result.diagnosis is not None
    assert result.diagnosis.startswith(
        "a second DHCP server answers on vmbr0: server 192.168.10.250 (MAC 02:00:00:00:06:66) "
        "OFFER 192.168.10.24"), result.diagnosis
    assert ("it came in by vmbr0's port veth102i0, from rogue:eth0; the expected server is on "
            "lan:eth0") in result.diagnosis


def _rogue_spec() -> Spec:
    spec = _reference()
    pve = spec.host("pve")
    port = Interface("veth102i0", Veth("rogue:eth0"), master="vmbr0")
    rogue = Host("rogue", (Interface("eth0", mac="02:00:00:00:06:66",
                                     addresses=("192.168.10.250/24",)),))
    return _hosts(spec, pve=dataclasses.replace(pve, interfaces=(*pve.interfaces, port)),
                  rogue=rogue)


@pytest.mark.parametrize(
    ("delay", "window", "diagnosis"),
    [
        (1, "2.5", "a second DHCP server answers on vmbr0: server 192.168.10.250 (MAC "
                   "02:00:00:00:06:66) OFFER 192.168.10.24"),
        (4, "1", "a second DHCP server runs on vmbr0's segment: dnsmasq (pid "),
    ],
)
def test_a_rogue_server_slower_than_the_expected_one_is_named(
        tmp_path: Path, delay: int, window: str, diagnosis: str) -> None:
    """The rogue answers `delay` s after the expected server: within the window its OFFER
    is seen; beyond it, the server running on the segment is named all the same."""
    with netprobe.build(_rogue_spec()) as topo:
        proc = dnsmasq.start(topo, "rogue", dnsmasq.argv(
            tmp_path, "rogue", "eth0", "192.168.10.240", "192.168.10.245",
            router="192.168.10.250", extra=["--no-ping", f"--dhcp-reply-delay={delay}"]))
        result = run_check("dhcp", topo, window=window)
    assert result.status is Status.FAIL
    assert failed_steps(result)[0] == STEPS[1], result.evidence()
    assert result.diagnosis is not None and result.diagnosis.startswith(diagnosis), \
        result.diagnosis
    if delay > float(window):
        assert result.diagnosis == (
            f"a second DHCP server runs on vmbr0's segment: dnsmasq (pid {proc.pid}) in rogue "
            "serves rogue:eth0 (192.168.10.240-192.168.10.245) (it did not answer within 1 s "
            "of the expected OFFER); the expected server is on lan:eth0")


def test_dnsmasq_limited_by_listen_address_to_another_interface_is_named(
        tmp_path: Path) -> None:
    spec = _reference()
    lan = spec.host("lan")
    other = Interface("eth1", Veth("office2:eth0"), addresses=("192.168.20.1/24",))
    lan = dataclasses.replace(lan, interfaces=(*lan.interfaces, other), dhcp_servers=())
    with netprobe.build(_hosts(spec, lan=lan, office2=Host("office2"))) as topo:
        command = dnsmasq.argv(tmp_path, "lan", "eth1", "192.168.10.100", "192.168.10.199",
                               extra=["--no-ping"])
        command[command.index("--interface=eth1")] = "--listen-address=192.168.20.1"
        proc = dnsmasq.start(topo, "lan", command)
        result = run_check("dhcp", topo)
    assert result.status is Status.FAIL
    assert failed_steps(result) == [STEPS[1]]
    assert result.diagnosis == (
        f"the DHCP server in lan does not serve eth0: dnsmasq (pid {proc.pid}) listens on "
        "listen-address 192.168.20.1 (eth1) with bind-interfaces, not on eth0 where the "
        "DISCOVER arrived")


NOISE = """
table bridge noise {
    chain fw {
        type filter hook forward priority 0; policy accept;
        ip saddr 10.0.67.0/24 tcp dport 22 drop
    }
}
"""
GUARD = """
table %s guard {
    chain fw {
        type filter hook forward priority 0; policy accept;
        udp dport 67 drop
    }
}
"""


@pytest.mark.parametrize("family", ["inet", "bridge"])
def test_the_rule_dropping_bridged_dhcp_is_named_not_one_mentioning_67(
        tmp_path: Path, family: str) -> None:
    """bridge-nf-call-iptables=1 sends bridged IPv4 through inet forward too; the bridge
    rule with 67 in an address is not the culprit."""
    with netprobe.build(_reference()) as topo:
        (tmp_path / "guard.nft").write_text(NOISE + GUARD % family)
        if family == "inet":
            topo.run("pve", ["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"],
                     check=True)
        topo.run("pve", ["nft", "-f", str(tmp_path / "guard.nft")], check=True)
        result = run_check("dhcp", topo)
    assert result.status is Status.FAIL
    assert failed_steps(result) == [STEPS[0]]
    assert result.diagnosis is not None
    assert result.diagnosis.startswith(f"pve's nft rule `udp dport 67 drop` (chain {family} "
                                       "guard fw, handle "), result.diagnosis


# vmbr0 drops the renewal (a unicast REQUEST: the DHCP type, option 53's value at byte
# 250 of the UDP header, is 3) but not the RELEASE (7) sent to the same address.
DROP_RENEWAL = """
table bridge renewal {
    chain fw {
        type filter hook forward priority 0; policy accept;
        ip daddr 192.168.10.1 udp dport 67 @th,2000,8 3 drop
    }
}
"""


def test_a_failed_run_releases_the_lease_it_was_acked(tmp_path: Path) -> None:
    with netprobe.build(_reference()) as topo:
        (tmp_path / "renewal.nft").write_text(DROP_RENEWAL)
        topo.run("pve", ["nft", "-f", str(tmp_path / "renewal.nft")], check=True)
        result = run_check("dhcp", topo)
        assert result.status is Status.FAIL
        assert failed_steps(result)[0].startswith("renewal: unicast REQUEST"), result.evidence()
        (server,) = topo.dhcp_servers("lan")
        deadline = time.monotonic() + 5
        while any(x.mac == "bc:24:11:00:01:00" for x in server.leases()):
            assert time.monotonic() < deadline, "the lease outlived the run: no RELEASE"
            time.sleep(0.05)
