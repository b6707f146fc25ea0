"""Port: "HOST:IFNAME" and "HOST:TAP@vm" parsed in one place, with one error, and the
layers above taking a Port or its text alike."""

from __future__ import annotations

import pytest

from netprobe.check import Port, echo_and_reply, param
from netprobe.errors import SpecError, TrafficError
from netprobe.expect import Barrier, at, at_any, at_exactly, nowhere
from netprobe.topology._model.port import host_and_ifname
from netprobe.traffic import ethernet, parse_port


@pytest.mark.parametrize(
    ("text", "port"),
    [
        ("red:eth0", Port("red", "eth0")),
        (" red:eth0 ", Port("red", "eth0")),
        ("pve:tap100i0@vm", Port("pve", "tap100i0", vm=True)),
        ("h1:up0.10", Port("h1", "up0.10")),
    ],
)
def test_parse_reads_host_interface_and_vm_side(text: str, port: Port) -> None:
    assert Port.parse(text) == port


@pytest.mark.parametrize("text", ["red:eth0", "pve:tap0@vm", "h1:up0.10"])
def test_str_round_trips(text: str) -> None:
    assert str(Port.parse(text)) == text
    assert Port.parse(str(Port.parse(text))) == Port.parse(text)


@pytest.mark.parametrize(
    "text", ["red", "red:", ":eth0", "", "a:b:c", "red:eth 0", "red:tap0@vm@vm", "r/d:eth0"]
)
def test_bad_text_is_a_spec_error_that_quotes_it(text: str) -> None:
    with pytest.raises(SpecError, match=r"a port is HOST:IFNAME \(or HOST:TAP@vm\), not "):
        Port.parse(text)


def test_a_port_passes_parse_unchanged_and_is_a_hashable_value() -> None:
    port = Port("red", "eth0")
    assert Port.parse(port) is port
    assert {Port.parse("red:eth0"), port} == {port}
    assert Port("red", "eth0") != Port("red", "eth0", vm=True)
    assert sorted([Port("b", "x"), Port("a", "y")]) == [Port("a", "y"), Port("b", "x")]
    with pytest.raises(AttributeError):
        port.host = "blue"  # type: ignore[misc]


def test_constructing_a_bad_port_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="interface"):
        Port("red", "")
    with pytest.raises(SpecError, match="vm=True"):
        Port("pve", "tap0@vm")


def test_on_names_another_interface_of_the_same_host() -> None:
    assert Port.parse("hv:bond0").on("eth1") == Port("hv", "eth1")


def test_host_and_ifname_takes_both_forms() -> None:
    assert host_and_ifname("red", "eth0") == ("red", "eth0")
    assert host_and_ifname("red:eth0", None) == ("red", "eth0")
    assert host_and_ifname(Port("pve", "tap0", vm=True), None) == ("pve", "tap0")
    with pytest.raises(SpecError):
        host_and_ifname("red", None)
    with pytest.raises(TypeError):
        host_and_ifname(Port("red", "eth0"), "eth1")


def test_parse_port_keeps_its_tuple_and_its_traffic_error() -> None:
    assert parse_port("pve:tap0@vm") == ("pve", "tap0", True)
    assert parse_port(Port("red", "eth0")) == ("red", "eth0", False)
    with pytest.raises(TrafficError, match="HOST:IFNAME"):
        parse_port("red")


def test_expectations_name_ports_by_their_text() -> None:
    red, blue = Port("red", "eth0"), Port("blue", "eth0")
    assert at(red).ports == ("red:eth0",)
    assert at_any([red, "blue:eth0"]).ports == ("red:eth0", "blue:eth0")
    where = at_exactly([red], among=[red, blue])
    assert (where.ports, where.among) == (("red:eth0",), ("red:eth0", "blue:eth0"))
    assert nowhere(among=[blue]).among == ("blue:eth0",)
    barrier = Barrier(ethernet("02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff"), Port("sw", "br0"))
    assert barrier.port == "sw:br0"
    with pytest.raises(TrafficError):
        at("red")


def test_port_parameters_take_a_port_and_give_its_text() -> None:
    assert param.port()(Port("red", "eth0")) == "red:eth0"
    assert param.port(vm=True)(" pve:tap0@vm ") == "pve:tap0@vm"
    with pytest.raises(ValueError, match="HOST:IFNAME"):
        param.port()("pve:tap0@vm")
    assert param.port_list(minimum=2)([Port("a", "e"), "b:e"]) == [Port("a", "e"), "b:e"]


@pytest.mark.parametrize(
    ("src_ip", "dst_ip", "reply_type"), [("10.0.0.1", "10.0.0.2", 0), ("fd00::1", "fd00::2", 129)]
)
def test_echo_and_reply_swaps_and_masks_what_the_replier_picks(
    src_ip: str, dst_ip: str, reply_type: int
) -> None:
    a, b = "02:00:00:00:00:01", "02:00:00:00:00:02"
    _, reply = echo_and_reply(a, b, src_ip, dst_ip)
    assert reply.mask == {"ip.id", "ttl"}
    assert reply.rewrites == {"src": dst_ip, "dst": src_ip, "icmp.type": reply_type,
                              "eth.src": b, "eth.dst": a}
    _, routed = echo_and_reply(a, b, src_ip, dst_ip, routed=True)
    assert routed.mask == {"ip.id", "ttl", "eth.src", "eth.dst"}
    assert "eth.src" not in routed.rewrites
