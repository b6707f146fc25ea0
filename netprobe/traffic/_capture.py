"""In-process capture with AF_PACKET, one socket per port, kept open and reused.

The socket is created with protocol 0 (it receives nothing yet), gets its BPF filter,
is bound, then drained: frames queued before the filter was in force never leak through.
A large receive buffer absorbs bursts (200,000 frames at ~400k/s lose nothing); the
kernel's PACKET_STATISTICS count what it dropped all the same, and any drop makes a
verdict INCONCLUSIVE. PACKET_AUXDATA returns the VLAN tag the kernel took out of the
frame (veth and bridges strip it into skb metadata), and it is put back.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ..errors import SetupError, TrafficError
from ..topology._kernel import netns

SOL_PACKET = 263
_PACKET_AUXDATA = 8
_PACKET_STATISTICS = 6
_PACKET_IGNORE_OUTGOING = 23
_SO_RCVBUFFORCE = 33
_SO_ATTACH_FILTER = 26
_SO_TIMESTAMPNS = 35
_ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
_TP_STATUS_VLAN_VALID = 0x10
_TP_STATUS_VLAN_TPID_VALID = 0x40
_AUXDATA = struct.Struct("=IIIHHHH")
_TIMESPEC = struct.Struct("=qq")
_CMSG_SPACE = socket.CMSG_SPACE(_AUXDATA.size) + socket.CMSG_SPACE(_TIMESPEC.size)
# The kernel charges each queued frame its in-memory size (~830 bytes for a 60-byte frame),
# so holding a 200,000-frame burst unread takes a 128 MiB limit; it costs nothing unused.
DEFAULT_BUFFER = 128 << 20


def set_rcvbuf(sock: socket.socket, size: int) -> None:
    """A receive buffer of `size` bytes, above net.core.rmem_max where privileged; in a
    user namespace (no CAP_NET_ADMIN over the initial one) as large as rmem_max allows."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


@dataclass(frozen=True)
class Captured:
    """One frame seen at a port: its bytes (VLAN tag restored), kernel time, direction."""

    port: str
    data: bytes
    time: float
    outgoing: bool = False


@dataclass(frozen=True)
class CaptureStats:
    """What a capture received and what the kernel dropped for want of buffer space."""

    packets: int
    drops: int


class Source(Protocol):
    """Anything frames can be read from: a capture socket, or a TAP seen from the VM."""

    port: str

    def fileno(self) -> int:
        """The descriptor to wait on for frames."""

    def drain(self) -> None:
        """Forget what is queued and restart the counters."""

    def read(self, limit: int = ...) -> list[Captured]:
        """Up to `limit` queued frames (never blocks)."""

    def stats(self) -> CaptureStats:
        """Frames received and dropped since the last drain."""

    def close(self) -> None:
        """Release what the source holds."""


