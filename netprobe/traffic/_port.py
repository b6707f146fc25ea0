"""Ports: where frames go in and where they are seen, with sockets cached per topology.

A port is named "HOST:IFNAME". Sending on it makes the host transmit the frame on that
interface; capturing on it shows what the interface receives. "HOST:TAP@vm" is the
other side of a TAP device, the VM's NIC: writing to the descriptor is the VM sending,
reading it is what the VM receives.

Opening an AF_PACKET socket costs 14-25 ms, so every socket is opened once per topology
and closed at its teardown.
"""

from __future__ import annotations

import errno
import os
import socket
import time
import weakref
from collections.abc import Callable, Iterable, Sequence

from ..errors import SpecError, TrafficError
from ..topology import Topology
from ..topology._kernel import netns
from ..topology._model.port import Port
from ._capture import Capture, Captured, CaptureStats, Source, compile_filter


def parse_port(port: str | Port) -> tuple[str, str, bool]:
    """ "host:if" → (host, if, False); "host:tap@vm" → (host, tap, True). (Older form of
    `Port.parse`; bad text is a TrafficError here.)"""
    try:
        found = Port.parse(port)
    except SpecError as exc:
        raise TrafficError(str(exc)) from None
    return found.host, found.ifname, found.vm


class Sender:
    """A raw socket bound to one interface for transmitting prebuilt frames."""

    def __init__(self, port: str, ns_fd: int | None, ifname: str) -> None:
        self.port = port
        with netns.entered(ns_fd):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        try:
            self.sock.bind((ifname, 0))  # protocol 0: this socket receives nothing
        except OSError as exc:
            self.sock.close()
            raise TrafficError(f"cannot send on {port}: {exc.strerror}") from exc

    def send(self, frame: bytes) -> None:
        """Transmit one frame."""
        self.send_many((frame,))

    def send_many(self, frames: Iterable[bytes]) -> int:
        """Transmit each frame; return how many the kernel took. A frame the path drops at
        once (ENOBUFS: say, longer than the veth peer's MTU) counts as sent: where it went
        is for the expectation to find out. An interface that cannot send raises."""
        send, count = self.sock.send, 0
        for frame in frames:
            try:
                send(frame)
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise TrafficError(f"cannot send into {self.port}: {exc.strerror}") from exc
            count += 1
        return count

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


class TapSide:
    """The VM's side of a TAP device: send by writing the descriptor, capture by reading it."""

    def __init__(self, port: str, fd: int, dropped: Callable[[], int] | None = None) -> None:
        self.port = port
        self.fd = fd
        os.set_blocking(fd, False)
        self.packets = 0
        self._dropped = dropped  # the TAP's transmit drops: frames the "VM" never got
        self._dropped_base = dropped() if dropped else 0

    def send(self, frame: bytes) -> None:
        """Write one frame into the TAP, as the VM would send it."""
        os.write(self.fd, frame)

    def send_many(self, frames: Iterable[bytes]) -> int:
        """Write each frame into the TAP; returns how many."""
        count = 0
        for frame in frames:
            os.write(self.fd, frame)
            count += 1
        return count

    # the capture interface, so a TAP's VM side can be watched like any port
    def fileno(self) -> int:
        """The TAP's descriptor, to wait on."""
        return self.fd

    def drain(self) -> None:
        """Forget what is queued and restart the counters."""
        self.read()
        self.packets = 0
        self._dropped_base = self._dropped() if self._dropped else 0

    def read(self, limit: int = 1 << 20) -> list[Captured]:
        """Up to `limit` frames the host sent toward the VM (never blocks)."""
        out = []
        for _ in range(limit):
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            out.append(Captured(self.port, data, time.time()))
        self.packets += len(out)
        return out

    def stats(self) -> CaptureStats:
        """Frames read and frames the TAP dropped since the last drain."""
        dropped = self._dropped() - self._dropped_base if self._dropped else 0
        return CaptureStats(self.packets, dropped)

    def close(self) -> None:
        """Nothing: the topology owns the descriptor."""
        pass  # the topology owns the descriptor


class Ports:
    """The senders and captures of one topology, opened on first use and cached."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self._senders: dict[str, Sender | TapSide] = {}
        self._captures: dict[str, Source] = {}
        topo.add_cleanup(self.close)

    def _locate(self, port: str) -> tuple[int | None, str, int | None]:
        host, ifname, vm_side = parse_port(port)
        try:
            if vm_side:
                return None, ifname, self.topo.tap(host, ifname)
            return self.topo.fd_of(host), self.topo.ifname(host, ifname), None
        except KeyError as exc:
            raise TrafficError(f"unknown port {port}: {exc.args[0]}") from None

    def sender(self, port: str | Port) -> Sender | TapSide:
        """The sender of `port` (a Port or its text)."""
        port = str(port)
        if port not in self._senders:
            ns_fd, ifname, tap_fd = self._locate(port)
            self._senders[port] = (
                TapSide(port, tap_fd) if tap_fd is not None else Sender(port, ns_fd, ifname)
            )
        return self._senders[port]

    def capture(self, port: str | Port, *, filter: str | None = None) -> Source:
        """The capture of `port` (a Port or its text); with a tcpdump `filter` expression,
        a separate one that keeps only matching frames (the kernel filters them, before
        they are queued)."""
        port = str(port)
        key = port if filter is None else f"{port} [{filter}]"
        if key not in self._captures:
            ns_fd, ifname, tap_fd = self._locate(port)
            if tap_fd is not None:
                if filter is not None:
                    raise TrafficError(f"{port} is read from a TAP descriptor: no filter")
                host, tap, _ = parse_port(port)
                nl, kname = self.topo.hosts[host].nl, self.topo.ifname(host, tap)
                self._captures[key] = TapSide(port, tap_fd, lambda: nl.tx_dropped(kname))
            else:
                host = parse_port(port)[0]
                bpf = (
                    compile_filter(filter, self.topo.namespace(host), ifname)
                    if filter is not None
                    else None
                )
                self._captures[key] = Capture(port, ns_fd, ifname, bpf=bpf)
        return self._captures[key]

    def captures(self, names: Sequence[str | Port]) -> list[Source]:
        """A capture on each port of `names`."""
        return [self.capture(p) for p in names]

    def close(self) -> None:
        """Close every sender and capture, and forget this topology's Ports."""
        for item in [*self._senders.values(), *self._captures.values()]:
            item.close()
        self._senders.clear()
        self._captures.clear()
        _cache.pop(self.topo, None)


_cache: weakref.WeakKeyDictionary[Topology, Ports] = weakref.WeakKeyDictionary()


def ports(topo: Topology) -> Ports:
    """The port cache of `topo` (one per topology)."""
    if topo not in _cache:
        _cache[topo] = Ports(topo)
    return _cache[topo]
