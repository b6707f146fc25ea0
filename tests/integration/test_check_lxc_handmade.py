"""The lxc check on an LXC host made by hand, as lxc-net makes one when nft is not used:
lxcbr0 with lxc-net's MAC and address, ip_forward, lxc-net's iptables rules one command at a
time, its dnsmasq (lxc-net's command line), and a container namespace whose own busybox
udhcpc configures eth0 from its lease; then adopted. Healthy it passes; without the
masquerade rule, with dnsmasq killed, or with ip_forward off it fails, the fault named."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from support.handmade_net import HandMade
from support.lxc_net import dnsmasq, gone, udhcpc, wait_for
from support.results import failed_steps

import netprobe
from netprobe.check import Result, Status, run_check

pytestmark = pytest.mark.root

MASQUERADE = ["-s", "10.0.3.0/24", "!", "-d", "10.0.3.0/24", "-j", "MASQUERADE"]
LXC_NET = [  # lxc-net's start_iptables, in its order
    ["-I", "INPUT", "-i", "lxcbr0", "-p", "udp", "--dport", "67", "-j", "ACCEPT"],
    ["-I", "INPUT", "-i", "lxcbr0", "-p", "tcp", "--dport", "67", "-j", "ACCEPT"],
    ["-I", "INPUT", "-i", "lxcbr0", "-p", "udp", "--dport", "53", "-j", "ACCEPT"],
    ["-I", "INPUT", "-i", "lxcbr0", "-p", "tcp", "--dport", "53", "-j", "ACCEPT"],
    ["-I", "FORWARD", "-i", "lxcbr0", "-j", "ACCEPT"],
    ["-I", "FORWARD", "-o", "lxcbr0", "-j", "ACCEPT"],
    ["-t", "nat", "-A", "POSTROUTING", *MASQUERADE],
    ["-t", "mangle", "-A", "POSTROUTING", "-o", "lxcbr0", "-p", "udp", "-m", "udp",
     "--dport", "68", "-j", "CHECKSUM", "--checksum-fill"],
]


def lxc_host(net: HandMade) -> None:
    """lxc.yaml by hand, its DHCP server and client started by hand."""
    for host in ("lxchost", "c1", "outside"):
        net.ns(host)
    net.ip("lxchost", "link", "add", "lxcbr0", "type", "bridge")
    net.sysctl("lxchost", "net.ipv4.ip_forward", "1")
    net.ip("lxchost", "addr", "add", "10.0.3.1/24", "broadcast", "+", "dev", "lxcbr0")
    net.ip("lxchost", "link", "set", "dev", "lxcbr0", "address", "00:16:3e:00:00:00", "up")
    for rule in LXC_NET:
        net.exec("lxchost", "iptables", "-w", *rule)
    net.veth("c1", "eth0", "lxchost", "vethc1", up=False)
    net.ip("c1", "link", "set", "eth0", "address", "00:16:3e:4a:5b:c1", "up")
    net.ip("lxchost", "link", "set", "vethc1", "master", "lxcbr0", "up")
    net.veth("lxchost", "eth0", "outside", "eth0")
    net.addr("lxchost", "eth0", "192.0.2.2/24")
    net.addr("outside", "eth0", "192.0.2.1/24")
    net.route("lxchost", "default", "via", "192.0.2.1")
    net.daemon("lxchost", dnsmasq(net.dir), f"{net.dir}/dnsmasq.pid")
    net.daemon("c1", udhcpc(net.dir), f"{net.dir}/udhcpc.pid")  # returns once bound
    assert "inet 10.0.3." in net.ip("c1", "-4", "addr", "show", "dev", "eth0")


@pytest.fixture
def hand() -> Iterator[HandMade]:
    with HandMade() as net:
        lxc_host(net)
        yield net


def _run(net: HandMade) -> Result:
    with netprobe.build(net.spec("lxc-by-hand")) as topo:
        return run_check("lxc", topo)


def test_lxc_passes_on_an_lxc_host_made_by_hand(hand: HandMade) -> None:
    result = _run(hand)
    assert result.status is Status.PASS, result.evidence()
    lease, holds = result.steps[0], result.steps[1]
    assert lease.name == "c1:eth0: DHCP lease from 10.0.3.1 on lxchost:lxcbr0"
    assert lease.detail.startswith("10.0.3."), lease.detail
    assert "from server 10.0.3.1, router 10.0.3.1, lease 3600 s" in lease.detail
    assert holds.name == "c1:eth0 holds a DHCP address of 10.0.3.0/24, default via 10.0.3.1"
    assert [s.name for s in result.steps[2:]] == [
        "c1:eth0 → 192.0.2.1: new flow leaves with source 192.0.2.2",
        f"reply 192.0.2.1 → 192.0.2.2:40000: back to {lease.detail.split()[0]}:40000",
        "c1:eth0 → 192.0.2.1: established flow keeps 192.0.2.2:40000",
    ]


def test_no_masquerade_rule_is_named(hand: HandMade) -> None:
    hand.exec("lxchost", "iptables", "-t", "nat", "-D", "POSTROUTING", *MASQUERADE)
    result = _run(hand)
    assert result.status is Status.FAIL
    assert failed_steps(result) == ["c1:eth0 → 192.0.2.1: new flow leaves with source 192.0.2.2"]
    assert result.diagnosis is not None
    assert "no masquerade/SNAT rule for 10.0.3.0/24 out of eth0 on lxchost" in result.diagnosis
    assert "source not rewritten: c1:eth0's flow arrived at outside:eth0 as 10.0.3." in \
        result.diagnosis
    assert ("no masquerade for 10.0.3.0/24 in lxchost's nat POSTROUTING (lxc-net adds "
            in result.diagnosis)


def test_dnsmasq_not_running_is_named(hand: HandMade) -> None:
    with open(f"{hand.dir}/dnsmasq.pid") as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGTERM)
    wait_for("dnsmasq stopped", lambda: gone(pid))
    result = _run(hand)
    assert result.status is Status.FAIL
    assert failed_steps(result) == ["c1:eth0: DHCP lease from 10.0.3.1 on lxchost:lxcbr0"]
    assert result.steps[1].status is Status.INCONCLUSIVE, result.steps[1]
    assert result.diagnosis == ("no DHCP server answered on lxcbr0: no dnsmasq runs in lxchost "
                                "(lxc-net starts one on lxcbr0)")


def test_ip_forward_off_is_named(hand: HandMade) -> None:
    hand.sysctl("lxchost", "net.ipv4.ip_forward", "0")
    result = _run(hand)
    assert result.status is Status.FAIL
    assert failed_steps(result) == ["c1:eth0 → 192.0.2.1: new flow leaves with source 192.0.2.2"]
    assert result.diagnosis is not None
    assert result.diagnosis == (
        "ip_forward is 0 on lxchost: it routes nothing, so no container of 10.0.3.0/24 reaches "
        "beyond lxcbr0 (lxc-net sets net.ipv4.ip_forward = 1)")