class Capture:
    """A capture socket on one interface inside a namespace."""

    def __init__(
        self,
        port: str,
        ns_fd: int | None,
        ifname: str,
        *,
        bpf: list[tuple[int, int, int, int]] | None = None,
        outgoing: bool = False,
        buffer: int = DEFAULT_BUFFER,
    ) -> None:
        self.port = port
        with netns.entered(ns_fd):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        try:
            if bpf is not None:
                _attach(self.sock, bpf)
            self.sock.setsockopt(SOL_PACKET, _PACKET_AUXDATA, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            if not outgoing:  # what this port receives, not what it sends
                self.sock.setsockopt(SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
            set_rcvbuf(self.sock, buffer)
            with netns.entered(ns_fd):
                self.sock.bind((ifname, _ETH_P_ALL))
        except OSError as exc:
            self.sock.close()
            raise TrafficError(f"cannot capture on {port}: {exc.strerror}") from exc
        self.sock.setblocking(False)
        self.packets = self.drops = 0
        self.drain()

    def fileno(self) -> int:
        """The socket's descriptor, to wait on."""
        return self.sock.fileno()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def set_buffer(self, size: int) -> None:
        """Resize the receive buffer (bytes; the kernel doubles it for bookkeeping)."""
        set_rcvbuf(self.sock, size)

    def drain(self) -> None:
        """Forget what is queued and restart the loss counters: a clean slate for a probe."""
        while True:
            try:
                self.sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENETDOWN:  # a port that is down: nothing to drain
                    raise
                break
        self._read_stats()
        self.packets = self.drops = 0

    def _read_stats(self) -> None:
        raw = self.sock.getsockopt(SOL_PACKET, _PACKET_STATISTICS, 8)
        packets, drops = struct.unpack("=II", raw)  # the kernel resets them on every read
        self.packets += packets
        self.drops += drops

    def stats(self) -> CaptureStats:
        """Frames and kernel drops since the last drain."""
        self._read_stats()
        return CaptureStats(self.packets, self.drops)

    def read(self, limit: int = 1 << 20) -> list[Captured]:
        """Every frame queued now (without waiting), in arrival order."""
        out = []
        recvmsg = self.sock.recvmsg
        for _ in range(limit):
            try:
                data, ancdata, _flags, addr = recvmsg(1 << 16, _CMSG_SPACE)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENETDOWN:  # the interface went down: it sees nothing
                    raise
                break
            out.append(self._frame(data, ancdata, addr))
        return out

    def _frame(
        self, data: bytes, ancdata: list[tuple[int, int, bytes]], addr: tuple[object, ...]
    ) -> Captured:
        data, stamp = unwrap(data, ancdata)
        return Captured(self.port, data, stamp, addr[2] == PACKET_OUTGOING)


def unwrap(data: bytes, ancdata: list[tuple[int, int, bytes]]) -> tuple[bytes, float]:
    """A received frame's bytes with its VLAN tag put back (PACKET_AUXDATA), and the
    kernel's time of it (SO_TIMESTAMPNS; now, when it gave none)."""
    stamp = time.time()
    for level, kind, payload in ancdata:
        if level == SOL_PACKET and kind == _PACKET_AUXDATA:
            data = _restore_vlan(data, payload)
        elif level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
            sec, nsec = _TIMESPEC.unpack_from(payload)
            stamp = sec + nsec / 1e9
    return data, stamp


def _restore_vlan(data: bytes, aux: bytes) -> bytes:
    status, _len, _snap, _mac, _net, tci, tpid = _AUXDATA.unpack_from(aux)
    if not status & _TP_STATUS_VLAN_VALID:
        return data
    tpid = tpid if status & _TP_STATUS_VLAN_TPID_VALID and tpid else 0x8100
    return data[:12] + struct.pack("!HH", tpid, tci) + data[12:]


def _attach(sock: socket.socket, bpf: list[tuple[int, int, int, int]]) -> None:
    import ctypes

    program = b"".join(struct.pack("=HBBI", *insn) for insn in bpf)
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(bpf), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


_compiled: dict[str, list[tuple[int, int, int, int]]] = {}


def compile_filter(
    expression: str, namespace: str | None = None, ifname: str | None = None
) -> list[tuple[int, int, int, int]]:
    """A tcpdump filter expression as classic BPF, compiled by tcpdump (and cached).

    Given an interface, libpcap compiles for that live link, where the kernel has moved
    VLAN tags into metadata: "vlan 10" then tests the tag where it really is. Without
    one, it compiles for frames as they are on the wire (fine for pcap files).
    """
    key = f"{expression}@{'live' if ifname else 'wire'}"
    if key not in _compiled:
        argv = ["tcpdump", "-ddd", *(["-i", ifname] if ifname else ["-y", "EN10MB"]), expression]
        if namespace:
            argv = ["ip", "netns", "exec", namespace, *argv]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except FileNotFoundError:
            raise SetupError(
                "compiling a capture filter needs tcpdump", remedy="apt-get install tcpdump"
            ) from None
        if proc.returncode != 0:
            raise TrafficError(f"bad capture filter {expression!r}: {proc.stderr.strip()}")
        lines = proc.stdout.split("\n")
        _compiled[key] = [
            (int(c), int(jt), int(jf), int(k))
            for c, jt, jf, k in (line.split() for line in lines[1:] if line.strip())
        ]
    return _compiled[key]


def wait_readable(captures: Iterable[Source], timeout: float) -> list[Source]:
    """The captures with frames waiting, after at most `timeout` seconds."""
    by_fd = {c.fileno(): c for c in captures}
    if not by_fd:
        time.sleep(max(timeout, 0))
        return []
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    return [by_fd[fd] for fd, _ in poller.poll(max(timeout, 0) * 1000)]
