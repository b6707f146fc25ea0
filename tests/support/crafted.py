"""Helpers for tests that send crafted frames into a topology: the MAC of an interface as
the kernel has it, and a UDP socket opened inside a host (a listener that proves what
a host's stack delivered)."""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Iterator

from netprobe.topology import Topology
from netprobe.topology._kernel import netns


def mac_of(topo: Topology, host: str, ifname: str) -> str:
    """The MAC address of `host`'s `ifname`, read from the kernel."""
    for iface in topo.live(host, addresses=False).interfaces:
        if iface.name == ifname:
            return iface.mac
    raise LookupError(f"{host} has no interface {ifname}")


@contextlib.contextmanager
def udp_listener(
    topo: Topology, host: str, port: int, *, v6: bool = False
) -> Iterator[socket.socket]:
    """A UDP socket of `host` bound to `port` (every address), closed after."""
    family = socket.AF_INET6 if v6 else socket.AF_INET
    with netns.entered(topo.fd_of(host)):
        sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(("::" if v6 else "0.0.0.0", port))
        yield sock
    finally:
        sock.close()


def received(sock: socket.socket, deadline: float = 2.0) -> bytes | None:
    """The next datagram on `sock`; None if none arrives before `deadline` seconds (the
    stack delivers after the capture saw the frames: a bound wait, not a sleep)."""
    ready, _, _ = select.select([sock], [], [], deadline)
    return sock.recv(65535) if ready else None
