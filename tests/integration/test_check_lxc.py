"""The lxc check passes on LXC's default network (lxc.yaml: lxcbr0, dnsmasq, lxc-net's
masquerade, a container asking for its address by DHCP) and names the fault when the
masquerade rule is gone, dnsmasq is not running or ip_forward is off."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.lxc_net import dnsmasq, gone, wait_for
from support.results import failed_steps

import netprobe
from netprobe.check import Status, reference_path, run_check
from netprobe.topology import Topology

pytestmark = pytest.mark.root

OUT = "c1:eth0 → 192.0.2.1: new flow leaves with source 192.0.2.2"


@pytest.fixture
def lxc() -> Iterator[Topology]:
    """lxc.yaml built: its dnsmasq serves lxcbr0, and c1's client holds its lease."""
    with netprobe.build(netprobe.load(reference_path("lxc.yaml"))) as topo:
        held = topo.dhcp_lease("c1", "eth0")
        assert held is not None and held.ip.startswith("10.0.3."), held
        yield topo


def _stop_dnsmasq(topo: Topology) -> None:
    for server in topo.dhcp_servers("lxchost"):
        os.kill(server.pid, signal.SIGTERM)
        wait_for(f"dnsmasq {server.pid} stopped", lambda pid=server.pid: gone(pid))


def test_lxc_passes_on_lxcs_default_network(lxc: Topology) -> None:
    result = run_check("lxc", lxc)
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 5
    lease = result.steps[0]
    assert lease.detail.startswith("10.0.3."), lease.detail
    assert "from server 10.0.3.1, router 10.0.3.1, lease 3600 s" in lease.detail
    assert result.steps[2].name == OUT


def test_lxc_names_a_missing_masquerade(lxc: Topology) -> None:
    lxc.run("lxchost", ["nft", "delete", "table", "ip", "lxc"], check=True)
    result = run_check("lxc", lxc)
    assert result.status is Status.FAIL
    assert failed_steps(result) == [OUT]
    assert result.diagnosis is not None
    assert "no masquerade/SNAT rule for 10.0.3.0/24 out of eth0 on lxchost" in result.diagnosis
    assert "source not rewritten: c1:eth0's flow arrived at outside:eth0 as 10.0.3." in \
        result.diagnosis
    assert ("no masquerade for 10.0.3.0/24 in lxchost's nat POSTROUTING (lxc-net adds "
            '"ip saddr 10.0.3.0/24 ip daddr != 10.0.3.0/24 masquerade", or with iptables '
            '"-t nat -A POSTROUTING -s 10.0.3.0/24 ! -d 10.0.3.0/24 -j MASQUERADE")'
            ) in result.diagnosis


def test_lxc_names_dnsmasq_not_running(lxc: Topology) -> None:
    _stop_dnsmasq(lxc)
    result = run_check("lxc", lxc)
    assert result.status is Status.FAIL
    assert failed_steps(result) == ["c1:eth0: DHCP lease from 10.0.3.1 on lxchost:lxcbr0"]
    assert result.diagnosis == ("no DHCP server answered on lxcbr0: no dnsmasq runs in lxchost "
                                "(lxc-net starts one on lxcbr0)")
    assert "no offer after 4 discovers" in result.steps[0].detail


def test_lxc_names_ip_forward_off(lxc: Topology) -> None:
    lxc.run("lxchost", ["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"], check=True)
    result = run_check("lxc", lxc)
    assert result.status is Status.FAIL
    assert failed_steps(result) == [OUT]
    assert result.diagnosis is not None
    assert result.diagnosis == (
        "ip_forward is 0 on lxchost: it routes nothing, so no container of 10.0.3.0/24 reaches "
        "beyond lxcbr0 (lxc-net sets net.ipv4.ip_forward = 1)")


def test_lxc_names_a_dnsmasq_serving_another_interface(lxc: Topology, tmp_path: Path) -> None:
    """A dnsmasq left running for another bridge answers nothing on lxcbr0."""
    _stop_dnsmasq(lxc)
    argv = [{"--interface=lxcbr0": "--interface=eth0", "10.0.3.1": "192.0.2.2"}.get(a, a)
            for a in dnsmasq(str(tmp_path), foreground=True)]
    lxc.spawn("lxchost", argv)
    wait_for("dnsmasq on eth0", lambda: bool(lxc.dhcp_servers("lxchost")))
    result = run_check("lxc", lxc)
    assert failed_steps(result) == ["c1:eth0: DHCP lease from 10.0.3.1 on lxchost:lxcbr0"]
    assert result.diagnosis is not None
    assert result.diagnosis.startswith(
        "no DHCP server answered on lxcbr0: lxchost's dnsmasq (pid "), result.diagnosis
    assert "does not serve lxcbr0 (pid " in result.diagnosis
    assert ": eth0, 192.0.2.2, 10.0.3.2-10.0.3.254)" in result.diagnosis
