"""The sdn check on a switch made by hand: ovsdb-server and ovs-vswitchd started with
plain commands inside a namespace, the bridge set with ovs-vsctl, and netprobe's os-ken
controller app started by hand beside them, listening on that namespace's loopback; then
adopted. That controller is the user's, not netprobe's: the check never stops it (nor
switches the adopted bridge's fail mode) unless told its pid with stop_controller; then
healthy it passes. Each sabotage of test_check_sdn.py, made by hand too, fails with the
same diagnosis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.handmade_net import HandMade
from support.results import diagnosis_of

import netprobe
from netprobe.check import Result, Status, Step, run_check
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


def _controller(net: HandMade, flows: list[str]) -> tuple[str, subprocess.Popen[bytes]]:
    """netprobe's os-ken app, started by hand in the switch's namespace: its log file and
    its process (`ip netns exec` execs it: the same pid)."""
    conf = net.file("controller.json", json.dumps({"listen": f"tcp:127.0.0.1:{PORT}",
                                                    "flows": flows}))
    log = net.file("controller.log", "")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", net.hosts["switch"], sys.executable, "-m",
             "netprobe.topology._kernel.oskenapp", conf],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    net.pidfiles.append(net.file("controller.pid", str(proc.pid)))  # stopped at close
    return log, proc


def _switch(net: HandMade, flows: list[str] = FLOWS, port: int = PORT,
            target: str | None = None) -> subprocess.Popen[bytes]:
    """sdn.yaml by hand: good, server, bad on switch:br0, run by a controller."""
    net.ns("switch")
    net.ovs_start("switch")
    log, proc = _controller(net, flows)
    net.ovs("switch", "ovs-vsctl", "add-br", "br0", "--", "set", "bridge", "br0",
            "datapath_type=netdev", "fail_mode=secure", "--", "set-controller", "br0",
            target or f"tcp:127.0.0.1:{port}", "--", "set", "controller", "br0",
            "inactivity_probe=0")
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
    if port == PORT and target is None:  # the flows are in once the controller saw the
        # barrier behind them
        deadline = time.monotonic() + 30
        while " pushed " not in Path(log).read_text():
            assert time.monotonic() < deadline, Path(log).read_text()
            time.sleep(0.05)
    return proc


def _run(net: HandMade, **params: Any) -> Result:
    with netprobe.build(net.spec("sdn-by-hand")) as topo:
        return run_check("sdn", topo, **params)


def _fail_mode(net: HandMade) -> str:
    return net.ovs("switch", "ovs-vsctl", "get", "bridge", "br0", "fail_mode").strip()


def _gone_steps(result: Result) -> list[Step]:
    return [s for s in result.steps if s.name.startswith("controller gone")]


def test_sdn_passes_on_a_switch_and_controller_made_by_hand(hand: HandMade) -> None:
    proc = _switch(hand)
    result = _run(hand, stop_controller=proc.pid)  # the user's consent to stop theirs
    assert result.status is Status.PASS, result.evidence()
    assert "cookie=0x66" in result.steps[3].detail
    assert len(_gone_steps(result)) == 5
    assert proc.wait(timeout=10) is not None  # stopped, as consented
    assert _fail_mode(hand) == "secure"  # standalone for the proof, then put back


def test_a_controller_netprobe_did_not_start_is_never_stopped(hand: HandMade) -> None:
    proc = _switch(hand)
    result = _run(hand)
    gone = _gone_steps(result)
    assert [s.status for s in gone] == [Status.SKIP] * 5, result.evidence()
    why = f"the controller at tcp:127.0.0.1:{PORT} in switch is not netprobe's (pid {proc.pid}, "
    assert all(why in s.detail and "netprobe never stops it" in s.detail
               and "-p stop_controller=PID" in s.detail for s in gone), gone[0].detail
    assert proc.poll() is None  # still running, still the bridge's controller
    assert "is_connected:true" in hand.ovs("switch", "ovs-vsctl", "--columns=is_connected",
                                           "list", "controller").replace(" ", "")
    assert _fail_mode(hand) == "secure"  # never switched to fail-open
    assert not [s for s in result.steps if s.status is Status.FAIL], result.evidence()


def test_a_listener_on_the_same_port_at_another_address_is_not_the_controller(
        hand: HandMade) -> None:
    proc = _switch(hand, target=f"tcp:192.0.2.9:{PORT}")
    result = _run(hand, stop_controller=proc.pid)  # even consenting: not the one at 192.0.2.9
    gone = _gone_steps(result)
    assert [s.status for s in gone] == [Status.SKIP] * 5, result.evidence()
    assert f"no controller listens at tcp:192.0.2.9:{PORT} in switch" in gone[0].detail
    assert proc.poll() is None
    assert _fail_mode(hand) == "secure"


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
