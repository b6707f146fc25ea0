"""Probes sent from a host's own stack: a real socket opened inside its namespace.

The sender's routes, neighbour table, source address selection and OUTPUT rules then
take part, as they do for any program of that host. A socket keeps the namespace it was
made in, so it is opened inside (`netns.entered`) and used from anywhere.

Each probe is marked so its copies can be told along the path: UDP and ICMP carry
netprobe's nonce in their payload; a TCP SYN carries no payload, so it is bound to a
source port chosen here and known by the sequence number its first copy carries, which
NAT leaves alone. What the socket itself says is reported too: a connect that completed
(SYN-ACK) or was refused (RST), an echo reply, and errors (ENETUNREACH, EHOSTUNREACH,
ECONNREFUSED, EPERM from an OUTPUT drop...) with the ICMP message behind them, read
through IP_RECVERR.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import random
import select
import socket
import struct
from dataclasses import dataclass

from ..errors import TrafficError
from ..topology._kernel import netns
from ._craft import checksum, find_nonce, new_nonce

PROTOCOLS = ("icmp", "tcp", "udp")
_IP_RECVERR, _IPV6_RECVERR = 11, 25
_SO_EE_ORIGIN_ICMP, _SO_EE_ORIGIN_ICMP6 = 2, 3
_EXTENDED_ERR = struct.Struct("=IBBBBII")
_PAYLOAD_PAD = 16  # bytes after the nonce: an ICMP error quoting 8 bytes of L4 still sees it
_NONCE_ROOM = 32  # the least `size`: the nonce and its padding
_IP_MTU_DISCOVER, _IPV6_MTU_DISCOVER, _PMTUDISC_DO = 10, 23, 2
_PMTU_OPTIONS = {
    False: (socket.IPPROTO_IP, _IP_MTU_DISCOVER, _PMTUDISC_DO),
    True: (socket.IPPROTO_IPV6, _IPV6_MTU_DISCOVER, _PMTUDISC_DO),
}
_TCP_PORTS = (42000, 59999)  # a chosen source port marks a TCP probe


@dataclass(frozen=True)
class SocketReport:
    """What the sending socket said: `kind` is "answered" (echo reply, SYN-ACK, a UDP
    reply), "refused" (RST, ICMP port unreachable), "error" (another errno) or "silent"."""

    kind: str
    errno: str | None = None  # its symbolic name, ECONNREFUSED
    icmp: tuple[int, int] | None = None  # the ICMP type and code behind an error
    offender: str | None = None  # who sent that ICMP message
    at_send: bool = False  # the error came from the send itself: the sender's own kernel

    def describe(self) -> str:
        """In words: "connect() refused (ECONNREFUSED, ICMP 3/3 from 10.0.2.1)"."""
        if self.kind == "silent":
            return "the socket heard nothing"
        words = {"answered": "answered", "refused": "refused", "error": "failed"}[self.kind]
        detail = [self.errno] if self.errno else []
        if self.icmp is not None:
            detail.append(f"ICMP {self.icmp[0]}/{self.icmp[1]} from {self.offender}")
        if self.at_send:
            detail.append("at the send: the sender's own kernel")
        return words + (f" ({', '.join(detail)})" if detail else "")


def family_of(address: str) -> int:
    """AF_INET or AF_INET6 for an address's text."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    except ValueError:
        raise TrafficError(f"not an IP address: {address!r}") from None


def _errname(code: int) -> str:
    return errno.errorcode.get(code, str(code))


