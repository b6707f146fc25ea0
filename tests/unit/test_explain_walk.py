"""The walk of the live state (no kernel: hosts given as data) and the causes it shows."""

from __future__ import annotations

import ipaddress

from netprobe.explain._cause import rank
from netprobe.explain._facts import Cause, Findings, PathFacts
from netprobe.explain._nfttrace import own_table, table_name
from netprobe.explain._walk import Network, Step, walk
from netprobe.topology._kernel.state import LiveHost, LiveInterface, LiveRoute
from netprobe.traffic._droptrace import DropReport


def _if(name: str, mac: str, *addrs: str, kind: str = "veth", master: str | None = None,
        mtu: int = 1500) -> LiveInterface:  # fmt: skip
    return LiveInterface(name, 1, kind, mac, mtu, True, True, master,
                         tuple(ipaddress.ip_interface(a) for a in addrs))  # fmt: skip


HOSTS = {
    "a": LiveHost("a", (_if("eth0", "02:00:00:00:00:01", "10.1.0.1/24"),)),
    "r": LiveHost("r", (
        _if("ra", "02:00:00:00:00:02", "10.1.0.254/24"),
        _if("br0", "02:00:00:00:00:03", "10.2.0.254/24", kind="bridge"),
        _if("rb", "02:00:00:00:00:04", master="br0"),
    )),
    "b": LiveHost("b", (_if("eth0", "02:00:00:00:00:05", "10.2.0.1/24"),)),
}  # fmt: skip
PEERS = {("a", "eth0"): ("r", "ra"), ("r", "ra"): ("a", "eth0"),
         ("b", "eth0"): ("r", "rb"), ("r", "rb"): ("b", "eth0")}  # fmt: skip


def _route(host: str, dst: str) -> LiveRoute | None:
    table = {
        ("r", "10.2.0.1"): LiveRoute(ipaddress.ip_network("10.2.0.0/24"), dev="br0"),
        ("r", "10.9.0.1"): LiveRoute(ipaddress.ip_network("10.9.0.0/24"), gateway="10.1.0.1",
                                     dev="ra"),
    }
    return table.get((host, dst))


NET = Network(HOSTS, PEERS, _route)


def test_the_walk_crosses_the_router_and_the_bridge_to_the_holder() -> None:
    steps = walk(NET, ("a", "eth0"), "10.2.0.1", "02:00:00:00:00:02")
    assert [(s.host, s.iif, s.action) for s in steps] == [
        ("r", "ra", "forward"), ("b", "eth0", "deliver")
    ]
    assert ("r", "rb") in steps[1].crossed


def test_a_route_back_out_of_the_way_in_is_a_bounce() -> None:
    steps = walk(NET, ("a", "eth0"), "10.9.0.1", "02:00:00:00:00:02")
    assert [(s.host, s.action) for s in steps] == [("r", "bounce")]


def test_a_mac_nobody_has_is_lost_at_the_first_hop() -> None:
    steps = walk(NET, ("a", "eth0"), "10.2.0.1", "02:00:00:00:00:99")
    assert steps == (Step("r", "ra", "lost", crossed=(("a", "eth0"), ("r", "ra"))),)


def test_no_route_on_the_sender_is_said_with_a_fix() -> None:
    probe = {"ip.src": "10.1.0.1", "ip.dst": "10.2.0.1", "eth.type": 2048}
    path = PathFacts(walked=True, sender_addresses=("10.1.0.1",))
    found = Findings(probe, "a:eth0", DropReport(True), sender=("a", "eth0"), path=path)
    top = rank(found)[0]
    assert top.text.startswith("a has no route to 10.2.0.1: its own stack cannot send")
    assert top.fix == "give a a route to 10.2.0.1 (or a default route)"


def test_a_cause_carries_its_fix_in_text_and_json() -> None:
    cause = Cause("x is down", ("ip link: x",), 0.9, "ip link set x up")
    assert cause.render().splitlines()[-1] == "    fix: ip link set x up"
    assert cause.to_dict()["fix"] == "ip link set x up"
    assert "fix" not in Cause("y", (), 0.1).to_dict()


def test_the_trace_table_is_named_after_the_run() -> None:
    assert table_name("ab12cd") == "netprobe_trace_ab12cd"
    assert table_name("np-persist") == "netprobe_trace_np_persist"
    assert own_table("netprobe_trace_ab12cd") and not own_table("fw")
