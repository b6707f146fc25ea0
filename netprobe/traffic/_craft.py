"""Frames crafted once with scapy, then varied by byte operations.

A `Template` is the bytes of a frame whose payload holds a 16-byte nonce slot. Each
probe writes a fresh nonce there and patches the one checksum that covers it (RFC 1624
incremental update), so sending N probes costs N small byte operations, not N scapy
builds (~300 µs each). Copies, replies that echo the payload and NAT-rewritten versions
of a probe are all recognised by the nonce.

scapy is imported inside the builders: `import netprobe` must stay light.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MAGIC = b"NPRB"
NONCE_LEN = 16  # MAGIC, 4 bytes of this process's session, 8 bytes of sequence
SLOT = MAGIC + bytes(NONCE_LEN - len(MAGIC))  # where a probe's nonce goes
_SESSION = os.urandom(4)
_sequence = itertools.count(1)
LOCAL_ETHERTYPE = 0x88B5  # IEEE 802 "local experimental": never a real protocol


def _reseed() -> None:
    global _SESSION, _sequence
    _SESSION, _sequence = os.urandom(4), itertools.count(1)


os.register_at_fork(after_in_child=_reseed)  # a forked child must not repeat our nonces


def new_nonce() -> bytes:
    """A nonce unique to this process and call: the marker, the session and a sequence number."""
    return MAGIC + _SESSION + next(_sequence).to_bytes(8, "big")


def find_nonce(frame: bytes) -> bytes | None:
    """The first nonce in a frame, wherever a path moved it (VLAN tags, NAT, replies)."""
    at = frame.find(MAGIC)
    return frame[at : at + NONCE_LEN] if at >= 0 and at + NONCE_LEN <= len(frame) else None


@dataclass(frozen=True)
class Template:
    """A frame with a nonce slot at `nonce_at` and, if one covers it, a checksum at `csum_at`."""

    data: bytes
    nonce_at: int
    csum_at: int | None
    summary: str
    udp_checksum: bool = False  # a result of 0 must be sent as 0xffff (RFC 768)
    csum_from: int = 0  # where the bytes the checksum covers begin (its 16-bit alignment)
    # A fragment's datagram identification (IPv4: 2 bytes, its header checksum at
    # ident_csum_at; IPv6: the Fragment header's 4), written by probe(ident=...).
    ident_at: int | None = None
    ident_len: int = 0
    ident_csum_at: int | None = None
    # Set when several checksums cover the nonce (a tunnel, a quoted packet): each probe is
    # then rebuilt by scapy instead of patched, slower but right.
    rebuild: Any = field(default=None, compare=False, repr=False)

    def probe(self, nonce: bytes | None = None, ident: int | None = None) -> tuple[bytes, bytes]:
        """(frame bytes, nonce) for one probe; a fresh nonce unless one is given. `ident`:
        a fragment's datagram identification (the same for every fragment of a probe)."""
        nonce = nonce or new_nonce()
        frame = bytearray(self.data)
        if ident is not None and self.ident_at is not None:
            self._write_ident(frame, ident)
        frame[self.nonce_at : self.nonce_at + NONCE_LEN] = nonce
        if self.rebuild is not None:
            return _rebuilt(self.rebuild(bytes(frame))), nonce
        if self.csum_at is not None:
            (old,) = struct.unpack_from("!H", self.data, self.csum_at)
            if old or not self.udp_checksum:  # IPv4 UDP checksum 0 means "none"
                lo, hi = self._words()
                new = _adjust(old, _pad(self.data[lo:hi]), _pad(bytes(frame[lo:hi])))
                struct.pack_into(
                    "!H", frame, self.csum_at, new or (0xFFFF if self.udp_checksum else 0)
                )
        return bytes(frame), nonce

    def _write_ident(self, frame: bytearray, ident: int) -> None:
        at, end = self.ident_at or 0, (self.ident_at or 0) + self.ident_len
        old = bytes(frame[at:end])
        frame[at:end] = (ident % (1 << 8 * self.ident_len)).to_bytes(self.ident_len, "big")
        if self.ident_csum_at is not None:  # IPv4: the header checksum covers the id
            (csum,) = struct.unpack_from("!H", frame, self.ident_csum_at)
            new = _adjust(csum, old, bytes(frame[at:end]))
            struct.pack_into("!H", frame, self.ident_csum_at, new)

    @property
    def fragment(self) -> bool:
        """True for one fragment of a datagram (made by `fragments`)."""
        return self.ident_at is not None

    def _words(self) -> tuple[int, int]:
        """The nonce slot widened to whole 16-bit words of the checksummed bytes."""
        lo = self.nonce_at - (self.nonce_at - self.csum_from) % 2
        hi = self.nonce_at + NONCE_LEN
        return lo, hi + (hi - self.csum_from) % 2


