"""A datagram cut into IPv4 or IPv6 fragments, each a Template with a nonce of its own.

A router or NAT sees, rewrites and may drop each fragment alone, so each must be known
where it comes out: every fragment carries a nonce at the start of its data (the first
one just after the L4 header), followed by a 16-bit compensation word. Writing a fresh
nonce adjusts that word so the datagram's one's-complement sum stays what it was; the
L4 checksum, which only the first fragment carries, stays right whatever nonces the
others carry, and the receiver reassembles a valid datagram.

The fragments of one probe must share the datagram's identification, and two probes
must not: `Template.probe(ident=...)` writes the one a probe's fragments share (expect
draws a fresh one per probe).
"""

from __future__ import annotations

import struct
from typing import Any

from ..errors import TrafficError
from ._craft import NONCE_LEN, SLOT, Template, _rebuilt, checksum

MARK_LEN = NONCE_LEN + 2  # the nonce, then its compensation word
_UPPER = {6, 17, 58, 1, 132, 136}  # IPv6 next headers that are not extension headers


def fragments(datagram: Template | Any, size: int, *, ident: int = 0x4E50) -> list[Template]:
    """The fragments of `datagram` (a Template or a scapy Ether/IP or Ether/IPv6 packet)
    carrying at most `size` bytes of its IP payload each (a multiple of 8, enough for
    the L4 header and a nonce).

    Each fragment's first bytes of data are overwritten with its nonce slot and the
    compensation word (18 bytes; the datagram is padded if its last piece is shorter),
    and the L4 checksum is computed over that. IPv4: offset and MF in the header (DF
    cleared), its checksum right; IPv6: a Fragment header after the fixed header (the
    datagram must have no extension header of its own). `ident` is the identification
    until a probe writes its own."""
    from scapy.layers.l2 import Ether

    packet = Ether(datagram.data) if isinstance(datagram, Template) else datagram.copy()
    if size % 8 or size < 8:
        raise TrafficError(f"a fragment's size is a multiple of 8 bytes, not {size}")
    l3 = _l3_layer(packet)
    l2_len = len(bytes(packet)) - len(bytes(l3))
    v6 = l3.version == 6
    if v6 and l3.nh not in _UPPER:
        raise TrafficError("fragments: an IPv6 datagram with extension headers is not supported")
    head = len(bytes(l3)) - len(bytes(l3.payload))
    least = -(-(_l4_header(l3) + MARK_LEN) // 8) * 8
    if size < least:
        raise TrafficError(f"a fragment must hold the L4 header and a nonce: {least} bytes or more")
    frame = _marked(packet, l3, size)
    segment = frame[l2_len + head :]
    if len(segment) <= size:
        raise TrafficError(f"a datagram of {len(segment)} bytes fits in one fragment of {size}")
    pieces = range(0, len(segment), size)
    return [
        _fragment(frame[:l2_len], frame[l2_len : l2_len + head], segment, off, size, v6, ident,
                  f"{packet.summary()} fragment {n + 1}/{len(pieces)} at {off}")
        for n, off in enumerate(pieces)
    ]  # fmt: skip


def _l3_layer(packet: Any) -> Any:
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6

    for kind in (IP, IPv6):
        if packet.haslayer(kind):
            return packet[kind]
    raise TrafficError("fragments need an IPv4 or IPv6 datagram")


def _l4_header(l3: Any) -> int:
    """How many bytes of the IP payload are the L4 header (the first mark goes after)."""
    payload = l3.payload
    name = payload.__class__.__name__
    if name == "TCP":
        return int(payload.dataofs or 5) * 4
    if name in ("UDP", "ICMP") or name.startswith("ICMPv6"):
        return 8
    return 0


def _marked(packet: Any, l3: Any, size: int) -> bytes:
    """The datagram's bytes with a mark at each fragment's start, checksums computed."""
    from scapy.packet import Raw

    start = _l4_header(l3)
    body = bytearray(bytes(l3.payload))
    marks = [start, *range(size, len(body), size)]
    if len(body) - marks[-1] < MARK_LEN:  # the last piece must hold its mark
        body += bytes(MARK_LEN - (len(body) - marks[-1]))
    for at in marks:
        body[at : at + MARK_LEN] = SLOT + bytes(2)
    layer = l3.payload
    if start:
        layer.remove_payload()
        layer.add_payload(Raw(bytes(body[start:])))
    else:
        l3.remove_payload()
        l3.add_payload(Raw(bytes(body)))
    for name in ("len", "plen"):
        if name in {f.name for f in l3.fields_desc}:
            setattr(l3, name, None)
    if start and "len" in {f.name for f in layer.fields_desc}:
        layer.len = None
    return _rebuilt(packet)


def _fragment(
    l2: bytes, head: bytes, segment: bytes, off: int, size: int, v6: bool, ident: int,
    summary: str,
) -> Template:  # fmt: skip
    chunk = segment[off : off + size]
    more = int(off + size < len(segment))
    if v6:
        fixed = bytearray(head)
        next_header = fixed[6]
        struct.pack_into("!HB", fixed, 4, len(chunk) + 8, 44)
        header = bytes(fixed) + struct.pack("!BBHI", next_header, 0, off | more, ident)
        ident_at, ident_len, ident_csum = len(l2) + 44, 4, None
    else:
        fixed = bytearray(head)
        struct.pack_into("!HHH", fixed, 2, len(head) + len(chunk), ident & 0xFFFF,
                         (more << 13) | (off // 8))  # fmt: skip
        struct.pack_into("!H", fixed, 10, 0)
        struct.pack_into("!H", fixed, 10, checksum(bytes(fixed)))
        header = bytes(fixed)
        ident_at, ident_len, ident_csum = len(l2) + 4, 2, len(l2) + 10
    data = l2 + header + chunk
    mark = 0 if off else segment.find(SLOT)
    nonce_at = len(l2) + len(header) + mark
    return Template(
        data, nonce_at, nonce_at + NONCE_LEN, summary, csum_from=len(l2) + len(header),
        ident_at=ident_at, ident_len=ident_len, ident_csum_at=ident_csum,
    )  # fmt: skip

