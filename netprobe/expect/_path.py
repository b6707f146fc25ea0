"""Following one stack-sent probe through captured frames: its copies, its replies, the
ICMP errors about it, and the neighbour requests on the way. Pure logic, no sockets.

A copy is known by its mark (the nonce of a UDP or ICMP probe; for TCP, the SYN's
sequence number as it left the sender, which NAT keeps). A reply carries no mark: it is
tied to the probe by its 5-tuple, the reverse of a copy's on some segment of the path,
so NAT, which rewrites both directions of a flow alike, is undone hop by hop. An ICMP
error is tied by the packet it quotes: the copy's 5-tuple, nonce or sequence number.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from ..traffic._capture import Captured
from ..traffic._decode import Fields, decode

Tuple5 = tuple[int, str, int, str, int]  # (IP protocol, src, sport, dst, dport)
_IPPROTO = {"icmp": 1, "tcp": 6, "udp": 17}
_ECHO_REQUEST, _ECHO_REPLY = {4: 8, 6: 128}, {4: 0, 6: 129}
_ERRORS = {4: (3, 4, 5, 11, 12), 6: (1, 2, 3, 4)}
_SYN, _RST, _ACK = 0x02, 0x04, 0x10


@dataclass(frozen=True)
class Mark:
    """How a probe's copies are known: `nonce` (UDP, ICMP) or, for TCP, the SYN from
    source port `sport` of the sending host (its sequence number is learned from it)."""

    proto: str
    version: int
    nonce: bytes | None = None
    sport: int | None = None
    sender: str | None = None  # the sending host, whose outgoing SYN teaches the sequence


@dataclass(frozen=True)
class Sighting:
    """One frame of the probe's story at one interface: a copy, a reply or an error."""

    role: str  # "probe", "reply" or "error"
    kind: str  # "probe", "echo-reply", "syn-ack", "rst", "udp-reply", "icmp-error"
    frame: Captured
    fields: Fields
    tuple5: Tuple5 | None
    ttl: int | None
    icmp: tuple[int, int] | None = None

    @property
    def port(self) -> str:
        """Where it was seen ("HOST:IFNAME")."""
        return self.frame.port

    @property
    def host(self) -> str:
        """The host that saw it."""
        return self.frame.port.split(":", 1)[0]

    @property
    def direction(self) -> str:
        """ "out" when the host sent it on that interface, "in" when it received it."""
        return "out" if self.frame.outgoing else "in"


@dataclass
class Trace:
    """Everything of one probe found among the frames, in time order."""

    copies: list[Sighting] = field(default_factory=list)
    replies: list[Sighting] = field(default_factory=list)
    errors: list[Sighting] = field(default_factory=list)
    isn: int | None = None  # the TCP probe's sequence number
    unanswered: list[tuple[str, str]] = field(default_factory=list)  # (port, target) of ARP/ND
    tuples: set[Tuple5] = field(default_factory=set)

    @property
    def last(self) -> Sighting | None:
        """The last copy of the probe seen anywhere."""
        return self.copies[-1] if self.copies else None

    def looped(self) -> Sighting | None:
        """A copy seen again where it had been, in the same direction, with less TTL."""
        first: dict[tuple[str, bool], int] = {}
        for copy in self.copies:
            key = (copy.port, copy.frame.outgoing)
            if key in first and copy.ttl is not None and copy.ttl < first[key]:
                return copy
            first.setdefault(key, copy.ttl if copy.ttl is not None else 256)
        return None


def l4_offset(frame: bytes) -> tuple[int, int] | None:
    """(IP version, offset of the L4 header) of an Ethernet frame, VLAN tags skipped."""
    at = 12
    while at + 4 <= len(frame) and frame[at : at + 2] in (b"\x81\x00", b"\x88\xa8", b"\x91\x00"):
        at += 4
    ethertype, at = frame[at : at + 2], at + 2
    if ethertype == b"\x08\x00" and len(frame) > at:
        return 4, at + (frame[at] & 0x0F) * 4
    if ethertype == b"\x86\xdd":
        return 6, at + 40
    return None


def tuple_of(fields: Fields) -> Tuple5 | None:
    """A frame's 5-tuple; an ICMP echo's identifier stands for both ports."""
    v = "ip" if "ip.src" in fields else "ip6" if "ip6.src" in fields else None
    if v is None:
        return None
    proto = fields.get("ip.proto", fields.get("ip6.nh"))
    if proto in (6, 17) and "l4.sport" in fields:
        return proto, fields[f"{v}.src"], fields["l4.sport"], fields[f"{v}.dst"], fields["l4.dport"]
    if proto in (1, 58) and "icmp.id" in fields:
        ident = fields["icmp.id"]
        return 1, fields[f"{v}.src"], ident, fields[f"{v}.dst"], ident
    return None