def _pad(data: bytes) -> bytes:
    return data + b"\0" if len(data) % 2 else data  # a checksum pads an odd tail with zero


def _adjust(csum: int, old: bytes, new: bytes) -> int:
    """RFC 1624: the checksum after 16-bit-aligned bytes `old` became `new`."""
    total = ~csum & 0xFFFF
    for (was,), (now,) in zip(
        struct.iter_unpack("!H", old), struct.iter_unpack("!H", new), strict=True
    ):
        total += (~was & 0xFFFF) + now
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def from_scapy(packet: Any) -> Template:
    """A Template from any scapy packet; a nonce slot is appended as payload if it has none."""
    from scapy.packet import Raw

    data = bytes(packet)
    if data.find(SLOT) < 0:
        packet = packet / Raw(SLOT)
        data = bytes(packet)
    at = data.find(SLOT)
    if _covering_checksums(packet, data, at) > 1:
        return Template(data, at, None, packet.summary(), rebuild=type(packet))
    start, csum_at, is_udp = _checksum_offset(packet, data)
    return Template(data, at, csum_at, packet.summary(), is_udp, start)


def _covering_checksums(packet: Any, data: bytes, at: int) -> int:
    """How many transport-layer checksums cover byte `at` (each L4 layer before it)."""
    from scapy.layers.inet import ICMP, TCP, UDP
    from scapy.layers.inet6 import _ICMPv6

    count, layer = 0, packet
    while layer is not None and layer.__class__.__name__ != "NoPayload":
        if isinstance(layer, (UDP, TCP, ICMP, _ICMPv6)) and len(data) - len(bytes(layer)) <= at:
            count += 1
        layer = layer.payload
    return count


def _rebuilt(packet: Any) -> bytes:
    """The bytes of a parsed packet with every checksum computed afresh."""
    layer = packet
    while layer is not None and layer.__class__.__name__ != "NoPayload":
        for name in {"chksum", "cksum"} & {f.name for f in layer.fields_desc}:
            setattr(layer, name, None)
        layer = layer.payload
    return bytes(packet)


def _checksum_offset(packet: Any, data: bytes) -> tuple[int, int | None, bool]:
    """(start of the L4 header, offset of its checksum, is it UDP) for UDP, TCP, ICMP and
    ICMPv6; (0, None, False) when no checksum covers the payload."""
    from scapy.layers.inet import ICMP, TCP, UDP

    for layer_type, field_at in ((UDP, 6), (TCP, 16), (ICMP, 2)):
        if packet.haslayer(layer_type):
            start = len(data) - len(bytes(packet[layer_type]))
            return start, start + field_at, layer_type is UDP
    layer = _icmpv6(packet)
    if layer is not None:
        start = len(data) - len(bytes(layer))
        return start, start + 2, False
    return 0, None, False


def _icmpv6(packet: Any) -> Any:
    from scapy.layers.inet6 import _ICMPv6

    layer = packet
    while layer is not None and layer.__class__.__name__ != "NoPayload":
        if isinstance(layer, _ICMPv6):
            return layer
        layer = layer.payload
    return None


def _l2(src: str, dst: str, vlan: int | Sequence[int] | None, ethertype: int | None = None) -> Any:
    """Ethernet, with one 802.1Q tag (vlan=10) or two (vlan=(100, 10): 802.1ad outer)."""
    from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

    frame = (
        Ether(src=src, dst=dst) if ethertype is None else Ether(src=src, dst=dst, type=ethertype)
    )
    if vlan is None:
        return frame
    tags = [vlan] if isinstance(vlan, int) else list(vlan)
    if not 1 <= len(tags) <= 2 or not all(0 <= t <= 4095 for t in tags):
        raise ValueError(f"vlan is one tag or two (outer, inner), each 0..4095, not {vlan!r}")
    if len(tags) == 2:
        return frame / Dot1AD(vlan=tags[0]) / Dot1Q(vlan=tags[1])
    return frame / Dot1Q(vlan=tags[0])


