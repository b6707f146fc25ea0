"""nf_tables tracing over netlink, in-process: a trace table and the trace events.

`nft -f` to add a table, `nft monitor trace` (started, then waited on until it has
subscribed, then drained and stopped) and `nft delete table` cost a process each, tens
of milliseconds together on a loaded machine. Here one netlink socket per namespace
joins the trace group (subscribed when `bind` returns: no wait), adds a table whose
rule sets `meta nftrace` on packets whose bytes at an offset match a value, reads the
NFT_MSG_TRACE events the kernel queued while the probe went through, and deletes the
table. The table is owned by the socket (NFT_TABLE_F_OWNER): it goes with the socket,
a killed process's too.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass

from . import netns
from .netlink import attr
from .nfnl import FAMILIES, attrs, text

_NETLINK_NETFILTER = 12
_NFNLGRP_NFTRACE = 9
_SOL_NETLINK = 270
_NETLINK_ADD_MEMBERSHIP = 1
_SUBSYS = 10 << 8  # NFNL_SUBSYS_NFTABLES
_NEWTABLE, _DELTABLE, _NEWCHAIN, _NEWRULE, _TRACE = 0, 2, 3, 6, 17  # NFT_MSG_*
_BATCH_BEGIN, _BATCH_END = 0x10, 0x11
_REQUEST, _ACK, _CREATE, _APPEND = 0x1, 0x4, 0x400, 0x800
_NLMSG_ERROR = 2
_NESTED = 0x8000
_HDR = struct.Struct("=IHHII")
_TABLE_F_OWNER = 2
_PREROUTING = 0
HOOKS = {"prerouting": 0, "output": 3}  # NF_INET_*: where a trace chain can mark packets
_SO_RCVBUFFORCE = 33
_REG_1 = 1  # a 16-byte register
_META_NFTRACE = 12
BASES = {"nh": 1, "th": 2}  # @nh, @th: NFT_PAYLOAD_NETWORK_HEADER, _TRANSPORT_HEADER
_FAMILY_NUMBERS = {name: number for number, name in FAMILIES.items()}
_TYPES = {1: "policy", 2: "return", 3: "rule"}  # NFT_TRACETYPE_*
_VERDICTS = {0: "drop", 1: "accept", 2: "stolen", 3: "queue", 4: "repeat", 5: "stop",
             -1: "continue", -2: "break", -3: "jump", -4: "goto", -5: "return"}  # fmt: skip


def _nest(kind: int, *parts: bytes) -> bytes:
    return attr(kind | _NESTED, b"".join(parts))


def _str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def _u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack(">i" if value < 0 else ">I", value))


def _expr(name: str, *data: bytes) -> bytes:
    return _nest(1, _str(1, name), _nest(2, *data))  # NFTA_LIST_ELEM {NAME, DATA}


def _rule_expressions(base: int, offset: int, value: bytes) -> bytes:
    """payload load → reg 1; cmp eq value; immediate 1 → reg 1; meta set nftrace."""
    return _nest(
        4,  # NFTA_RULE_EXPRESSIONS
        _expr("payload", _u32(1, _REG_1), _u32(2, base), _u32(3, offset), _u32(4, len(value))),
        _expr("cmp", _u32(1, _REG_1), _u32(2, 0), _nest(3, attr(1, value))),
        _expr("immediate", _u32(1, _REG_1), _nest(2, attr(1, b"\x01"))),
        _expr("meta", _u32(2, _META_NFTRACE), _u32(3, _REG_1)),
    )


@dataclass(frozen=True)
class TraceEvent:
    """One NFT_MSG_TRACE: a rule's verdict, a chain's policy or a return, in a chain."""

    trace_id: str  # as `nft monitor trace` prints it: 8 hex digits
    family: str
    table: str
    chain: str
    kind: str  # "rule", "policy", "return" or "other"
    handle: int | None
    verdict: str | None  # "accept", "drop", "jump sub", …
    headers: bool  # the event carries the packet's headers (the chain's first)
    transport: bytes | None = None  # the first bytes of its transport header, if carried


def parse_trace(payload: bytes, family: int) -> TraceEvent:
    """An NFT_MSG_TRACE's attributes (after its nfgenmsg) as an event."""
    found = attrs(payload)
    kind = _TYPES.get(struct.unpack(">I", found[4])[0], "other") if 4 in found else "other"
    handle = struct.unpack(">Q", found[3])[0] if 3 in found else None
    verdict = _verdict(found.get(5)) if 5 in found else None
    if kind == "policy" and 16 in found:
        verdict = _VERDICTS.get(struct.unpack(">i", found[16])[0] & 0xFF)
    trace_id = f"{struct.unpack('>I', found[6])[0]:08x}" if 6 in found else "?"
    headers = 7 in found or 8 in found
    where = (FAMILIES.get(family, str(family)), text(found.get(1)), text(found.get(2)))
    return TraceEvent(trace_id, *where, kind, handle, verdict, headers, found.get(9))


