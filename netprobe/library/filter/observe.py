"""How the filter check sees a probe arrive: inside the filtered host's stack (INPUT),
or on a neighbour's wire (OUTPUT, from a real socket of the host); and how absence is
proven: by a barrier frame sent behind the probe, or a bounded quiet period.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from netprobe.topology import Topology
from netprobe.topology._kernel import netns
from netprobe.traffic import find_nonce

from .net import Plan

__all__ = ["QUIET", "TIMEOUT", "Stack", "send_from_host", "watch"]

TIMEOUT = 0.5  # for a probe (or a barrier) that should arrive: on veth it takes < 1 ms
QUIET = 0.1  # a drop with no barrier to prove it: how long nothing must arrive


class Source(Protocol):
    """Anything frames or packets can be read from, watched by `watch`."""

    def fileno(self) -> int:
        """The descriptor to wait on."""
    def read(self) -> Sequence[Any]:
        """What is queued (never blocks)."""


class _Raw:
    """A non-blocking raw IP socket, read like a capture."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(65535))
            except BlockingIOError:
                return out

    def drain(self) -> None:
        self.read()


class Stack:
    """Raw IP sockets in the filtered host. Each gets a copy of every TCP (or UDP) packet
    the host's stack receives, taken after the input hook: what the firewall let in."""

    def __init__(self, topo: Topology, host: str) -> None:
        self.topo, self.host = topo, host
        self._socks: dict[tuple[int, str], _Raw] = {}

    def source(self, family: int, proto: str) -> _Raw:
        """The raw socket for `proto` (tcp or udp) in IPv`family`, in the host's namespace."""
        if (family, proto) not in self._socks:
            with netns.entered(self.topo.fd_of(self.host)):
                sock = socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6,
                                     socket.SOCK_RAW,
                                     socket.IPPROTO_TCP if proto == "tcp" else socket.IPPROTO_UDP)
            sock.setblocking(False)
            self._socks[(family, proto)] = _Raw(sock)
        return self._socks[(family, proto)]

    def close(self) -> None:
        """Close every socket opened."""
        for raw in self._socks.values():
            raw.sock.close()


def watch(sources: Sequence[Source], is_probe: Callable[[bytes], bool],
          barrier: bytes | None, timeout: float) -> tuple[bool | None, str]:
    """Did the probe arrive? True, False (proven by the barrier's nonce arriving, or by
    `timeout` of quiet when there is no barrier), or None when the barrier never came."""
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
            return False, (f"nothing arrived in {timeout * 1000:.0f} ms; no probe on this "
                           "path got through to serve as a barrier")
        select.select(sources, [], [], min(left, 0.05))


def send_from_host(topo: Topology, plan: Plan) -> str:
    """Have the host's kernel send the probe from a real socket in its namespace, so it
    traverses the OUTPUT hook; return the socket's complaint, if any (EPERM: netfilter)."""
    family = socket.AF_INET if plan.family == 4 else socket.AF_INET6
    kind = socket.SOCK_STREAM if plan.line.proto == "tcp" else socket.SOCK_DGRAM
    with netns.entered(topo.fd_of(plan.sender)):
        sock = socket.socket(family, kind)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((plan.src, plan.sport))
        sock.setblocking(False)
        try:
            if kind == socket.SOCK_STREAM:  # the SYN leaves within connect(); close aborts it
                code = sock.connect_ex((plan.dst, plan.line.port))
                return "" if code in (0, errno.EINPROGRESS) else errno.errorcode[code]
            sock.sendto(b"netprobe filter probe", (plan.dst, plan.line.port))
        except OSError as exc:
            return f"{errno.errorcode.get(exc.errno or 0, '')} {exc.strerror}".strip()
    return ""