def _l3(src_ip: str, dst_ip: str, ttl: int) -> Any:
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6

    if ipaddress.ip_address(src_ip).version == 6:
        return IPv6(src=src_ip, dst=dst_ip, hlim=ttl)
    return IP(src=src_ip, dst=dst_ip, ttl=ttl)


def ethernet(
    src: str,
    dst: str,
    *,
    ethertype: int = LOCAL_ETHERTYPE,
    vlan: int | Sequence[int] | None = None,
    size: int = 64,
) -> Template:
    """A bare L2 frame of `size` bytes (no FCS) carrying only the nonce."""
    from scapy.packet import Raw

    head = _l2(src, dst, vlan, ethertype if vlan is None else None)
    if vlan is not None:
        head.lastlayer().type = ethertype
    pad = max(0, size - len(head) - len(SLOT))
    return from_scapy(head / Raw(SLOT + bytes(pad)))


def udp(
    src_mac: str,
    dst_mac: str,
    src_ip: str,
    dst_ip: str,
    *,
    sport: int = 40000,
    dport: int = 9,
    ttl: int = 64,
    vlan: int | Sequence[int] | None = None,
) -> Template:
    """A UDP datagram (IPv4 or IPv6 by address family) whose payload carries the nonce."""
    from scapy.layers.inet import UDP
    from scapy.packet import Raw

    return from_scapy(
        _l2(src_mac, dst_mac, vlan)
        / _l3(src_ip, dst_ip, ttl)
        / UDP(sport=sport, dport=dport)
        / Raw(SLOT)
    )


def tcp(
    src_mac: str,
    dst_mac: str,
    src_ip: str,
    dst_ip: str,
    *,
    sport: int = 40000,
    dport: int = 80,
    flags: str = "S",
    seq: int = 1000,
    ttl: int = 64,
    vlan: int | Sequence[int] | None = None,
) -> Template:
    """A TCP segment (a SYN by default) whose payload carries the nonce."""
    from scapy.layers.inet import TCP
    from scapy.packet import Raw

    return from_scapy(
        _l2(src_mac, dst_mac, vlan)
        / _l3(src_ip, dst_ip, ttl)
        / TCP(sport=sport, dport=dport, flags=flags, seq=seq)
        / Raw(SLOT)
    )


def icmp_echo(
    src_mac: str,
    dst_mac: str,
    src_ip: str,
    dst_ip: str,
    *,
    ident: int = 0x4E50,
    seq: int = 1,
    ttl: int = 64,
    vlan: int | Sequence[int] | None = None,
) -> Template:
    """An echo request (ICMP or ICMPv6 by address family); replies echo the nonce back."""
    from scapy.layers.inet import ICMP
    from scapy.layers.inet6 import ICMPv6EchoRequest
    from scapy.packet import Raw

    l3 = _l3(src_ip, dst_ip, ttl)
    echo = (
        ICMPv6EchoRequest(id=ident, seq=seq) if l3.version == 6 else ICMP(type=8, id=ident, seq=seq)
    )
    return from_scapy(_l2(src_mac, dst_mac, vlan) / l3 / echo / Raw(SLOT))


def arp(
    src_mac: str,
    src_ip: str,
    dst_ip: str,
    *,
    op: str = "who-has",
    dst_mac: str = "ff:ff:ff:ff:ff:ff",
    vlan: int | Sequence[int] | None = None,
) -> Template:
    """An ARP request (or reply with op="is-at"); the nonce rides in the frame's padding."""
    from scapy.layers.l2 import ARP
    from scapy.packet import Padding

    body = ARP(
        op=op,
        hwsrc=src_mac,
        psrc=src_ip,
        pdst=dst_ip,
        hwdst=dst_mac if op == "is-at" else "00:00:00:00:00:00",
    )
    return from_scapy(_l2(src_mac, dst_mac, vlan) / body / Padding(SLOT + bytes(2)))


def dhcp_discover(
    src_mac: str, *, xid: int = 0x4E50, vlan: int | Sequence[int] | None = None
) -> Template:
    """A DHCPDISCOVER broadcast; the nonce sits in BOOTP's unused `sname` field."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP

    chaddr = bytes.fromhex(src_mac.replace(":", ""))
    return from_scapy(
        _l2(src_mac, "ff:ff:ff:ff:ff:ff", vlan)
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=chaddr, xid=xid, sname=SLOT, flags=0x8000)
        / DHCP(options=[("message-type", "discover"), "end"])
    )


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`, padded to an even length."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
