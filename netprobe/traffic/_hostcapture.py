"""One capture socket per namespace, seeing every interface of it, both directions.

Following a probe along a path means watching every interface of every namespace on the
way. One AF_PACKET socket bound to no interface sees them all, received and sent, and
the address of each frame names the interface (by index) and its direction: five
namespaces cost five sockets, not one per interface. The loopback is left out (a probe
of another host never crosses it).
"""

from __future__ import annotations

import errno
import socket
import struct

from ..errors import TrafficError
from ..topology import Topology
from ..topology._kernel import netns
from ._capture import (
    _CMSG_SPACE,
    _ETH_P_ALL,
    _PACKET_AUXDATA,
    _PACKET_STATISTICS,
    _SO_TIMESTAMPNS,
    DEFAULT_BUFFER,
    PACKET_OUTGOING,
    SOL_PACKET,
    Captured,
    CaptureStats,
    set_rcvbuf,
    unwrap,
)

_ARPHRD_LOOPBACK = 772


class HostCapture:
    """Every frame of one host's namespace, named "HOST:IFNAME", received or sent."""

    def __init__(self, topo: Topology, host: str, *, buffer: int = DEFAULT_BUFFER) -> None:
        self.host = host
        self.port = host  # what wait_readable and evidence name it by
        with netns.entered(topo.fd_of(host)):
            self.sock = socket.socket(
                socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.htons(_ETH_P_ALL)
            )
        try:
            self.sock.setsockopt(SOL_PACKET, _PACKET_AUXDATA, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            set_rcvbuf(self.sock, buffer)
        except OSError as exc:
            self.sock.close()
            raise TrafficError(f"cannot capture in {host}: {exc.strerror}") from exc
        self.sock.setblocking(False)
        self.packets = self.drops = 0
        self.drain()

    def fileno(self) -> int:
        """The socket's descriptor, to wait on."""
        return self.sock.fileno()

    def drain(self) -> None:
        """Forget what is queued and restart the counters."""
        while True:
            try:
                self.sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                break
        self._read_stats()
        self.packets = self.drops = 0

    def _read_stats(self) -> None:
        raw = self.sock.getsockopt(SOL_PACKET, _PACKET_STATISTICS, 8)  # reset on every read
        packets, drops = struct.unpack("=II", raw)
        self.packets += packets
        self.drops += drops

    def stats(self) -> CaptureStats:
        """Frames and kernel drops since the last drain."""
        self._read_stats()
        return CaptureStats(self.packets, self.drops)

    def read(self, limit: int = 1 << 16) -> list[Captured]:
        """Every frame queued now, in arrival order (never blocks); the loopback's are skipped."""
        out = []
        for _ in range(limit):
            try:
                data, ancdata, _flags, addr = self.sock.recvmsg(1 << 16, _CMSG_SPACE)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENETDOWN:
                    raise
                continue
            if addr[3] == _ARPHRD_LOOPBACK:
                continue
            out.append(self._frame(data, ancdata, addr))
        return out

    def _frame(
        self, data: bytes, ancdata: list[tuple[int, int, bytes]], addr: tuple[object, ...]
    ) -> Captured:
        data, stamp = unwrap(data, ancdata)
        # Python names the interface by asking this socket's namespace (SIOCGIFNAME)
        name = addr[0] if isinstance(addr[0], str) and addr[0] else "?"
        return Captured(f"{self.host}:{name}", data, stamp, addr[2] == PACKET_OUTGOING)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
