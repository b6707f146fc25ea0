"""Frames → flat, named fields (with dpkt), and a one-line summary for evidence.

Field names are what masks and rewrites refer to (`FIELDS`); a fragment (IPv4 or IPv6)
also has frag.offset (bytes), frag.more (1: more follow) and, for IPv6, frag.id.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import dpkt

from ._craft import find_nonce

Fields = dict[str, Any]

FIELDS = frozenset({
    "eth.src", "eth.dst", "eth.type", "vlan",
    "ip.src", "ip.dst", "ip.ttl", "ip.proto", "ip.id", "ip.tos", "ip.chksum",
    "ip6.src", "ip6.dst", "ip6.hlim", "ip6.nh",
    "l4.sport", "l4.dport", "l4.chksum", "tcp.flags",
    "icmp.type", "icmp.code", "icmp.id", "icmp.seq",
    "arp.op", "arp.sha", "arp.spa", "arp.tha", "arp.tpa",
    "frag.offset", "frag.more", "frag.id", "payload", "nonce",
})  # fmt: skip

# Short names a person writes in a rewrite or a mask; resolved by address family.
ALIASES = {
    "src": ("ip.src", "ip6.src"),
    "dst": ("ip.dst", "ip6.dst"),
    "ttl": ("ip.ttl", "ip6.hlim"),
    "sport": ("l4.sport",),
    "dport": ("l4.dport",),
    "id": ("icmp.id",),
    "mac.src": ("eth.src",),
    "mac.dst": ("eth.dst",),
}
_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def decode(frame: bytes) -> Fields:
    """Every field netprobe knows in this frame; unknown layers end the walk quietly."""
    fields: Fields = {"nonce": find_nonce(frame)}
    if len(frame) < 14:
        fields["payload"] = frame
        return fields
    fields["eth.dst"], fields["eth.src"] = _mac(frame[0:6]), _mac(frame[6:12])
    offset, vlans = 12, []
    ethertype = int.from_bytes(frame[12:14], "big")
    while ethertype in _VLAN_TPIDS and len(frame) >= offset + 6:
        tci = int.from_bytes(frame[offset + 2 : offset + 4], "big")
        vlans.append((ethertype, tci & 0x0FFF))
        offset += 4
        ethertype = int.from_bytes(frame[offset : offset + 2], "big")
    fields["vlan"] = tuple(vlans)
    fields["eth.type"] = ethertype
    body = frame[offset + 2 :]
    try:
        _l3(ethertype, body, fields)
    except (dpkt.UnpackError, ValueError, IndexError, struct.error):
        fields.setdefault("payload", body)
    return fields


def _l3(ethertype: int, body: bytes, fields: Fields) -> None:
    if ethertype == 0x0800:
        ip = dpkt.ip.IP(body)
        fields.update(
            {
                "ip.src": socket.inet_ntop(socket.AF_INET, ip.src),
                "ip.dst": socket.inet_ntop(socket.AF_INET, ip.dst),
                "ip.ttl": ip.ttl,
                "ip.proto": ip.p,
                "ip.id": ip.id,
                "ip.tos": ip.tos,
                "ip.chksum": ip.sum,
            }
        )
        if ip.mf or ip.offset:
            fields.update({"frag.offset": ip.offset * 8, "frag.more": int(ip.mf)})
        _l4(ip.p, ip.data, fields)
    elif ethertype == 0x86DD:
        ip6 = dpkt.ip6.IP6(body)
        fields.update(
            {
                "ip6.src": socket.inet_ntop(socket.AF_INET6, ip6.src),
                "ip6.dst": socket.inet_ntop(socket.AF_INET6, ip6.dst),
                "ip6.hlim": ip6.hlim,
                "ip6.nh": ip6.p,  # the protocol after any extension headers
            }
        )
        frag = getattr(ip6, "extension_hdrs", {}).get(44)
        if frag is not None:
            fields.update(
                {"frag.offset": frag.frag_off * 8, "frag.more": frag.m_flag, "frag.id": frag.id}
            )
        _l4(ip6.p, ip6.data, fields)
    elif ethertype == 0x0806:
        a = dpkt.arp.ARP(body)
        fields.update(
            {
                "arp.op": a.op,
                "arp.sha": _mac(a.sha),
                "arp.tha": _mac(a.tha),
                "arp.spa": socket.inet_ntop(socket.AF_INET, a.spa),
                "arp.tpa": socket.inet_ntop(socket.AF_INET, a.tpa),
            }
        )
        fields["payload"] = bytes(a.data)
    else:
        fields["payload"] = body


def _l4(proto: int, seg: Any, fields: Fields) -> None:
    if isinstance(seg, (bytes, bytearray)):
        fields["payload"] = bytes(seg)
        return
    if proto in (6, 17):
        fields.update({"l4.sport": seg.sport, "l4.dport": seg.dport, "l4.chksum": seg.sum})
        if proto == 6:
            fields["tcp.flags"] = seg.flags
    elif proto in (1, 58):
        fields.update({"icmp.type": seg.type, "icmp.code": seg.code, "l4.chksum": seg.sum})
        echo = seg.data
        if hasattr(echo, "id"):
            fields.update({"icmp.id": echo.id, "icmp.seq": echo.seq})
            seg = echo
    fields["payload"] = bytes(seg.data)


def summary(fields: Fields) -> str:
    """One line, tcpdump-like: 02:..:01 > 02:..:02 vlan 10 IPv4 10.0.0.1.40000 > ... UDP."""
    parts = [f"{fields.get('eth.src', '?')} > {fields.get('eth.dst', '?')}"]
    parts += [
        f"vlan {vid}" + ("(ad)" if tpid == 0x88A8 else "") for tpid, vid in fields.get("vlan", ())
    ]
    if "ip.src" in fields or "ip6.src" in fields:
        v = "ip" if "ip.src" in fields else "ip6"
        sport, dport = fields.get("l4.sport"), fields.get("l4.dport")
        src = f"{fields[v + '.src']}" + (f".{sport}" if sport is not None else "")
        dst = f"{fields[v + '.dst']}" + (f".{dport}" if dport is not None else "")
        ttl = fields.get("ip.ttl", fields.get("ip6.hlim"))
        parts.append(f"{'IPv4' if v == 'ip' else 'IPv6'} {src} > {dst} {_proto(fields)} ttl {ttl}")
        if "frag.offset" in fields:
            more = "+" if fields.get("frag.more") else ""
            parts.append(f"frag {fields['frag.offset']}{more}")
    elif fields.get("arp.op") == 1:
        parts.append(f"ARP who-has {fields['arp.tpa']} tell {fields['arp.spa']}")
    elif "arp.op" in fields:
        parts.append(f"ARP reply {fields['arp.spa']} is-at {fields['arp.sha']}")
    else:
        parts.append(
            f"ethertype 0x{fields.get('eth.type', 0):04x} len {len(fields.get('payload', b''))}"
        )
    if fields.get("nonce"):
        parts.append(f"[nonce …{fields['nonce'][-4:].hex()}]")
    return " ".join(parts)


def _proto(fields: Fields) -> str:
    if "tcp.flags" in fields:
        flags = fields["tcp.flags"]
        names = "".join(
            c for bit, c in ((2, "S"), (16, "A"), (1, "F"), (4, "R"), (8, "P")) if flags & bit
        )
        return f"TCP [{names}]"
    if "icmp.type" in fields:
        echo = f" id {fields['icmp.id']} seq {fields['icmp.seq']}" if "icmp.id" in fields else ""
        return f"ICMP type {fields['icmp.type']}{echo}"
    proto = fields.get("ip.proto", fields.get("ip6.nh"))
    protocols = {17: "UDP", 6: "TCP", 1: "ICMP", 58: "ICMPv6"}
    return protocols.get(proto, f"proto {proto}") if isinstance(proto, int) else "?"
