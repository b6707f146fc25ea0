"""A lean rtnetlink channel: pyroute2's message classes over a plain blocking socket.

pyroute2's IPRoute spends about 2 ms of Python per request in its asyncio machinery; a
200-host topology makes over a thousand requests. Encoding with pyroute2's message
classes and waiting for the kernel's ack on a plain socket costs a fraction of that.
Errors come back as pyroute2's NetlinkError, with the kernel's extended-ack text.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REQUEST,
)
from pyroute2.netlink.exceptions import NetlinkError as NetlinkError  # theirs, used here
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from . import netns, nlpack

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_SOL_NETLINK, _NETLINK_CAP_ACK, _NETLINK_EXT_ACK = 270, 10, 11
_NLMSGERR_ATTR_MSG = 1
HDR = nlpack.HDR
_CLASSES: dict[int, Any] = {RTM_GETLINK: ifinfmsg, RTM_GETADDR: ifaddrmsg, RTM_GETROUTE: rtmsg}

CREATE = NLM_F_CREATE | NLM_F_EXCL


class Rtnl:
    """A NETLINK_ROUTE socket bound to one network namespace (None: the current one)."""

    def __init__(self, ns_fd: int | None = None) -> None:
        with netns.entered(ns_fd):
            self.sock = socket.socket(
                socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0
            )  # NETLINK_ROUTE
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.setsockopt(_SOL_NETLINK, _NETLINK_CAP_ACK, 1)
        self.sock.setsockopt(_SOL_NETLINK, _NETLINK_EXT_ACK, 1)
        self.sock.bind((0, 0))
        self._seq = 0
        self._queued: list[bytes] = []  # encoded requests `flush` sends, in order
        self._tags: dict[int, object] = {}  # their sequence numbers → what each one does

    def close(self) -> None:
        """Close the netlink socket."""
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _encode(self, msg: Any, msg_type: int, flags: int) -> bytes:
        self._seq += 1
        packed = nlpack.pack(msg, msg_type, NLM_F_REQUEST | flags, self._seq)
        if packed is not None:
            return packed
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = NLM_F_REQUEST | flags
        msg["header"]["sequence_number"] = self._seq
        msg.encode()
        return bytes(msg.data)

    def _send(self, msg: Any, msg_type: int, flags: int) -> int:
        self.flush()  # what was queued goes first: requests are answered in order
        self.sock.send(self._encode(msg, msg_type, flags))
        return self._seq

    def queue(self, msg: Any, msg_type: int, flags: int = 0, tag: object = None) -> None:
        """Encode a change to send with the next `flush` (or any request made before it);
        `tag` says what it does, to name it should it fail."""
        self._queued.append(self._encode(msg, msg_type, NLM_F_ACK | flags))
        self._tags[self._seq] = tag

    def flush(self) -> None:
        """Send the queued changes, many to a write (the kernel handles the messages of one
        write in order, acknowledging each), then read their acks together. Raise
        BatchError, carrying the failed request's tag, for the first that failed (the
        kernel still ran those after it)."""
        queued, tags = self._queued, self._tags
        if not queued:
            return
        self._queued, self._tags = [], {}
        failed: BatchError | None = None
        for start in range(0, len(queued), _BATCH):
            seqs = list(tags)[start : start + _BATCH]
            self.sock.send(b"".join(queued[start : start + _BATCH]))
            for seq, error in self._acks(set(seqs)):
                if error is not None and failed is None:
                    failed = BatchError(tags[seq], error)
        if failed is not None:
            raise failed

    def _acks(self, seqs: set[int]) -> Iterator[tuple[int, NetlinkError | None]]:
        """(seq, error or None) for the ack of each of `seqs`, as they arrive."""
        while seqs:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + HDR.size <= len(data):
                length, mtype, _flags, mseq, _pid = HDR.unpack_from(data, offset)
                chunk = data[offset : offset + length]
                offset += (length + 3) & ~3
                if mtype != _NLMSG_ERROR or mseq not in seqs:
                    continue  # a stale reply to an abandoned request
                seqs.discard(mseq)
                try:
                    _raise_for_ack(chunk)
                    yield mseq, None
                except NetlinkError as exc:
                    yield mseq, exc

    def _replies(self, seq: int) -> Any:
        """Yield (type, payload bytes) of each reply to `seq`, through DONE or the ack."""
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + HDR.size <= len(data):
                length, mtype, _flags, mseq, _pid = HDR.unpack_from(data, offset)
                chunk = data[offset : offset + length]
                offset += (length + 3) & ~3
                if mseq != seq:
                    continue  # a stale reply to an abandoned request
                if mtype == _NLMSG_ERROR:
                    _raise_for_ack(chunk)
                    return
                if mtype == _NLMSG_DONE:
                    return
                yield mtype, chunk

    def raw(self, msg_type: int, body: bytes, *, dump: bool = True) -> list[bytes]:
        """Send a request whose body is already packed; its replies as raw messages (a
        get that is no dump has one reply and no ack: it stops at that)."""
        self.flush()
        self._seq += 1
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
        self.sock.send(HDR.pack(HDR.size + len(body), msg_type, flags, self._seq, 0) + body)
        out = []
        for _mtype, chunk in self._replies(self._seq):
            out.append(chunk)
            if not dump:
                break
        return out

    def request(self, msg: Any, msg_type: int, flags: int = 0) -> None:
        """Send one change and wait for its ack; raise NetlinkError on failure."""
        seq = self._send(msg, msg_type, NLM_F_ACK | flags)
        for _ in self._replies(seq):
            pass

    def dump(self, msg_type: int, family: int = 0) -> list[Any]:
        """All objects of a kind (RTM_GETLINK, RTM_GETADDR), decoded by pyroute2."""
        cls = _CLASSES[msg_type]
        msg = cls()
        msg["family"] = family
        seq = self._send(msg, msg_type, NLM_F_DUMP)
        out = []
        for _mtype, chunk in self._replies(seq):
            decoded = cls(chunk)
            decoded.decode()
            out.append(decoded)
        return out

    def link_states(self) -> dict[str, LinkState]:
        """Name, index, flags, carrier, alias and mtu of every link: a dump parsed for just
        those.

        pyroute2 decodes every attribute (statistics included), which made the self-check
        of a 200-host topology cost more than building it.
        """
        seq = self._send(ifinfmsg(), RTM_GETLINK, NLM_F_DUMP)
        return dict(_link_state(chunk) for _mtype, chunk in self._replies(seq))

    def bridge_port_states(self) -> dict[str, int]:
        """STP state of every bridge port (3: forwarding), from an AF_BRIDGE link dump.

        A port starts forwarding only when the kernel's link watcher has seen its carrier,
        a moment after the carrier itself: frames sent before are dropped silently.
        """
        msg = ifinfmsg()
        msg["family"] = socket.AF_BRIDGE
        seq = self._send(msg, RTM_GETLINK, NLM_F_DUMP)
        out = {}
        for _mtype, chunk in self._replies(seq):
            attrs = scan(chunk, HDR.size + _IFINFO.size, {_IFLA_IFNAME, _IFLA_PROTINFO})
            name, info = text(attrs.get(_IFLA_IFNAME)), attrs.get(_IFLA_PROTINFO)
            if name is not None and info is not None:
                state = scan(info, 0, {_IFLA_BRPORT_STATE}).get(_IFLA_BRPORT_STATE)
                if state:
                    out[name] = state[0]
        return out

    def addr_states(self) -> list[AddrState]:
        """Every address with its interface index and flags (IFA_FLAGS when present)."""
        seq = self._send(ifaddrmsg(), RTM_GETADDR, NLM_F_DUMP)
        found = (_addr_state(chunk) for _mtype, chunk in self._replies(seq))
        return [a for a in found if a is not None]

    def tx_dropped(self, name: str) -> int:
        """How many frames link `name` has dropped on transmit (rtnl_link_stats64)."""
        msg = ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", name)]
        seq = self._send(msg, RTM_GETLINK, 0)
        for _mtype, chunk in self._replies(seq):  # one reply, and no ack: stop at it
            stats = scan(chunk, HDR.size + _IFINFO.size, {_IFLA_STATS64}).get(_IFLA_STATS64)
            return int(struct.unpack_from("=Q", stats, 7 * 8)[0]) if stats else 0
        return 0

    def links(self) -> dict[str, Any]:
        """Links of this namespace by name."""
        return {m.get_attr("IFLA_IFNAME"): m for m in self.dump(RTM_GETLINK)}

    def index(self, name: str) -> int:
        """The ifindex of `name`; NetlinkError(ENODEV) if there is none.

        Asking for one link (not a dump) also makes the kernel process that link's pending
        link-watch events first, so its operstate and transmit queue are current after it.
        """
        msg = ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", name)]
        seq = self._send(msg, RTM_GETLINK, 0)
        for _mtype, chunk in self._replies(seq):
            index: int = _IFINFO.unpack_from(chunk, HDR.size)[2]
            return index
        raise NetlinkError(19, f"no interface {name}")

    def settle(
        self, names: list[str], *, addresses: bool = False
    ) -> tuple[dict[str, LinkState], list[AddrState]]:
        """Ask for each of `names` alone (what `index` does, for its link-watch effect),
        the requests sent in one write and their replies read together: the states of
        those that exist (the others are passed over). `addresses`: and every address,
        the dump asked for in the same write (a host's self-check in one round trip)."""
        self.flush()
        gets = []
        for name in names:
            msg = ifinfmsg()
            msg["attrs"] = [("IFLA_IFNAME", name)]
            gets.append((self._encode(msg, RTM_GETLINK, NLM_F_ACK), self._seq))
        batches = [gets[start : start + _GETS] for start in range(0, len(gets), _GETS)] or [[]]
        dump = None
        if addresses:
            request = self._encode(ifaddrmsg(), RTM_GETADDR, NLM_F_DUMP)
            dump = self._seq
            batches[-1] = [*batches[-1], (request, dump)]
        links: dict[str, LinkState] = {}
        addrs: list[AddrState] = []
        for batch in batches:
            if batch:
                self.sock.send(b"".join(request for request, _seq in batch))
                self._read_states({seq for _request, seq in batch}, dump, links, addrs)
        return links, addrs

    def _read_states(
        self,
        waiting: set[int],
        dump: int | None,
        links: dict[str, LinkState],
        addrs: list[AddrState],
    ) -> None:
        """Read until each of `waiting` is answered: a single-link get by its ack (its
        reply, if any, into `links`), the address dump `dump` by its end (into `addrs`)."""
        while waiting:
            data = self.sock.recv(1 << 20)
            offset = 0
            while offset + HDR.size <= len(data):
                length, mtype, _flags, mseq, _pid = HDR.unpack_from(data, offset)
                chunk = data[offset : offset + length]
                offset += (length + 3) & ~3
                if mseq not in waiting:
                    continue  # a stale reply to an abandoned request
                if mseq == dump:
                    if mtype == RTM_NEWADDR and (found := _addr_state(chunk)) is not None:
                        addrs.append(found)
                    elif mtype in (_NLMSG_DONE, _NLMSG_ERROR):
                        waiting.discard(mseq)
                        if mtype == _NLMSG_ERROR:
                            _raise_for_ack(chunk)
                elif mtype == RTM_NEWLINK:
                    name, state = _link_state(chunk)
                    links[name] = state
                elif mtype == _NLMSG_ERROR:
                    waiting.discard(mseq)  # the ack, or ENODEV: no such link


def _addr_state(chunk: bytes) -> AddrState | None:
    """The address of one RTM_NEWADDR message (None: it carries none)."""
    family, plen, flags, _scope, index = _IFADDR.unpack_from(chunk, HDR.size)
    attrs = scan(chunk, HDR.size + _IFADDR.size, {_IFA_ADDRESS, _IFA_LOCAL, _IFA_FLAGS})
    raw = attrs.get(_IFA_LOCAL) or attrs.get(_IFA_ADDRESS)
    if raw is None:
        return None
    if _IFA_FLAGS in attrs:
        (flags,) = struct.unpack_from("=I", attrs[_IFA_FLAGS])
    return AddrState(index, socket.inet_ntop(family, raw), flags, plen)


def _link_state(chunk: bytes) -> tuple[str, LinkState]:
    """(name, state) of one RTM_NEWLINK message, parsed for just what LinkState holds."""
    _family, _type, index, flags, _change = _IFINFO.unpack_from(chunk, HDR.size)
    wanted = {_IFLA_IFNAME, _IFLA_CARRIER, _IFLA_IFALIAS, _IFLA_OPERSTATE, _IFLA_MTU}
    attrs = scan(chunk, HDR.size + _IFINFO.size, wanted)
    carrier, oper = attrs.get(_IFLA_CARRIER), attrs.get(_IFLA_OPERSTATE)
    mtu = attrs.get(_IFLA_MTU)
    return text(attrs.get(_IFLA_IFNAME)) or str(index), LinkState(
        index,
        flags,
        bool(carrier and carrier[0]),
        text(attrs.get(_IFLA_IFALIAS)),
        oper[0] if oper else 0,
        struct.unpack_from("=I", mtu)[0] if mtu else 0,
    )


class BatchError(NetlinkError):  # type: ignore[misc]  # pyroute2 is untyped
    """A queued request failed: the kernel's error, and the tag the request was queued
    with (what it was doing)."""

    def __init__(self, tag: object, error: NetlinkError) -> None:
        super().__init__(error.code, error.args[1] if len(error.args) > 1 else None)
        self.tag = tag


# Requests per write: their acks (about 1 KiB each, as the kernel charges them) must fit
# in the socket's receive buffer, else the kernel drops them.
_BATCH = 128
_GETS = 32  # a single-link get is answered with the whole link (~4 KiB charged) and an ack


@dataclass(frozen=True)
class LinkState:
    """What the kernel reports of a link: index, flags, carrier, alias and operstate."""

    index: int
    flags: int
    carrier: bool
    alias: str | None
    operstate: int = 0  # RFC 2863: 6 is up; set by the kernel's link watcher
    mtu: int = 0


@dataclass(frozen=True)
class AddrState:
    """An address the kernel holds on a link, with its flags and prefix length."""

    index: int
    address: str
    flags: int
    prefixlen: int = 0


_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_IFLA_MTU = 4
_IFLA_IFNAME, _IFLA_PROTINFO, _IFLA_OPERSTATE, _IFLA_IFALIAS, _IFLA_CARRIER = 3, 12, 16, 20, 33
_IFLA_BRPORT_STATE = 1
_IFLA_STATS64 = 23
_IFA_ADDRESS, _IFA_LOCAL, _IFA_FLAGS = 1, 2, 8
_NLA_TYPE_MASK = 0x3FFF


attr = nlpack.attr  # one netlink attribute: header, payload, padding to 4 bytes


def scan(chunk: bytes, offset: int, wanted: set[int]) -> dict[int, bytes]:
    """The payloads of the wanted top-level attributes of one message."""
    found = {}
    while offset + 4 <= len(chunk):
        alen, atype = struct.unpack_from("=HH", chunk, offset)
        if alen < 4:
            break
        if atype & _NLA_TYPE_MASK in wanted:
            found[atype & _NLA_TYPE_MASK] = chunk[offset + 4 : offset + alen]
        offset += (alen + 3) & ~3
    return found


def text(raw: bytes | None) -> str | None:
    """A netlink string attribute as text (None stays None)."""
    return raw.rstrip(b"\0").decode(errors="replace") if raw is not None else None


def _raise_for_ack(chunk: bytes) -> None:
    """Parse an NLMSG_ERROR (with NETLINK_CAP_ACK and EXT_ACK) and raise if it is one."""
    (error,) = struct.unpack_from("=i", chunk, HDR.size)
    if error == 0:
        return
    text = ""
    offset = HDR.size + 4 + HDR.size  # error code, then the echoed request header
    while offset + 4 <= len(chunk):
        alen, atype = struct.unpack_from("=HH", chunk, offset)
        if alen < 4:
            break
        if atype == _NLMSGERR_ATTR_MSG:
            text = chunk[offset + 4 : offset + alen].rstrip(b"\0").decode(errors="replace")
        offset += (alen + 3) & ~3
    raise NetlinkError(-error, text or None)


def link_msg(index: int = 0, **attrs: Any) -> Any:
    """An ifinfmsg with raw IFLA_* attributes: link_msg(3, IFLA_MASTER=2)."""
    msg = ifinfmsg()
    msg["index"] = index
    msg["attrs"] = list(attrs.items())
    return msg


def addr_msg(index: int, family: int, prefixlen: int, attrs: list[tuple[str, Any]]) -> Any:
    """An ifaddrmsg for address requests on link `index`."""
    msg = ifaddrmsg()
    msg["index"] = index
    msg["family"] = family
    msg["prefixlen"] = prefixlen
    msg["attrs"] = attrs
    return msg


def route_msg(family: int, dst_len: int, scope: int, attrs: list[tuple[str, Any]]) -> Any:
    """An rtmsg for a static unicast route in the main table."""
    msg = rtmsg()
    msg["family"] = family
    msg["dst_len"] = dst_len
    msg["table"] = 254  # main
    msg["proto"] = 4  # static
    msg["scope"] = scope
    msg["type"] = 1  # unicast
    msg["attrs"] = attrs
    return msg
