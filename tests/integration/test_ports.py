"""A Port where a port's text went: the topology, the context, the expectations and the
check framework's port helpers, on a real bridge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import netprobe
from netprobe.check import (
    Context,
    Port,
    echo_and_reply,
    ipv4_of,
    parse_ports,
    peer_port,
    require_bridge,
)
from netprobe.checks import bridge
from netprobe.errors import NotFound, SpecError
from netprobe.expect import at, at_exactly, expect
from netprobe.traffic import ethernet

pytestmark = pytest.mark.root

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RED, BLUE = Port("red", "eth0"), Port("blue", "eth0")


@pytest.fixture(scope="module")
def topo() -> Iterator[netprobe.Topology]:
    with netprobe.build(netprobe.load(EXAMPLES / "redblue.yaml")) as built:
        yield built


def test_topology_takes_a_port_its_text_or_host_and_name(topo: netprobe.Topology) -> None:
    assert topo.mac(RED) == topo.mac("red:eth0") == topo.mac("red", "eth0") == "02:00:00:00:00:01"
    assert topo.ifname(BLUE) == topo.ifname("blue", "eth0")
    with pytest.raises(NotFound):
        topo.mac(Port("red", "nothere"))
    with pytest.raises(NotFound, match="VM's side"):
        topo.mac("red:eth0@vm")


def test_context_link_and_expect_take_a_port(topo: netprobe.Topology) -> None:
    ctx = Context(topo, explain=False)
    link = ctx.link(RED)
    assert link is not None and link == ctx.link("red", "eth0")
    outcome = ctx.expect("broadcast floods", ethernet(topo.mac(RED), "ff:ff:ff:ff:ff:ff"), RED,
                         at_exactly([BLUE], among=[RED, BLUE]), timeout=0.5)
    assert outcome.passed, outcome.evidence()
    assert set(outcome.reports) == {"red:eth0", "blue:eth0"}  # outcomes name ports by text


def test_echo_and_reply_is_answered_across_the_bridge(topo: netprobe.Topology) -> None:
    request, reply = echo_and_reply(topo.mac(RED), topo.mac(BLUE), "10.0.0.1", "10.0.0.2")
    outcome = expect(topo, request, RED, at(RED), match=reply, timeout=0.5)
    assert outcome.passed, outcome.evidence()


def test_port_helpers_answer_in_ports(topo: netprobe.Topology) -> None:
    assert parse_ports(topo, "red:eth0, blue:eth0", at_least=2) == [RED, BLUE]
    assert parse_ports(topo, [RED, "blue:eth0"]) == [RED, BLUE]
    assert peer_port(topo, RED) == Port("switch", "red")
    assert peer_port(topo, "switch:blue") == BLUE  # declared at its other end
    assert ipv4_of(topo, BLUE) == "10.0.0.2"
    assert require_bridge(Context(topo), "switch:br0") == Port("switch", "br0")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("red:eth0", "at least 2 ports"),
        ("red:eth0,blue", "at least 2 ports"),
        ("red:eth0,blue:eth9", "unknown port blue:eth9"),
        ("red:eth0,nohost:eth0", "unknown port nohost:eth0"),
        ("red:eth0,switch:red@vm", "at least 2 ports"),
    ],
)
def test_parse_ports_refuses_with_a_spec_error(
    topo: netprobe.Topology, value: str, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        parse_ports(topo, value, at_least=2)


@pytest.mark.parametrize("name", ["switch:red", "switch", "nohost:br0", "red:eth0"])
def test_require_bridge_refuses_what_is_not_a_bridge(topo: netprobe.Topology, name: str) -> None:
    with pytest.raises(SpecError, match="bridge must be HOST:BRIDGE of this topology"):
        require_bridge(Context(topo), name)


def test_bridge_check_keeps_its_text_valued_helpers(topo: netprobe.Topology) -> None:
    assert bridge.port_list(topo, "red:eth0,blue:eth0") == ["red:eth0", "blue:eth0"]
    assert bridge.peer_port(topo, "red:eth0") == "switch:red"
    assert bridge.ipv4_of(topo, "red:eth0") == "10.0.0.1"
    _, reply = bridge.echo_reply(topo, "red:eth0", "blue:eth0", "10.0.0.1", "10.0.0.2")
    assert reply.rewrites["eth.src"] == "02:00:00:00:00:02"
    assert bridge.port_faults(Context(topo), "switch:br0", "red:eth0") == []
