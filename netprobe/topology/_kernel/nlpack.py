"""rtnetlink requests packed by hand: the link, address and route messages a build sends
by the thousand.

pyroute2's generic encoder spent 0.35 s of a 200-host star's 1.15 s build on them (over
2,000 messages). These tables cover the attributes netprobe sends in those messages;
`pack` answers None for anything else (a bridge's or bond's data, a nested attribute
it has no table for), and pyroute2 encodes that one. The bytes are pyroute2's, byte for
byte (tests/unit/test_nlpack.py compares them).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

HDR = struct.Struct("=IHHII")  # length, type, flags, sequence number, port id
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst/src len, tos, table, proto, scope, type
_U32 = struct.Struct("=I")


class _Unknown(Exception):
    """Something the tables do not cover: pyroute2 encodes the message instead."""


def _asciiz(value: str) -> bytes:
    return value.encode() + b"\0"


def _mac(value: str) -> bytes:
    octets = value.split(":")
    if len(octets) != 6 or any(not 1 <= len(o) <= 2 for o in octets):
        raise _Unknown(value)
    return bytes(int(o, 16) for o in octets)


def _ip(value: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in value else socket.AF_INET, value)


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute: its header, `payload`, and padding to 4 bytes."""
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


_Table = dict[str, tuple[int, Callable[[Any], bytes]]]


def _attrs(table: _Table, attrs: list[Any]) -> bytes:
    out = []
    for item in attrs:
        if not isinstance(item, tuple) or len(item) != 2 or item[0] not in table:
            raise _Unknown(item)
        number, pack = table[item[0]]
        out.append(attr(number, pack(item[1])))
    return b"".join(out)


def _field(msg: Any, key: str) -> Any:
    """A header field as set (0 when unset). Not `msg.get`: pyroute2's falls back to the
    attribute of that name (an ifaddrmsg's "flags" would read IFA_FLAGS)."""
    return dict.get(msg, key) or 0


def _ifinfo(fields: Any) -> bytes:
    keys = ("family", "ifi_type", "index", "flags", "change")
    return _IFINFO.pack(*(_field(fields, k) for k in keys))


def _veth_peer(value: dict[str, Any]) -> bytes:
    """VETH_INFO_PEER: the peer's own ifinfmsg, then its attributes."""
    if set(value) - {"attrs", "index", "flags", "change"}:
        raise _Unknown(value)
    return _ifinfo(value) + _attrs(_LINK, value.get("attrs", []))


def _linkinfo(value: dict[str, Any]) -> bytes:
    attrs = value.get("attrs", [])
    if set(value) != {"attrs"} or not attrs or attrs[0][0] != "IFLA_INFO_KIND":
        raise _Unknown(value)
    data = _INFO_DATA.get(attrs[0][1])
    if data is None:
        raise _Unknown(attrs[0][1])
    table: _Table = {
        "IFLA_INFO_KIND": (1, _asciiz),
        "IFLA_INFO_DATA": (2, lambda v: _nested(data, v)),
    }
    return _attrs(table, attrs)


def _nested(table: _Table, value: Any) -> bytes:
    if not isinstance(value, dict) or set(value) != {"attrs"}:
        raise _Unknown(value)
    return _attrs(table, value["attrs"])


_LINK: _Table = {
    "IFLA_ADDRESS": (1, _mac),
    "IFLA_IFNAME": (3, _asciiz),
    "IFLA_MTU": (4, _U32.pack),
    "IFLA_LINK": (5, _U32.pack),
    "IFLA_MASTER": (10, _U32.pack),
    "IFLA_LINKINFO": (18, _linkinfo),
    "IFLA_IFALIAS": (20, _asciiz),
    "IFLA_NET_NS_FD": (28, _U32.pack),
    "IFLA_NUM_TX_QUEUES": (31, _U32.pack),
    "IFLA_NUM_RX_QUEUES": (32, _U32.pack),
}
_INFO_DATA: dict[str, _Table] = {"veth": {"VETH_INFO_PEER": (1, _veth_peer)}}
_ADDR: _Table = {
    "IFA_ADDRESS": (1, _ip),
    "IFA_LOCAL": (2, _ip),
    "IFA_BROADCAST": (4, _ip),
    "IFA_FLAGS": (8, _U32.pack),
}
_ROUTE: _Table = {
    "RTA_DST": (1, _ip),
    "RTA_OIF": (4, _U32.pack),
    "RTA_GATEWAY": (5, _ip),
    "RTA_PRIORITY": (6, _U32.pack),
}


def _link_body(msg: Any) -> bytes:
    return _ifinfo(msg) + _attrs(_LINK, msg["attrs"])


def _addr_body(msg: Any) -> bytes:
    fields = (_field(msg, k) for k in ("family", "prefixlen", "flags", "scope", "index"))
    return _IFADDR.pack(*fields) + _attrs(_ADDR, msg["attrs"])


def _route_body(msg: Any) -> bytes:
    keys = ("family", "dst_len", "src_len", "tos", "table", "proto", "scope", "type", "flags")
    if _field(msg, "family") not in (socket.AF_INET, socket.AF_INET6):
        raise _Unknown(_field(msg, "family"))  # pyroute2 rewrites MPLS routes
    return _RTMSG.pack(*(_field(msg, k) for k in keys)) + _attrs(_ROUTE, msg["attrs"])


_BODIES: dict[type, Callable[[Any], bytes]] = {
    ifinfmsg: _link_body,
    ifaddrmsg: _addr_body,
    rtmsg: _route_body,
}


def pack(msg: Any, msg_type: int, flags: int, seq: int) -> bytes | None:
    """The whole request (header included) for pyroute2 message `msg`, or None when the
    tables do not cover it."""
    body_of = _BODIES.get(type(msg))
    if body_of is None or isinstance(_field(msg, "flags"), (str, list, tuple, set)):
        return None  # flags given by name: pyroute2 turns them into bits
    try:
        body = body_of(msg)
    except (_Unknown, AttributeError, KeyError, TypeError, ValueError, OSError, struct.error):
        return None
    return HDR.pack(HDR.size + len(body), msg_type, flags, seq, 0) + body