def _verdict(nested: bytes | None) -> str | None:
    found = attrs(nested or b"")
    if 1 not in found:
        return None
    code = struct.unpack(">i", found[1])[0]
    name = _VERDICTS.get(code if code < 0 else code & 0xFF, str(code))
    return f"{name} {text(found[2])}" if 2 in found else name


class TraceSocket:
    """A netlink socket in one namespace: subscribed to nf_tables trace events, owner
    of the trace tables it adds."""

    def __init__(self, ns_fd: int | None, *, buffer: int = 1 << 20) -> None:
        with netns.entered(ns_fd):
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                      _NETLINK_NETFILTER)  # fmt: skip
        try:  # a batch of probes queues many events at once: a large buffer holds them
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, buffer)
            except PermissionError:  # in a user namespace: as large as rmem_max allows
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
            self.sock.bind((0, 0))
            self.sock.setsockopt(_SOL_NETLINK, _NETLINK_ADD_MEMBERSHIP, _NFNLGRP_NFTRACE)
        except BaseException:
            self.sock.close()
            raise
        self._seq = 0
        self._events: list[TraceEvent] = []

    def add_table(self, family: str, name: str, match: tuple[int, int, bytes]) -> None:
        """Add table `name` (owned by this socket) with a prerouting chain, before every
        other, whose one rule sets nftrace on packets whose bytes at (base, offset) are
        `value`."""
        self.add_rules(family, name, [("prerouting", match)])

    def add_rules(self, family: str, name: str,
                  rules: list[tuple[str, tuple[int, int, bytes]]]) -> None:
        """Add table `name` (owned by this socket) with a chain per hook named in `rules`
        (prerouting, output), before every other, and in it one rule per (hook, match)
        that sets nftrace on packets whose bytes at (base, offset) are the match's value:
        one transaction, however many rules."""
        number = _FAMILY_NUMBERS[family]
        messages = [(_NEWTABLE, number, _CREATE, _str(1, name) + _u32(2, _TABLE_F_OWNER))]
        for hook in dict.fromkeys(h for h, _ in rules):
            spec = _nest(4, _u32(1, HOOKS[hook]), _u32(2, -500))
            messages.append((_NEWCHAIN, number, _CREATE,
                             _str(1, name) + _str(3, hook[:3]) + spec + _str(7, "filter")))
        for hook, (base, offset, value) in rules:
            messages.append((_NEWRULE, number, _CREATE | _APPEND, _str(1, name)
                             + _str(2, hook[:3]) + _rule_expressions(base, offset, value)))
        self._batch(messages)

    def delete_table(self, family: str, name: str) -> None:
        """Delete table `name` (gone already is fine)."""
        try:
            self._batch([(_DELTABLE, _FAMILY_NUMBERS[family], 0, _str(1, name))])
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise

    def events(self) -> list[TraceEvent]:
        """Every trace event queued so far, in the kernel's order (without blocking)."""
        while True:
            try:
                data = self.sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return list(self._events)
            self._parse(data)

    def close(self) -> None:
        """Leave the group; a table still owned goes with the socket."""
        self.sock.close()

    def _batch(self, messages: list[tuple[int, int, int, bytes]]) -> None:
        """Send `messages` as one nf_tables transaction; raise OSError on a refusal."""
        seqs, out = [], [self._msg(_BATCH_BEGIN, _REQUEST, socket.AF_UNSPEC, _SUBSYS >> 8, b"")]
        for msg, family, flags, body in messages:
            out.append(self._msg(_SUBSYS | msg, _REQUEST | _ACK | flags, family, 0, body))
            seqs.append(self._seq)
        out.append(self._msg(_BATCH_END, _REQUEST, socket.AF_UNSPEC, _SUBSYS >> 8, b""))
        self.sock.send(b"".join(out))
        waiting = set(seqs)
        while waiting:
            self._parse(self.sock.recv(1 << 20), waiting)

    def _msg(self, mtype: int, flags: int, family: int, res_id: int, body: bytes) -> bytes:
        self._seq += 1
        payload = struct.pack("=BBH", family, 0, socket.htons(res_id)) + body
        return _HDR.pack(_HDR.size + len(payload), mtype, flags, self._seq, 0) + payload

    def _parse(self, data: bytes, waiting: set[int] | None = None) -> None:
        at = 0
        while at + _HDR.size <= len(data):
            length, mtype, _flags, seq, _pid = _HDR.unpack_from(data, at)
            if length < _HDR.size:
                return
            if mtype == _NLMSG_ERROR and waiting is not None:
                (code,) = struct.unpack_from("=i", data, at + _HDR.size)
                waiting.discard(seq)
                if code:
                    raise OSError(-code, os.strerror(-code))
            elif mtype == _SUBSYS | _TRACE:
                family = data[at + _HDR.size]
                self._events.append(parse_trace(data[at + _HDR.size + 4 : at + length], family))
            at += (length + 3) & ~3
