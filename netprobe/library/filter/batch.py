"""Many probes decided in one burst: every frame sent at once, each path closed by a
barrier, every probe decided from what arrived.

A probe is a crafted frame sent into a port (or something sent from a real socket of a
host), and where it must appear: a host's stack (raw IP sockets in its namespace get a
copy of every packet of their protocol delivered locally, after the input hook) or a
port's capture, of what the port receives or of what it sends. Probes of one path share
a barrier, sent behind all of them into the same port: a frame known to get through, or
one that netfilter never sees (a frame of a local ethertype, seen where it enters the
filtering host). The sending thread is pinned to one CPU for the burst, so every frame
goes through the same backlog queue in the order sent, and a frame is processed to the
end (delivered, forwarded or dropped) before the next one is: once a path's barrier is
seen, whatever of its probes got through is queued already.

Decided soundly: a probe that arrived is a positive; a negative only when its path's
barrier arrived, and nothing was lost: the capture sockets' PACKET_STATISTICS and the raw
sockets' drop counters must read 0 (their buffers are large), or every negative of the
batch is undecided, never a false drop.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from netprobe.topology import Topology
from netprobe.topology._kernel import netns
from netprobe.traffic import Capture, Port, find_nonce, ports

from .observe import IPPROTO, RawSocket

__all__ = ["Barrier", "Outcome", "Point", "Probe", "flow_key", "pinned", "run_batch"]

_BUFFER = 256 << 20  # ~1 KiB charged per queued packet: room for 200,000


@dataclass(frozen=True)
class Point:
    """Where a frame must appear: kind "stack" (the host's stack, `family`, `proto`),
    "in" (received at port HOST:IF) or "out" (sent from it)."""

    kind: str
    where: str  # HOST for a stack, else HOST:IF
    family: int = 0
    proto: str = ""


@dataclass(frozen=True)
class Probe:
    """One probe: `frame` sent into `port`, or `send` called (a host's socket); it is
    known by `ident` (its nonce, or the flow key `flow_key` computes) at `observe`."""

    path: Hashable
    ident: bytes
    observe: Point
    port: str = ""
    frame: bytes | None = None
    send: Callable[[], None] | None = None


@dataclass(frozen=True)
class Barrier:
    """Sent into `port` behind every probe of a path; it must appear at `observe`."""

    port: str
    frame: bytes
    nonce: bytes
    observe: Point


@dataclass(frozen=True)
class Outcome:
    """What the batch found for one probe: arrived True/False, or None with why; `frame`:
    the first copy that arrived (a port's frame, or a stack's packet)."""

    arrived: bool | None
    how: str
    frame: bytes | None = None


def flow_key(proto: int, sport: int, dport: int) -> bytes:
    """The identity of a probe that carries no nonce (a SYN from a host's socket)."""
    return struct.pack("!BHH", proto, sport, dport)


def _flow_of(frame: bytes) -> bytes | None:
    """The flow key of an Ethernet frame (IPv4 or IPv6 without extension headers)."""
    if len(frame) < 34:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == 0x0800:
        proto, at = frame[23], 14 + (frame[14] & 0x0F) * 4
    elif ethertype == 0x86DD:
        proto, at = frame[20], 54
    else:
        return None
    if len(frame) < at + 4:
        return None
    return flow_key(proto, *struct.unpack_from("!HH", frame, at))


class _Stack(RawSocket):
    """A raw IP socket in a host's namespace, with a large buffer and its drop count."""

    def __init__(self, topo: Topology, point: Point) -> None:
        self.point = point
        family = socket.AF_INET if point.family == 4 else socket.AF_INET6
        proto = IPPROTO[point.proto]
        if point.proto == "icmp" and point.family == 6:
            proto = socket.IPPROTO_ICMPV6
        self.fd = topo.fd_of(point.where)
        with netns.entered(self.fd):
            super().__init__(socket.socket(family, socket.SOCK_RAW, proto))
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, _BUFFER)  # SO_RCVBUFFORCE
        except PermissionError:  # in a user namespace: as large as rmem_max allows
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
        self.sock.setblocking(False)

    def drops(self) -> int:
        """The socket's drop counter (the last column of /proc/net/raw and raw6)."""
        inode = str(os.fstat(self.sock.fileno()).st_ino)
        name = "raw" if self.point.family == 4 else "raw6"
        with netns.entered(self.fd), open(f"/proc/thread-self/net/{name}") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if fields[-4] == inode:
                    return int(fields[-1])
        return 0

    def close(self) -> None:
        self.sock.close()


class _Port:
    """A capture of what a port receives (or sends), read as frames."""

    def __init__(self, topo: Topology, point: Point) -> None:
        port = Port.parse(point.where)
        self.out = point.kind == "out"
        self.capture = Capture(point.where, topo.fd_of(port.host),
                               topo.ifname(port.host, port.ifname), outgoing=self.out,
                               buffer=_BUFFER)

    def fileno(self) -> int:
        return self.capture.fileno()

    def read(self) -> list[bytes]:
        return [f.data for f in self.capture.read() if f.outgoing == self.out]

    def drops(self) -> int:
        return self.capture.stats().drops

    def close(self) -> None:
        self.capture.close()


def run_batch(topo: Topology, probes: Sequence[Probe], barriers: dict[Hashable, Barrier],
              timeout: float = 1.0) -> list[Outcome]:
    """Send every probe, then every path's barrier, in one burst; decide each probe."""
    points = {p.observe for p in probes} | {b.observe for b in barriers.values()}
    sources = {point: _open(topo, point) for point in points}
    try:
        _burst(topo, probes, barriers)
        seen, barriers_seen = _collect(sources, probes, barriers, timeout)
        lost = sum(source.drops() for source in sources.values())
    finally:
        for source in sources.values():
            source.close()
    return [_decide(seen.get(i), p.path in barriers, p.path in barriers_seen, lost)
            for i, p in enumerate(probes)]


@contextmanager
def pinned() -> Iterator[None]:
    """Send from one CPU: what is sent within shares one backlog queue, in the order sent."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _open(topo: Topology, point: Point) -> _Stack | _Port:
    return _Stack(topo, point) if point.kind == "stack" else _Port(topo, point)


def _burst(topo: Topology, probes: Sequence[Probe], barriers: dict[Hashable, Barrier]) -> None:
    """Every probe, then every barrier, from one CPU (one backlog queue: sent order kept)."""
    senders = ports(topo)
    with pinned():
        run: list[bytes] = []
        port = ""
        for probe in probes:  # consecutive frames into one port go in one call
            if probe.frame is None or probe.port != port:
                if run:
                    senders.sender(port).send_many(run)
                run, port = [], probe.port
            if probe.send is not None:
                probe.send()
            elif probe.frame is not None:
                run.append(probe.frame)
        if run:
            senders.sender(port).send_many(run)
        for barrier in barriers.values():
            senders.sender(barrier.port).send(barrier.frame)


def _collect(sources: dict[Point, _Stack | _Port], probes: Sequence[Probe],
             barriers: dict[Hashable, Barrier], timeout: float
             ) -> tuple[dict[int, bytes], set[Hashable]]:
    """Read every source until every barrier arrived (then once more) or `timeout`."""
    wanted = {(p.observe, p.ident): i for i, p in enumerate(probes)}
    flows = {p.observe for p in probes if p.frame is None}
    marks = {(b.observe, b.nonce): path for path, b in barriers.items()}
    seen: dict[int, bytes] = {}
    barriers_seen: set[Hashable] = set()
    deadline, last = time.perf_counter() + timeout, False
    while True:
        for point, source in sources.items():
            for data in source.read():
                nonce = find_nonce(data) or b""
                if (point, nonce) in marks:
                    barriers_seen.add(marks[(point, nonce)])
                    continue
                index = wanted.get((point, nonce))
                if index is None and point in flows:
                    index = wanted.get((point, _flow_of(data) or b""))
                if index is not None:
                    seen.setdefault(index, data)
        if last or len(seen) == len(probes):
            return seen, barriers_seen
        last = bool(barriers) and len(barriers_seen) == len(barriers)  # read once more
        left = deadline - time.perf_counter()
        if left <= 0:
            return seen, barriers_seen
        if not last:
            select.select(list(sources.values()), [], [], min(left, 0.02))


def _decide(arrived: bytes | None, has_barrier: bool, barrier: bool, lost: int) -> Outcome:
    if arrived is not None:
        return Outcome(True, "it arrived", arrived)
    if lost:
        return Outcome(None, f"{lost} frames were lost by the capture (PACKET_STATISTICS) "
                             "or raw sockets: absence is not proven")
    if not has_barrier:
        return Outcome(None, "no barrier on its path: absence is not proven")
    if not barrier:
        return Outcome(None, "the barrier of its path never arrived: absence is not proven")
    return Outcome(False, "decided by a barrier: a frame sent behind it arrived")