def reverse(t: Tuple5) -> Tuple5:
    """The 5-tuple of the other direction of a flow."""
    return t[0], t[3], t[4], t[1], t[2]


def _tcp_seq_ack(frame: bytes) -> tuple[int, int] | None:
    where = l4_offset(frame)
    if where is None or len(frame) < where[1] + 12:
        return None
    seq, ack = struct.unpack_from("!II", frame, where[1] + 4)
    return seq, ack


def quoted(fields: Fields) -> tuple[Tuple5 | None, int | None, bytes]:
    """The packet an ICMP error quotes: (its 5-tuple, its TCP sequence, its bytes)."""
    inner = bytes(fields.get("payload", b""))[4:]  # after the error's 4 unused bytes
    if len(inner) < 20:
        return None, None, inner
    version = inner[0] >> 4
    if version == 4:
        head, proto = (inner[0] & 0x0F) * 4, inner[9]
        src, dst = (socket.inet_ntop(socket.AF_INET, inner[a : a + 4]) for a in (12, 16))
    elif version == 6 and len(inner) >= 48:
        head, proto = 40, inner[6]
        src, dst = (socket.inet_ntop(socket.AF_INET6, inner[a : a + 16]) for a in (8, 24))
    else:
        return None, None, inner
    l4 = inner[head : head + 8]
    if len(l4) < 8:
        return None, None, inner
    if proto in (6, 17):
        sport, dport = struct.unpack_from("!HH", l4)
        seq = struct.unpack_from("!I", l4, 4)[0] if proto == 6 else None
        return (proto, src, sport, dst, dport), seq, inner
    if proto in (1, 58):
        (ident,) = struct.unpack_from("!H", l4, 4)
        return (1, src, ident, dst, ident), None, inner
    return None, None, inner


def follow(mark: Mark, frames: list[Captured]) -> Trace:
    """The probe's copies, replies and errors among `frames` (any order, any host)."""
    ordered = sorted(frames, key=lambda f: f.time)
    decoded = [(f, decode(f.data)) for f in ordered]
    trace = Trace()
    if mark.proto == "tcp":
        trace.isn = _learn_isn(mark, decoded)
    rest = []
    for frame, fields in decoded:
        copy = _as_copy(mark, trace, frame, fields)
        if copy is not None:
            trace.copies.append(copy)
            if copy.tuple5 is not None:
                trace.tuples.add(copy.tuple5)
        else:
            rest.append((frame, fields))
    for frame, fields in rest:
        _sort_other(mark, trace, frame, fields)
    trace.copies, trace.replies = causal(trace.copies), causal(trace.replies)
    trace.unanswered = _unanswered(decoded)
    return trace


def causal(sightings: list[Sighting]) -> list[Sighting]:
    """Sightings in the order the frame went, not only as stamped: each namespace's
    capture stamps on its own (a TCP segment may even carry its sender's departure time
    across veths), so tens of microseconds can put a hop before the one it came from.
    A router lowers the TTL, so the TTL orders hops across routers. Among equal TTLs:
    first where the frame began (an 'out' at a host it did not come in to), then the
    hosts it crossed (a bridge: in and out), last the host it ended at (in, not out)."""
    ins = {(s.host, s.ttl) for s in sightings if s.direction == "in"}
    outs = {(s.host, s.ttl) for s in sightings if s.direction == "out"}

    def key(s: Sighting) -> tuple[int, int, float]:
        if s.direction == "out" and (s.host, s.ttl) not in ins:
            rank = 0
        elif s.direction == "in" and (s.host, s.ttl) not in outs:
            rank = 2
        else:
            rank = 1
        return (-(s.ttl or 0), rank, s.frame.time)

    return sorted(sightings, key=key)


def _learn_isn(mark: Mark, decoded: list[tuple[Captured, Fields]]) -> int | None:
    for frame, fields in decoded:
        flags = fields.get("tcp.flags")
        if (
            frame.outgoing
            and flags is not None
            and flags & (_SYN | _ACK) == _SYN
            and fields.get("l4.sport") == mark.sport
            and (mark.sender is None or frame.port.split(":", 1)[0] == mark.sender)
        ):
            found = _tcp_seq_ack(frame.data)
            return found[0] if found else None
    return None


