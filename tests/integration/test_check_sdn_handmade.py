"""The sdn check on a switch made by hand: ovsdb-server and ovs-vswitchd started with
plain commands inside a namespace, the bridge set with ovs-vsctl, and netprobe's os-ken
controller app started by hand beside them, listening on that namespace's loopback; then
adopted. Healthy it passes; each sabotage of test_check_sdn.py, made by hand too, fails
with the same diagnosis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.handmade_net import HandMade
from support.results import diagnosis_of

import netprobe
from netprobe.check import Result, Status, run_check
from netprobe.topology._kernel.sdn import has_os_ken

pytestmark = [
    pytest.mark.root,
    pytest.mark.netprobe_requires("ovs-vsctl"),
    pytest.mark.skipif(not has_os_ken(), reason="os-ken is not installed (pip install os-ken)"),
]

FLOWS = ["cookie=0x66,priority=100,ip,nw_src=10.0.0.66,actions=drop",
         "cookie=0x1,priority=10,ip,nw_dst=10.0.0.2,actions=NORMAL",
         "cookie=0x1,priority=10,ip,nw_src=10.0.0.2,actions=NORMAL",
         "cookie=0x1,priority=10,arp,actions=NORMAL"]
PORT = 6653


@pytest.fixture
def hand() -> Iterator[HandMade]:
    with HandMade() as net:
        yield net


def _controller(net: HandMade, flows: list[str]) -> str:
    """netprobe's os-ken app, started by hand in the switch's namespace: its log file."""
    conf = net.file("controller.json", json.dumps({"listen": f"tcp:127.0.0.1:{PORT}",
                                                    "flows": flows}))
    log = net.file("controller.log", "")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", net.hosts["switch"], sys.executable, "-m",
             "netprobe.topology._kernel.oskenapp", conf],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    net.pidfiles.append(net.file("controller.pid", str(proc.pid)))  # stopped at close
    return log


def _switch(net: HandMade, flows: list[str] = FLOWS, port: int = PORT) -> None:
    """sdn.yaml by hand: good, server, bad on switch:br0, run by a controller."""
    net.ns("switch")
    net.ovs_start("switch")
    log = _controller(net, flows)
    net.ovs("switch", "ovs-vsctl", "add-br", "br0", "--", "set", "bridge", "br0",
            "datapath_type=netdev", "fail_mode=secure", "--", "set-controller", "br0",
            f"tcp:127.0.0.1:{port}", "--", "set", "controller", "br0", "inactivity_probe=0")
    net.ip("switch", "link", "set", "br0", "up")
    for index, (host, mac, ip) in enumerate((("good", "02:00:00:00:5d:01", "10.0.0.1/24"),
                                             ("server", "02:00:00:00:5d:02", "10.0.0.2/24"),
                                             ("bad", "02:00:00:00:5d:66", "10.0.0.66/24")), 1):
        net.ns(host)
        net.veth(host, "eth0", "switch", f"p{index}")
        net.ovs("switch", "ovs-vsctl", "add-port", "br0", f"p{index}")
        net.exec(host, "ethtool", "-K", "eth0", "tx", "off")
        net.exec("switch", "ethtool", "-K", f"p{index}", "tx", "off")
        net.ip(host, "link", "set", "eth0", "address", mac)
        net.addr(host, "eth0", ip)
    if port == PORT:  # the flows are in once the controller saw the barrier behind them
        deadline = time.monotonic() + 30
        while " pushed " not in Path(log).read_text():
            assert time.monotonic() < deadline, Path(log).read_text()
            time.sleep(0.05)


def _run(net: HandMade) -> Result:
    with netprobe.build(net.spec("sdn-by-hand")) as topo:
        return run_check("sdn", topo)


def test_sdn_passes_on_a_switch_and_controller_made_by_hand(hand: HandMade) -> None:
    _switch(hand)
    result = _run(hand)
    assert result.status is Status.PASS, result.evidence()
    assert "cookie=0x66" in result.steps[3].detail


def test_a_drop_pushed_wrong_by_hand_is_named(hand: HandMade) -> None:
    _switch(hand, [FLOWS[0].replace("10.0.0.66", "10.0.0.67"), *FLOWS[1:]])
    diagnosis = diagnosis_of(_run(hand))
    assert "the controller pushed no flow that matches the bad host bad:eth0 (10.0.0.66)" \
        in diagnosis
    assert "nw_src=10.0.0.67" in diagnosis


def test_a_wrong_controller_port_by_hand_is_named(hand: HandMade) -> None:
    _switch(hand, port=PORT + 1)
    diagnosis = diagnosis_of(_run(hand))
    assert f"switch:br0 is not connected to its controller at tcp:127.0.0.1:{PORT + 1}" \
        in diagnosis
