"""TCP and UDP probe frames built with struct: a thousand derived probes crafted with
scapy would take seconds; these take microseconds. The nonce is the payload, as the
traffic layer's `tcp` and `udp` put it."""

from __future__ import annotations

import functools
import ipaddress
import socket
import struct

from netprobe.traffic import checksum

# Parsed once: a policy of thousands of lines names the same few addresses over and over.
address = functools.lru_cache(maxsize=1 << 14)(ipaddress.ip_address)

_FLAGS = {"S": 0x02, "SF": 0x03}



def frame(macs: tuple[str, str], src: str, dst: str, proto: str, sport: int, dport: int,
          nonce: bytes, flags: str = "S") -> bytes:
    """An Ethernet frame: IPv4 or IPv6 (by address), TCP (SYN, or `flags`) or UDP from
    `sport` to `dport`, carrying `nonce`."""
    a, b = address(src), address(dst)
    number = socket.IPPROTO_TCP if proto == "tcp" else socket.IPPROTO_UDP
    if proto == "tcp":
        head = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, _FLAGS[flags], 8192,
                           0, 0)
    else:
        head = struct.pack("!HHHH", sport, dport, 8 + len(nonce), 0)
    segment = head + nonce
    pseudo = a.packed + b.packed + struct.pack("!IxxxB" if a.version == 6 else "!xBH",
                                               *((len(segment), number) if a.version == 6
                                                 else (number, len(segment))))
    csum = checksum(pseudo + segment) or (0xFFFF if proto == "udp" else 0)
    at = 16 if proto == "tcp" else 6
    segment = segment[:at] + struct.pack("!H", csum) + segment[at + 2:]
    if a.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 1, 0, 64, number, 0,
                         a.packed, b.packed)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        ethertype = 0x0800
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(segment), number, 64, a.packed, b.packed)
        ethertype = 0x86DD
    l2 = bytes.fromhex(macs[1].replace(":", "")) + bytes.fromhex(macs[0].replace(":", ""))
    return l2 + struct.pack("!H", ethertype) + ip + segment