def _ttl(fields: Fields) -> int | None:
    value = fields.get("ip.ttl", fields.get("ip6.hlim"))
    return int(value) if value is not None else None


def _as_copy(mark: Mark, trace: Trace, frame: Captured, fields: Fields) -> Sighting | None:
    proto = fields.get("ip.proto", fields.get("ip6.nh"))
    if mark.proto == "tcp":
        flags = fields.get("tcp.flags")
        if proto != 6 or flags is None or flags & (_SYN | _ACK) != _SYN or trace.isn is None:
            return None
        seq = _tcp_seq_ack(frame.data)
        if seq is None or seq[0] != trace.isn:
            return None
    else:
        if fields.get("nonce") != mark.nonce or mark.nonce is None:
            return None
        if mark.proto == "udp" and proto != 17:
            return None
        t = tuple_of(fields)
        if t is not None and reverse(t) in trace.tuples:
            return None  # an echo of the payload coming back: a reply, not a copy
        if mark.proto == "icmp" and fields.get("icmp.type") != _ECHO_REQUEST[mark.version]:
            return None
    return Sighting("probe", "probe", frame, fields, tuple_of(fields), _ttl(fields))


def _sort_other(mark: Mark, trace: Trace, frame: Captured, fields: Fields) -> None:
    icmp_type = fields.get("icmp.type")
    version = 6 if "ip6.src" in fields else 4
    if icmp_type in _ERRORS[version] and fields.get("ip.proto", fields.get("ip6.nh")) in (1, 58):
        inner, seq, raw = quoted(fields)
        ours = (
            (inner is not None and inner in trace.tuples)
            or (mark.nonce is not None and mark.nonce in raw)
            or (seq is not None and seq == trace.isn)
        )
        if ours:
            code = (icmp_type, fields.get("icmp.code", 0))
            trace.errors.append(
                Sighting("error", "icmp-error", frame, fields, inner, _ttl(fields), code)
            )
        return
    kind = _reply_kind(mark, trace, frame, fields)
    if kind is not None:
        sighting = Sighting("reply", kind, frame, fields, tuple_of(fields), _ttl(fields))
        trace.replies.append(sighting)


def _reply_kind(mark: Mark, trace: Trace, frame: Captured, fields: Fields) -> str | None:
    if mark.proto == "icmp":
        if (
            fields.get("icmp.type") == _ECHO_REPLY[mark.version]
            and fields.get("nonce") == mark.nonce
        ):
            return "echo-reply"
        return None
    t = tuple_of(fields)
    if t is None or reverse(t) not in trace.tuples:
        return None
    if mark.proto == "udp":
        return "udp-reply"
    flags = fields.get("tcp.flags", 0)
    seq_ack = _tcp_seq_ack(frame.data)
    answers_syn = trace.isn is None or seq_ack is None or seq_ack[1] == (trace.isn + 1) & 0xFFFFFFFF
    if flags & _ACK and not answers_syn:
        return None  # another segment of the same 4-tuple, not the answer to the SYN
    if flags & _RST:
        return "rst"
    if flags & (_SYN | _ACK) == _SYN | _ACK:
        return "syn-ack"
    return None


def _unanswered(decoded: list[tuple[Captured, Fields]]) -> list[tuple[str, str]]:
    """(port, target) of each ARP request or neighbour solicitation sent with no answer
    from the target seen after it anywhere."""
    asked: dict[tuple[str, str], float] = {}
    answered: dict[str, float] = {}
    for frame, fields in decoded:
        target = _solicited(frame, fields)
        if target is not None and frame.outgoing:
            asked.setdefault((frame.port, target), frame.time)
        who = _advertised(frame, fields)
        if who is not None:
            answered[who] = frame.time
    return [(p, t) for (p, t), when in asked.items() if answered.get(t, -1.0) < when]


def _solicited(frame: Captured, fields: Fields) -> str | None:
    if fields.get("arp.op") == 1:
        return str(fields["arp.tpa"])
    if fields.get("icmp.type") == 135 and "ip6.src" in fields:
        return _nd_target(frame.data)
    return None


def _advertised(frame: Captured, fields: Fields) -> str | None:
    if fields.get("arp.op") == 2:
        return str(fields["arp.spa"])
    if fields.get("icmp.type") == 136 and "ip6.src" in fields:
        return _nd_target(frame.data)
    return None


def _nd_target(frame: bytes) -> str | None:
    where = l4_offset(frame)
    if where is None or len(frame) < where[1] + 24:
        return None
    return socket.inet_ntop(socket.AF_INET6, frame[where[1] + 8 : where[1] + 24])
