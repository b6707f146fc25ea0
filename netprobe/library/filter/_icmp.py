"""The ICMP and ICMPv6 messages of derived probes other than TCP and UDP, and the
conntrack state each one has in the filtered host.

Echo requests are new; an echo reply is established (the request went first the other
way); an error (destination unreachable, time exceeded, parameter problem, packet too
big) is related, quoting the UDP datagram of a flow opened first the other way; neighbour
and router discovery is untracked (conntrack leaves it alone), sent with the hop limit
255 neighbour discovery requires. The message layer is the policy mode's
(`frames.message`: the nonce in an option the kernel ignores); every message carries the
probe's 16-bit identifier in bytes 4-5 of its header, where the trace shows it (an echo's
identifier; elsewhere bytes the receiver ignores: unused, reserved, a pointer or MTU far
above any link's).
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

from netprobe.traffic import checksum, from_scapy
from netprobe.traffic._craft import SLOT

from . import frames
from .policy import Line
from .rules import ICMP4, ICMP6, Unprobeable, Want

_ERRORS = {4: (3, 11, 12), 6: (1, 2, 3, 4)}
_ND = (133, 134, 135, 136)
QUOTED_DPORT = 9  # the destination port of the datagram an error quotes


def state(kind: int, family: int) -> str:
    """The conntrack state the host gives an ICMP message of type `kind`."""
    if kind in (8, 128):
        return "new"
    if kind in (0, 129):
        return "established"
    if kind in _ERRORS[family]:
        return "related"
    return "untracked" if family == 6 and kind in _ND else "new"


def kind_of(want: Want, family: int) -> int:
    """The message's type, if the rule's state allows the one the host gives it."""
    kind = want.icmp_type(family)
    needs = state(kind, family)
    if needs not in want.states:
        raise Unprobeable(f"matches ct state {', '.join(sorted(want.states))} (an "
                          f"ICMP{'' if family == 4 else 'v6'} type {kind} is {needs})")
    return kind


def name(kind: int, family: int) -> str:
    """The type's name as nft prints it."""
    names = {v: k for k, v in (ICMP4 if family == 4 else ICMP6).items()}
    return ("ICMP " if family == 4 else "ICMPv6 ") + names.get(kind, str(kind))


def message(kind: int, family: int, macs: tuple[str, str], src: str, dst: str, ident: int,
            hops: int) -> tuple[bytes, bytes]:
    """(frame, nonce) of ICMP type `kind` from `src` (MAC macs[0]) to `dst`; an error
    quotes the datagram `dst`:`ident` → `src`:QUOTED_DPORT."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    line = Line(0, "icmp" if family == 4 else "icmpv6", 0, icmp_type=str(kind))
    l3 = IP(src=src, dst=dst, ttl=hops) if family == 4 else IPv6(src=src, dst=dst, hlim=hops)
    layer = _error6(kind, ident, dst, src) if family == 6 and kind in (2, 3, 4) \
        else frames.message(line, family, ident, dst, macs[0], src)
    data, nonce = from_scapy(Ether(src=macs[0], dst=macs[1]) / l3 / layer).probe()
    return stamp(data, ident), nonce


def _error6(kind: int, ident: int, target: str, peer: str) -> Any:
    """The ICMPv6 errors frames.message does not quote a datagram in."""
    from scapy.layers import inet, inet6
    from scapy.packet import Raw

    head = {2: inet6.ICMPv6PacketTooBig, 3: inet6.ICMPv6TimeExceeded,
            4: inet6.ICMPv6ParamProblem}[kind]()
    return head / inet6.IPv6(src=target, dst=peer) / inet.UDP(sport=ident, dport=QUOTED_DPORT) \
        / Raw(SLOT)


def hops(want: Want, kind: int, family: int) -> int:
    """The hop limit of the message: 255 for neighbour discovery (RFC 4861)."""
    nd = family == 6 and kind in _ND
    found = want.hops(255 if nd else 64)
    if nd and found != 255:
        raise Unprobeable("matches a hop limit neighbour discovery never has")
    return found


def stamp(data: bytes, ident: int) -> bytes:
    """`data` with `ident` in bytes 4-5 of its ICMP header, the checksum made again."""
    ethertype, at = struct.unpack_from("!H", data, 12)[0], transport_at(data)
    body = bytearray(data[at:])
    body[4:6] = struct.pack("!H", ident & 0xFFFF)
    body[2:4] = b"\0\0"
    pseudo = b""
    if ethertype == 0x86DD:
        src, dst = ipaddress.IPv6Address(data[22:38]), ipaddress.IPv6Address(data[38:54])
        pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(body), 58)
    body[2:4] = struct.pack("!H", checksum(pseudo + bytes(body)))
    return data[:at] + bytes(body)


def transport_at(data: bytes) -> int:
    """Where the transport header of an Ethernet frame begins."""
    ethertype = struct.unpack_from("!H", data, 12)[0]
    return 14 + (data[14] & 0x0F) * 4 if ethertype == 0x0800 else 54
