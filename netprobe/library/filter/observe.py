"""How the filter check sees a probe arrive: inside the filtered host's stack (INPUT),
or on a neighbour's wire (OUTPUT, from a real socket of the host); and how absence is
proven: by a barrier frame sent behind the probe (without one, absence is not proven).
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from netprobe.topology import Topology
from netprobe.topology._kernel import netns
from netprobe.traffic import checksum, decode, find_nonce, ports
from netprobe.traffic._craft import SLOT

from .frames import OPEN_SEQ, marker, message
from .net import Plan
from .policy import ANY_PROTO

__all__ = ["IPPROTO", "TIMEOUT", "RawSocket", "Stack", "open_flow", "send_from_host",
           "watch"]

IPPROTO = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "icmp": socket.IPPROTO_ICMP,
           "icmpv6": socket.IPPROTO_ICMPV6, "any": ANY_PROTO}  # a line's proto: its number

TIMEOUT = 0.5  # for a probe (or a barrier) that should arrive: on veth it takes < 1 ms


class Source(Protocol):
    """Anything frames or packets can be read from, watched by `watch`."""

    def fileno(self) -> int:
        """The descriptor to wait on."""
    def read(self) -> Sequence[Any]:
        """What is queued (never blocks)."""


class RawSocket:
    """A non-blocking raw IP socket, read like a capture."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        """The descriptor to wait on."""
        return self.sock.fileno()

    def read(self) -> list[bytes]:
        """The packets queued (never blocks)."""
        out = []
        while True:
            try:
                out.append(self.sock.recv(65535))
            except BlockingIOError:
                return out

    def drain(self) -> None:
        """Throw away what is queued."""
        self.read()


class Stack:
    """Raw IP sockets in the filtered host. Each gets a copy of every packet of its
    protocol (TCP, UDP, ICMP, ICMPv6, 253) the host's stack receives, taken after the
    input hook: what the firewall let in. The host's own answers (an echo reply, a
    neighbour advertisement) leave it and are not received; a probe is known by its nonce."""

    def __init__(self, topo: Topology, host: str) -> None:
        self.topo, self.host = topo, host
        self._socks: dict[tuple[int, str], RawSocket] = {}

    def source(self, family: int, proto: str) -> RawSocket:
        """The raw socket for `proto` (a policy line's) in IPv`family`, in the host's
        namespace."""
        if (family, proto) not in self._socks:
            with netns.entered(self.topo.fd_of(self.host)):
                sock = socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6,
                                     socket.SOCK_RAW, IPPROTO[proto])
            sock.setblocking(False)
            self._socks[(family, proto)] = RawSocket(sock)
        return self._socks[(family, proto)]

    def close(self) -> None:
        """Close every socket opened."""
        for raw in self._socks.values():
            raw.sock.close()


def watch(sources: Sequence[Source], is_probe: Callable[[bytes], bool],
          barrier: bytes | None, timeout: float) -> tuple[bool | None, str]:
    """Did the probe arrive? True, False (proven by the barrier's nonce arriving), or None
    when the barrier never came, or there is none and nothing came in `timeout`."""
    deadline = time.perf_counter() + timeout
    barrier_seen = False
    while True:
        frames = [getattr(f, "data", f) for s in sources for f in s.read()]
        if any(is_probe(frame) for frame in frames):
            return True, "it arrived"
        if barrier_seen:  # read once more after the barrier: its queue may differ
            return False, "decided by a barrier: a frame sent behind it arrived"
        barrier_seen = barrier is not None and any(find_nonce(f) == barrier for f in frames)
        left = deadline - time.perf_counter()
        if barrier_seen:
            continue
        if left <= 0:
            if barrier is not None:
                return None, "the barrier never arrived: absence is not proven"
            return None, (f"nothing arrived in {timeout * 1000:.0f} ms, and nothing could be "
                          "sent behind it on its path to prove it never will: absence is "
                          "not proven")
        select.select(sources, [], [], min(left, 0.05))


def send_from_host(topo: Topology, plan: Plan) -> str:
    """Have the host's kernel send the probe from a real socket in its namespace, so it
    traverses the OUTPUT hook; return the socket's complaint, if any (EPERM: netfilter).
    tcp: connect; udp: sendto; icmp, icmpv6, any: a raw socket of that protocol."""
    family = socket.AF_INET if plan.family == 4 else socket.AF_INET6
    proto = plan.line.proto
    kind = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}.get(proto, socket.SOCK_RAW)
    with netns.entered(topo.fd_of(plan.sender)):
        sock = socket.socket(family, kind, 0 if kind != socket.SOCK_RAW else IPPROTO[proto])
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((plan.src, plan.sport if kind != socket.SOCK_RAW else 0))
        sock.setblocking(False)
        try:
            if kind == socket.SOCK_STREAM:  # the SYN leaves within connect(); close aborts it
                code = sock.connect_ex((plan.dst, plan.line.port))
                return "" if code in (0, errno.EINPROGRESS) else errno.errorcode[code]
            sock.sendto(_payload(plan, sock), (plan.dst, plan.line.port))
        except OSError as exc:
            return f"{errno.errorcode.get(exc.errno or 0, '')} {exc.strerror}".strip()
    return ""


def _payload(plan: Plan, sock: socket.socket) -> bytes:
    """What a datagram or raw socket sends: the marker, after the ICMP header if any."""
    if plan.line.proto in ("udp", "any"):
        return marker(plan.sport)
    kind = plan.line.icmp_number(plan.family)
    if plan.family == 6 and kind in range(133, 138):  # neighbour discovery: hop limit 255
        for option in (socket.IPV6_UNICAST_HOPS, socket.IPV6_MULTICAST_HOPS):
            sock.setsockopt(socket.IPPROTO_IPV6, option, 255)
    data = bytes(message(plan.line, plan.family, plan.sport, plan.dst, plan.macs[0],
                         plan.src))
    at = data.find(SLOT)  # the nonce slot carries the marker instead
    data = data[:at] + marker(plan.sport) + data[at + len(SLOT):]
    if plan.family == 4:  # ICMPv6: the kernel computes the checksum; ICMP: ours
        data = data[:2] + b"\0\0" + data[4:]
        data = data[:2] + checksum(data).to_bytes(2, "big") + data[4:]
    return data


def open_flow(topo: Topology, plan: Plan, timeout: float) -> str:
    """State established: open the flow the other way, from the opener's own socket (the
    probe's destination), and wait until it has crossed to the probe's sender; return
    why not, or "". A TCP SYN goes from a raw socket (its sequence number known, for the
    probe's SYN-ACK) to a listener whose queue is full, so the far side stays silent:
    an RST would close the flow in conntrack before its reply is probed."""
    capture = ports(topo).capture(plan.port)
    capture.drain()
    line, family = plan.line, socket.AF_INET if plan.family == 4 else socket.AF_INET6
    with _silent(topo, plan) if line.proto == "tcp" else _nothing():
        with netns.entered(topo.fd_of(plan.opener)):
            sock = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW) \
                if line.proto == "tcp" else socket.socket(
                    family, socket.SOCK_DGRAM if line.proto == "udp" else socket.SOCK_RAW,
                    0 if line.proto == "udp" else IPPROTO[line.proto])
        with sock:
            try:
                sock.bind((plan.dst, plan.sport if line.proto == "udp" else 0))
                sock.sendto(_opening(plan), (plan.src, line.port if line.proto == "udp" else 0))
            except OSError as exc:
                return f"the opening packet could not be sent: {exc.strerror}"
        seen, _ = watch([capture], lambda data: _opens(plan, data), None, timeout)
    return "" if seen else (f"the flow could not be opened: {plan.opener}'s packet to "
                            f"{plan.src} never reached {plan.port}")


def _opening(plan: Plan) -> bytes:
    """The packet that opens the flow the probe answers (from the probe's destination)."""
    line = plan.line
    if line.proto == "udp":
        return marker(plan.sport)
    if line.proto == "tcp":
        from scapy.layers.inet import IP, TCP
        from scapy.layers.inet6 import IPv6

        l3 = (IP if plan.family == 4 else IPv6)(src=plan.dst, dst=plan.src)
        return bytes(l3 / TCP(sport=plan.sport, dport=line.port, flags="S", seq=OPEN_SEQ))
    from scapy.layers import inet, inet6

    echo = inet.ICMP(type=8, id=plan.sport & 0xFFFF, seq=1) if plan.family == 4 else \
        inet6.ICMPv6EchoRequest(id=plan.sport & 0xFFFF, seq=1)
    return bytes(echo / marker(plan.sport))


def _opens(plan: Plan, data: bytes) -> bool:
    if plan.line.proto == "tcp":
        fields = decode(data)
        return fields.get("l4.sport") == plan.sport and fields.get("l4.dport") == plan.line.port
    return marker(plan.sport) in data


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def _silent(topo: Topology, plan: Plan) -> Iterator[None]:
    """A listener on the probe's sender whose accept queue is full: it drops SYNs unanswered."""
    family = socket.AF_INET if plan.family == 4 else socket.AF_INET6
    with netns.entered(topo.fd_of(plan.sender)):
        listener, filler = socket.socket(family, socket.SOCK_STREAM), \
            socket.socket(family, socket.SOCK_STREAM)
    with listener, filler:
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((plan.src, plan.line.port))
            listener.listen(0)
            filler.settimeout(TIMEOUT)
            filler.connect((plan.src, plan.line.port))  # the one connection queue 0 holds
        except OSError:
            pass  # something listens there already: it may answer (and reset) the flow
        yield
