"""nf_tables read over netlink, in-process: a namespace's tables and rule counters.

`nft list` costs a process (several milliseconds, more on a loaded machine); a netlink
dump of nf_tables answers in well under one. Only what needs no rendering is read here
(table names, chain types, rule handles, counter values): rule text stays nft's to print.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

from . import netns

_NETLINK_NETFILTER = 12
_SUBSYS = 10 << 8  # NFNL_SUBSYS_NFTABLES
_GETTABLE, _GETCHAIN, _GETRULE = 1, 4, 7  # NFT_MSG_GET*
_DUMP = 0x301  # NLM_F_REQUEST | NLM_F_DUMP
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_HDR = struct.Struct("=IHHII")
_NFGEN = 4  # struct nfgenmsg
_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED, NLA_F_NET_BYTEORDER
FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}


def attrs(data: bytes, at: int = 0, end: int | None = None) -> dict[int, bytes]:
    """The attributes of a netlink attribute stream (the last of a repeated type)."""
    out = {}
    for kind, value in each(data, at, end):
        out[kind] = value
    return out


def each(data: bytes, at: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(type, value) of each attribute of a netlink attribute stream, in order."""
    end = len(data) if end is None else end
    while at + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, at)
        if length < 4:
            return
        yield kind & _TYPE_MASK, data[at + 4 : at + length]
        at += (length + 3) & ~3


def _dump(ns_fd: int | None, msg: int) -> Iterator[tuple[str, dict[int, bytes]]]:
    """(family, attributes) of each object an nf_tables dump of `msg` returns; nothing
    without nf_tables."""
    with netns.entered(ns_fd):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                             _NETLINK_NETFILTER)  # fmt: skip
    with sock:
        body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0)
        sock.send(_HDR.pack(_HDR.size + len(body), _SUBSYS | msg, _DUMP, 1, 0) + body)
        while True:
            data = sock.recv(1 << 20)
            at = 0
            while at + _HDR.size <= len(data):
                length, mtype, _flags, _seq, _pid = _HDR.unpack_from(data, at)
                if mtype in (_NLMSG_ERROR, _NLMSG_DONE) or length < _HDR.size:
                    return
                family = data[at + _HDR.size]
                start = at + _HDR.size + _NFGEN
                yield FAMILIES.get(family, str(family)), attrs(data, start, at + length)
                at += (length + 3) & ~3


def text(raw: bytes | None) -> str:
    """A NUL-terminated netlink string attribute as text."""
    return (raw or b"").split(b"\0", 1)[0].decode(errors="replace")


def tables(ns_fd: int | None) -> list[tuple[str, str]]:
    """(family, name) of each nf_tables table of the namespace `ns_fd`."""
    return [(family, text(a.get(1))) for family, a in _dump(ns_fd, _GETTABLE)]


def chain_types(ns_fd: int | None) -> dict[str, str]:
    """{"family table chain": type} for each base chain (filter, nat or route)."""
    return {f"{family} {text(a.get(1))} {text(a.get(3))}": text(a.get(7))
            for family, a in _dump(ns_fd, _GETCHAIN) if 7 in a}


def rule_counters(ns_fd: int | None) -> dict[str, int]:
    """{"family table chain #handle": packets} for every rule with an anonymous counter
    (its first), as `nft -a list ruleset` shows them."""
    out = {}
    for family, rule in _dump(ns_fd, _GETRULE):
        packets = _counter(rule.get(4, b""))
        if packets is None or 3 not in rule:
            continue
        handle = struct.unpack(">Q", rule[3])[0]
        out[f"{family} {text(rule.get(1))} {text(rule.get(2))} #{handle}"] = packets
    return out


def _counter(expressions: bytes) -> int | None:
    """The packets of the first `counter` expression of a rule's expression list."""
    for _elem, expr in each(expressions):
        found = attrs(expr)
        if text(found.get(1)) == "counter":
            data = attrs(found.get(2, b""))
            return struct.unpack(">Q", data[2])[0] if 2 in data else None
    return None
