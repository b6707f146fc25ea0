"""The hand-packed rtnetlink requests are pyroute2's, byte for byte, for every message
kind a build sends by the thousand; what the tables do not cover is left to pyroute2."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from netprobe.topology._kernel import nlpack
from netprobe.topology._kernel.links import (
    address_message,
    create_message,
    raise_up,
    route_message,
)
from netprobe.topology._kernel.netlink import CREATE, link_msg
from netprobe.topology._model.spec import Bridge, Interface, Route, Veth, _address

NLM_F_REQUEST_ACK = 0x1 | 0x4


def pyroute2_bytes(msg: Any, msg_type: int, flags: int, seq: int) -> bytes:
    msg = copy.deepcopy(msg)
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg.encode()
    return bytes(msg.data)


VETH = Interface("eth0", Veth("b:eth0"), mac="02:00:00:00:00:01", mtu=9000)
FAR = Interface("eth0", mac="02:00:00:00:00:02", mtu=1400)


def messages() -> list[tuple[str, Any, int]]:
    v4 = _address("10.0.3.7/16")
    return [
        ("lo up", raise_up(link_msg(1)), 16),
        (
            "veth, far end in another namespace, master and up",
            create_message(VETH, name="p0", up=True, master_index=3, peer=(FAR, "eth0", 7))[1],
            16,
        ),
        (
            "veth, both ends given their index",
            create_message(
                VETH, name="p0", up=True, peer=(FAR, "eth0", 7), index=1000, peer_index=1001
            )[1],
            16,
        ),
        (
            "veth, both ends here",
            create_message(
                Interface("a", Veth("h:b")), name="a", up=False, peer=(Interface("b"), "b", None)
            )[1],
            16,
        ),
        ("configure by name", raise_up(link_msg(0, IFLA_IFNAME="eth0", IFLA_MASTER=4)), 16),
        ("tag", link_msg(0, IFLA_IFNAME="eth0", IFLA_IFALIAS="netprobe:abc"), 16),
        ("IPv4 address", address_message(2, v4, dad=False), 20),
        ("IPv4 /31", address_message(2, _address("10.0.0.0/31"), dad=False), 20),
        ("IPv6 address, no DAD", address_message(2, _address("fd00::5/64"), dad=False), 20),
        ("IPv6 address, DAD", address_message(2, _address("fd00::5/64"), dad=True), 20),
        ("IPv6 link-local", address_message(2, _address("fe80::1/64"), dad=False), 20),
        ("default route", route_message(Route("default", via="10.0.255.254"), None), 24),
        ("route via dev", route_message(Route("10.9.0.0/16", dev="eth0"), 2), 24),
        (
            "IPv6 route, metric",
            route_message(Route("fd01::/64", via="fd00::1", dev="eth0", metric=50), 2),
            24,
        ),
    ]


@pytest.mark.parametrize(("what", "msg", "msg_type"), messages(), ids=lambda v: str(v)[:40])
def test_packed_bytes_are_pyroute2s(what: str, msg: Any, msg_type: int) -> None:
    flags = NLM_F_REQUEST_ACK | CREATE
    packed = nlpack.pack(msg, msg_type, flags, 41)
    assert packed is not None, f"{what}: not covered by the tables"
    assert packed == pyroute2_bytes(msg, msg_type, flags, 41), what


def test_what_the_tables_do_not_cover_is_left_to_pyroute2() -> None:
    bridge = create_message(Interface("br0", Bridge()), name="br0", up=True)[1]
    learning = link_msg(
        0,
        IFLA_IFNAME="p0",
        IFLA_LINKINFO={"attrs": [("IFLA_INFO_SLAVE_KIND", "bridge")]},
    )
    named_flags = link_msg(1)
    named_flags["flags"] = ["IFF_UP"]
    for msg in (bridge, learning, named_flags):
        assert nlpack.pack(msg, 16, NLM_F_REQUEST_ACK, 1) is None


@pytest.mark.parametrize("mac", ["02:00:00:00:00:0a", "2:0:0:0:0:a", "02: 1:0 :00:00:00"])
def test_a_mac_is_six_octets_as_pyroute2_reads_it(mac: str) -> None:
    msg = link_msg(0, IFLA_IFNAME="eth0", IFLA_ADDRESS=mac)
    assert nlpack.pack(msg, 16, NLM_F_REQUEST_ACK, 3) == pyroute2_bytes(
        msg, 16, NLM_F_REQUEST_ACK, 3
    )


def test_a_value_of_another_type_is_left_to_pyroute2() -> None:
    assert nlpack.pack(link_msg(0, IFLA_IFNAME=b"eth0"), 16, NLM_F_REQUEST_ACK, 1) is None
