"""Probes the filtered host sends itself, from real sockets in its namespace: they
traverse its OUTPUT hook (and, to its own addresses, lo and INPUT)."""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Callable

from netprobe.topology._kernel import netns

from ._icmp import stamp


def host_sender(fd: int, version: int, src: str, dst: str, proto: str, sport: int, dport: int,
                nonce: bytes) -> Callable[[], None]:
    """A function that sends the probe from a real socket in the namespace `fd` (TCP: a
    SYN from connect(); UDP: the nonce as payload; ICMP: an echo request of id `sport`)."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    if proto == "icmp":
        kind = socket.SOCK_RAW
        number = socket.IPPROTO_ICMP if version == 4 else socket.IPPROTO_ICMPV6

    def send() -> None:
        with netns.entered(fd):
            sock = socket.socket(family, kind, number if proto == "icmp" else 0)
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((src, 0 if proto == "icmp" else sport))
            sock.setblocking(False)
            try:
                if proto == "icmp":
                    sock.sendto(_echo(version, sport, nonce), (dst, 0))
                elif kind == socket.SOCK_STREAM:  # the SYN leaves within connect()
                    sock.connect_ex((dst, dport))
                else:
                    sock.sendto(nonce, (dst, dport))
            except OSError as exc:  # EPERM: netfilter dropped it, which the batch sees
                if exc.errno not in (errno.EPERM, errno.EACCES):
                    raise
    return send


def _echo(family: int, ident: int, nonce: bytes) -> bytes:
    """An echo request (a raw ICMPv6 socket fills in its checksum, an ICMP one does not)."""
    head = struct.pack("!BBHHH", 8 if family == 4 else 128, 0, 0, ident & 0xFFFF, 1)
    if family == 6:
        return head + nonce
    return stamp(b"\0" * 12 + b"\x08\x00\x45" + b"\0" * 19 + head + nonce, ident)[34:]
