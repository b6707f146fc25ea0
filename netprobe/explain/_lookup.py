"""The kernel's route lookup for a probe, over rtnetlink in-process, worded as `ip route get`.

An `ip route get` process costs several milliseconds (more on a loaded machine); the same
RTM_GETROUTE on the host's own netlink socket answers in well under one. The answer is
printed as iproute2 prints it (whitespace folded), errors as "RTNETLINK answers: …", so
the evidence reads as before.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Mapping

from ..topology._kernel.netlink import HDR, NetlinkError, Rtnl, attr, scan
from ..topology._kernel.state import RTM_GETROUTE, RTMSG

_RTM_F_CLONED = 0x200
_TYPES = {2: "local", 3: "broadcast", 4: "anycast", 5: "multicast", 6: "blackhole",
          7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat"}  # fmt: skip
_TABLES = {253: "default", 255: "local"}
_PROTOS = {2: "kernel", 4: "static", 16: "dhcp", 186: "bgp", 188: "ospf"}
_PREFS = {0: "medium", 1: "high", 3: "low"}
_SCOPES = {200: "site", 253: "link", 254: "host", 255: "nowhere"}
_CACHE_FLAGS = ((0x80000000, "local"), (0x40000000, "reject"), (0x20000000, "mc"),
                (0x10000000, "brd"), (0x08000000, "dst-nat"), (0x00800000, "snat"),
                (0x00400000, "masq"), (0x00020000, "dst-direct"), (0x04000000, "src-direct"),
                (0x00040000, "redirected"), (0x01000000, "redirect"), (0x00200000, "fastroute"),
                (0x00010000, "notify"), (0x00080000, "proxy"))  # fmt: skip


def route_get(
    nl: Rtnl, names: Mapping[int, str], dst: str, src: str | None, iif: str | None
) -> str:
    """`ip route get DST [from SRC iif IIF]` in `nl`'s namespace: the input path when
    `iif` is given (forwarding and rp_filter count), as one line."""
    address = ipaddress.ip_address(dst)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    attrs = attr(1, address.packed)
    src_len = 0
    if src and iif:
        index = next((i for i, n in names.items() if n == iif), None)
        if index is None:
            return f'Cannot find device "{iif}"'
        attrs += attr(2, ipaddress.ip_address(src).packed) + attr(3, struct.pack("=I", index))
        src_len = address.max_prefixlen
    body = RTMSG.pack(family, address.max_prefixlen, src_len, 0, 0, 0, 0, 0, 0) + attrs
    try:
        replies = nl.raw(RTM_GETROUTE, body, dump=False)
    except NetlinkError as exc:
        return f"RTNETLINK answers: {os.strerror(exc.code)}"
    return _words(replies[0], names) if replies else ""


def _words(chunk: bytes, names: Mapping[int, str]) -> str:
    """One RTM_NEWROUTE reply as iproute2's print_route words it."""
    family, dst_len, _s, _tos, table, proto, scope, rtype, flags = RTMSG.unpack_from(
        chunk, HDR.size
    )
    found = scan(chunk, HDR.size + RTMSG.size, {1, 2, 3, 4, 5, 6, 7, 15, 20, 25})
    def ip(kind: int) -> str:
        return socket.inet_ntop(family, found[kind])

    def u32(kind: int) -> int:
        return int(struct.unpack("=I", found[kind][:4])[0])

    def dev(kind: int) -> str:
        return names.get(u32(kind), str(u32(kind)))

    table = u32(15) if 15 in found else table
    out = [_TYPES[rtype]] if rtype in _TYPES else []
    out.append(ip(1) if 1 in found else "default")
    out += ["from", ip(2)] if 2 in found else []
    out += ["via", ip(5)] if 5 in found else []
    out += ["dev", dev(4)] if 4 in found else []
    if not flags & _RTM_F_CLONED and table != 254:
        out += ["table", _TABLES.get(table, str(table))]
    out += ["proto", _PROTOS.get(proto, str(proto))] if proto not in (0, 3) else []
    out += ["scope", _SCOPES.get(scope, str(scope))] if scope else []
    out += ["src", ip(7)] if 7 in found else []
    out += ["metric", str(u32(6))] if 6 in found else []
    out += ["uid", str(u32(25))] if 25 in found else []
    if flags & _RTM_F_CLONED and family == socket.AF_INET:
        out.append("cache")
        marks = [word for bit, word in _CACHE_FLAGS if flags & bit]
        out += [f"<{','.join(marks)}>"] if marks else []
    out += ["iif", dev(3)] if 3 in found else []
    out += ["pref", _PREFS.get(found[20][0], str(found[20][0]))] if 20 in found else []
    del dst_len
    return " ".join(out)
