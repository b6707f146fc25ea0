"""The frames and messages a policy line is probed with, by protocol and state.

tcp: a SYN (state new) or the SYN-ACK answering the SYN of the opened flow
(established); udp: a datagram, or the reply with the ports swapped; icmp/icmpv6: the
message of the line's type (neighbour discovery with hop limit 255, a solicitation to
the target's solicited-node multicast group); any: a datagram of IP protocol 253. Each
carries the probe's nonce (neighbour discovery: in an option the kernel ignores, so the
message stays valid and is answered).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from netprobe.traffic import Template, from_scapy, icmp_echo
from netprobe.traffic._craft import SLOT

from . import _frames
from .policy import ANY_PROTO, Line

__all__ = ["OPEN_SEQ", "marker", "message", "probe_frame", "solicited_node"]

OPEN_SEQ = 7000  # the sequence number of the SYN that opens an established line's flow
_ND = range(133, 138)  # router/neighbour solicitation and advertisement, redirect: hop limit 255
_ECHO = {8, 0, 128, 129}


def solicited_node(address: str) -> tuple[str, str]:
    """(solicited-node multicast address, its MAC) of an IPv6 address (RFC 4291, 2464)."""
    low = ipaddress.IPv6Address(address).packed[-3:]
    group = ipaddress.IPv6Address(bytes.fromhex("ff02" + "00" * 9 + "01ff") + low)
    return str(group), "33:33:ff:" + ":".join(f"{b:02x}" for b in low)


def probe_frame(line: Line, family: int, macs: tuple[str, str], src: str, dst: str,
                sport: int) -> Template:
    """The crafted probe of `line`: `sport` is its source port (tcp, udp new), the opened
    flow's source port (established: the probe goes back to it) or the ICMP echo id."""
    if line.proto == "tcp" and line.state == "established":
        from scapy.layers.inet import TCP

        return from_scapy(_l2l3(macs, src, dst) / TCP(sport=line.port, dport=sport, flags="SA",
                                                     seq=31000, ack=OPEN_SEQ + 1))
    if line.proto == "tcp":
        return _struct(macs, src, dst, "tcp", sport, line.port)
    if line.proto == "udp":
        ends = (line.port, sport) if line.state == "established" else (sport, line.port)
        return _struct(macs, src, dst, "udp", *ends)
    if line.proto == "any":
        return from_scapy(_l2l3(macs, src, dst, proto=ANY_PROTO))
    kind = line.icmp_number(family)
    if kind == 8 or kind == 128:
        return icmp_echo(macs[0], macs[1], src, dst, ident=sport & 0xFFFF)
    if kind == 135:  # to the target's solicited-node group, as a resolving neighbour does
        group, mac = solicited_node(dst)
        return from_scapy(_l2l3((macs[0], mac), src, group, hlim=255) / message(line, 6, sport,
                                                                                 dst, macs[0]))
    hlim = 255 if family == 6 and kind in _ND else 64
    return from_scapy(_l2l3(macs, src, dst, hlim=hlim) / message(line, family, sport, dst,
                                                                 macs[0], src))


def message(line: Line, family: int, ident: int, target: str, mac: str,
            peer: str = "") -> Any:
    """The ICMP/ICMPv6 layer (scapy) of the line's type, the nonce slot inside it."""
    from scapy.layers import inet, inet6
    from scapy.packet import Raw

    kind, ident = line.icmp_number(family), ident & 0xFFFF
    if family == 4:
        if kind in _ECHO:
            return inet.ICMP(type=kind, id=ident, seq=1) / Raw(SLOT)
        quoted = inet.IP(src=target, dst=peer or target) / inet.UDP(sport=ident, dport=9)
        return inet.ICMP(type=kind, code=3 if kind == 3 else 0) / quoted / Raw(SLOT)
    if kind in (128, 129):
        echo = inet6.ICMPv6EchoRequest if kind == 128 else inet6.ICMPv6EchoReply
        return echo(id=ident, seq=1) / Raw(SLOT)
    slot = inet6.ICMPv6NDOptUnknown(type=200, len=3, data=SLOT + bytes(6))  # ignored option
    if kind == 135:
        return inet6.ICMPv6ND_NS(tgt=target) / inet6.ICMPv6NDOptSrcLLAddr(lladdr=mac) / slot
    if kind == 136:
        return inet6.ICMPv6ND_NA(tgt=peer or target, R=0, S=0, O=1) / inet6.ICMPv6NDOptDstLLAddr(
            lladdr=mac) / slot
    if kind == 133:
        return inet6.ICMPv6ND_RS() / slot
    if kind == 134:  # lifetime 0 from a global source: the kernel ignores it, harmless
        return inet6.ICMPv6ND_RA(routerlifetime=0) / slot
    if kind == 1:
        quoted6 = inet6.IPv6(src=target, dst=peer or target) / inet.UDP(sport=ident, dport=9)
        return inet6.ICMPv6DestUnreach(code=4) / quoted6 / Raw(SLOT)
    return inet6.ICMPv6Unknown(type=kind) / Raw(SLOT)


def _struct(macs: tuple[str, str], src: str, dst: str, proto: str, sport: int,
            dport: int) -> Template:
    """The TCP SYN or UDP datagram `tcp` and `udp` make, built with struct: scapy takes
    milliseconds a frame, too long for a policy of thousands of lines."""
    data = _frames.frame(macs, src, dst, proto, sport, dport, SLOT)
    start = 14 + (20 if _frames.address(src).version == 4 else 40)
    summary = f"Ether / IP / {proto.upper()} {src}:{sport} > {dst}:{dport} / Raw"
    return Template(data, len(data) - len(SLOT), start + (16 if proto == "tcp" else 6),
                    summary, proto == "udp", start)


def marker(sport: int) -> bytes:
    """The 16 bytes that name an OUTPUT probe sent from a datagram or raw socket."""
    return b"npfilter%08d" % (sport % 10**8)


def _l2l3(macs: tuple[str, str], src: str, dst: str, *, proto: int | None = None,
          hlim: int = 64) -> Any:
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    l3: Any
    if _frames.address(src).version == 6:
        l3 = IPv6(src=src, dst=dst, hlim=hlim) if proto is None else IPv6(src=src, dst=dst,
                                                                          nh=proto)
    else:
        l3 = IP(src=src, dst=dst, ttl=hlim) if proto is None else IP(src=src, dst=dst,
                                                                     proto=proto)
    return Ether(src=macs[0], dst=macs[1]) / l3