class StackProbe:
    """One probe from `ns_fd`'s stack to `dst` (a port for tcp and udp); send once."""

    def __init__(
        self, ns_fd: int, proto: str, dst: str, port: int | None = None, *,
        size: int | None = None, sport: int | None = None,
    ) -> None:
        """`size`: the bytes an ICMP or UDP probe carries (as `ping -s`), sent with DF set
        so that a link too narrow for it drops it or answers "fragmentation needed".
        `sport`: the source port a TCP or UDP probe leaves from (bound before it is sent:
        a port in use is a TrafficError); else one chosen here (TCP) or by the kernel."""
        if proto not in PROTOCOLS:
            raise TrafficError(f"protocol is one of {', '.join(PROTOCOLS)}, not {proto!r}")
        if proto != "icmp" and not (port and 0 < port < 65536):
            raise TrafficError(f"a {proto} probe needs a port 1..65535, not {port!r}")
        if size is not None and (proto == "tcp" or not _NONCE_ROOM <= size <= 65000):
            raise TrafficError(f"a probe's size is for icmp and udp, {_NONCE_ROOM}..65000 bytes")
        if sport is not None and (proto == "icmp" or not 0 < sport < 65536):
            raise TrafficError(f"a source port is for tcp and udp, 1..65535, not {sport!r}")
        self.proto, self.dst, self.port, self.size = proto, dst, port, size
        self.family = family_of(dst)
        self.v6 = self.family == socket.AF_INET6
        self.nonce = new_nonce()
        self.ident = random.randrange(1, 0xFFFF)  # the echo id of an ICMP probe
        self.chosen = sport
        self.sport: int | None = None
        self.src: str | None = None
        self.report: SocketReport | None = None
        with netns.entered(ns_fd):
            self.sock = self._open()

    def _open(self) -> socket.socket:
        kind = {"icmp": socket.SOCK_RAW, "tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}
        number = {"icmp": socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP}
        sock = socket.socket(
            self.family, kind[self.proto] | socket.SOCK_CLOEXEC, number.get(self.proto, 0)
        )
        level, option = (
            (socket.IPPROTO_IPV6, _IPV6_RECVERR) if self.v6 else (socket.IPPROTO_IP, _IP_RECVERR)
        )
        sock.setsockopt(level, option, 1)
        if self.size is not None:  # DF set, and no fragmenting at the sender either
            sock.setsockopt(*_PMTU_OPTIONS[self.v6])
        sock.setblocking(False)
        if self.proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if self.chosen is not None:
            self._bind(sock, self.chosen)
        elif self.proto == "tcp":
            self._bind_chosen_port(sock)
        return sock

    def _bind(self, sock: socket.socket, port: int) -> None:
        try:
            sock.bind(("::" if self.v6 else "0.0.0.0", port))
        except OSError as exc:
            sock.close()
            raise TrafficError(
                f"cannot send a {self.proto} probe from port {port}: {exc.strerror}"
            ) from exc
        self.sport = port

    def _bind_chosen_port(self, sock: socket.socket) -> None:
        for _ in range(32):
            port = random.randint(*_TCP_PORTS)
            try:
                sock.bind(("::" if self.v6 else "0.0.0.0", port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise TrafficError(f"cannot bind a tcp probe: {exc.strerror}") from exc
                continue
            self.sport = port
            return
        raise TrafficError("no free source port for a tcp probe")

    def fileno(self) -> int:
        """The socket's descriptor, to wait on."""
        return self.sock.fileno()

    def payload(self) -> bytes:
        """What a UDP or ICMP probe carries: the nonce, then padding (to `size`)."""
        return self._body(self.nonce)

    def _body(self, nonce: bytes) -> bytes:
        room = (self.size - len(nonce)) if self.size is not None else _PAYLOAD_PAD
        return nonce + bytes(room)

    def send(self) -> SocketReport | None:
        """Send the probe; a report at once when the sender's own kernel refused it."""
        target = (self.dst, self.port or 0)
        try:
            if self.proto == "icmp":
                self.sock.sendto(self._echo(self.nonce, self.ident), target)
            elif self.proto == "udp":
                self.sock.connect(target)
                self.sock.send(self.payload())
            else:
                code = self.sock.connect_ex(target)
                if code not in (0, errno.EINPROGRESS):
                    raise OSError(code, os.strerror(code))
        except OSError as exc:
            self.report = self._failed(exc.errno or 0, at_send=True)
            return self.report
        self._learn_source()
        return None

    def _learn_source(self) -> None:
        try:
            name = self.sock.getsockname()
        except OSError:
            return
        if self.proto != "icmp":
            self.src, self.sport = name[0], name[1]

    def _echo(self, nonce: bytes, ident: int, seq: int = 1) -> bytes:
        """An echo request; ICMPv6's checksum is the kernel's to fill in."""
        body = self._body(nonce)
        head = struct.pack("!BBHHH", 128 if self.v6 else 8, 0, 0, ident, seq)
        if self.v6:
            return head + body
        return struct.pack("!BBHHH", 8, 0, checksum(head + body), ident, seq) + body

    def echo_barrier(self, dst: str) -> bytes:
        """Send an echo request to `dst` from this ICMP socket; its nonce is returned."""
        nonce = new_nonce()
        try:
            self.sock.sendto(self._echo(nonce, self.ident, seq=2), (dst, 0))
        except OSError as exc:
            raise TrafficError(f"cannot send a barrier echo to {dst}: {exc.strerror}") from exc
        return nonce

    def poll(self) -> SocketReport | None:
        """What the socket says now (None: nothing yet); never blocks."""
        if self.report is not None:
            return self.report
        if self.proto == "tcp":
            self.report = self._tcp_result()
        elif self.proto == "udp":
            self.report = self._udp_result()
        else:
            self.report = self._icmp_result()
        return self.report

    def _tcp_result(self) -> SocketReport | None:
        ready = select.select([], [self.sock], [], 0)[1]
        if not ready:
            return None
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == 0:
            return SocketReport("answered")
        return self._failed(code)

    def _udp_result(self) -> SocketReport | None:
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return None
        except OSError as exc:
            return self._failed(exc.errno or 0)
        return SocketReport("answered") if data is not None else None

    def _icmp_result(self) -> SocketReport | None:
        """An echo reply or an ICMP error quoting the probe, among every ICMP message the
        raw socket gets (it sees all of the namespace's)."""
        while True:
            try:
                data, (peer, *_rest) = self.sock.recvfrom(1 << 16)
            except BlockingIOError:
                return self._errqueue()
            except OSError as exc:  # an error IP_RECVERR queued (the ICMP message explains it)
                return self._failed(exc.errno or 0)
            body = data if self.v6 else data[(data[0] & 0x0F) * 4 :]
            if len(body) < 8 or find_nonce(body) != self.nonce:
                continue
            kind, code = body[0], body[1]
            if kind == (129 if self.v6 else 0):
                return SocketReport("answered")
            if kind not in ((128,) if self.v6 else (8,)):
                return _icmp_report(self.v6, kind, code, peer)

    def _failed(self, code: int, *, at_send: bool = False) -> SocketReport:
        icmp = self._errqueue()
        kind = "refused" if code == errno.ECONNREFUSED else "error"
        if icmp is not None:
            return SocketReport(kind, _errname(code), icmp.icmp, icmp.offender, at_send)
        return SocketReport(kind, _errname(code), at_send=at_send)

    def _errqueue(self) -> SocketReport | None:
        """The ICMP error IP_RECVERR queued for this socket, if any."""
        try:
            _data, ancdata, _flags, _addr = self.sock.recvmsg(1 << 16, 512, socket.MSG_ERRQUEUE)
        except (BlockingIOError, OSError):
            return None
        for level, kind, payload in ancdata:
            if (level, kind) in (
                (socket.IPPROTO_IP, _IP_RECVERR),
                (socket.IPPROTO_IPV6, _IPV6_RECVERR),
            ):
                code, origin, itype, icode, _pad, _info, _d = _EXTENDED_ERR.unpack_from(payload)
                if origin not in (_SO_EE_ORIGIN_ICMP, _SO_EE_ORIGIN_ICMP6):
                    return SocketReport("error", _errname(code))
                offender = _offender(payload[_EXTENDED_ERR.size :])
                return SocketReport(_error_kind(code), _errname(code), (itype, icode), offender)
        return None

    def close(self) -> None:
        """Close the socket (a TCP one with a RST, so the listener is not kept waiting)."""
        self.sock.close()


def _error_kind(code: int) -> str:
    return "refused" if code == errno.ECONNREFUSED else "error"


def _icmp_report(v6: bool, kind: int, code: int, peer: str) -> SocketReport:
    """An ICMP error read as a raw message, as IP_RECVERR would name it."""
    if v6:
        name = {1: "EHOSTUNREACH", 3: "EHOSTUNREACH"}.get(kind, "EPROTO")
        refused = kind == 1 and code == 4
        netunreach = kind == 1 and code == 0
    else:
        name = {3: "EHOSTUNREACH", 11: "EHOSTUNREACH"}.get(kind, "EPROTO")
        refused = kind == 3 and code == 3
        netunreach = kind == 3 and code == 0
    if refused:
        name = "ECONNREFUSED"
    elif netunreach:
        name = "ENETUNREACH"
    return SocketReport("refused" if refused else "error", name, (kind, code), peer)


def _offender(raw: bytes) -> str | None:
    if len(raw) < 8:
        return None
    (family,) = struct.unpack_from("=H", raw)
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if family == socket.AF_INET6 and len(raw) >= 24:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return None

