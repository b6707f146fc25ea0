"""A real listening socket inside a test namespace: `listening(topo, host, "udp", 1405)`.

The socket is opened inside the host's namespace (a socket keeps the namespace it was
made in) and served by a thread of the test process: it echoes every UDP datagram back
to its sender, or accepts and closes TCP connections. It exists before `listening`
returns, so the test goes on at that evidence, not after a sleep; starting a program for
it would cost tens of milliseconds a listener. With no address it listens on both
families (IPv6's wildcard, v4-mapped allowed).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from netprobe.topology._kernel import netns

if TYPE_CHECKING:
    from netprobe.topology import Topology

_POLL = 0.05  # s: how soon a served socket notices it is to stop


@contextlib.contextmanager
def listening(
    topo: Topology, host: str, proto: str, port: int, address: str | None = None
) -> Iterator[socket.socket]:
    """A `proto` listener on `port` (of `address`, else every address) in `host`, bound
    when entered and closed when left."""
    with netns.entered(topo.fd_of(host)):
        sock = _bound(proto, port, address)
    stop = threading.Event()
    server = threading.Thread(target=_serve, args=(sock, stop), daemon=True)
    server.start()
    try:
        yield sock
    finally:
        stop.set()
        server.join()
        sock.close()


def _bound(proto: str, port: int, address: str | None) -> socket.socket:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    family = socket.AF_INET if address and ":" not in address else socket.AF_INET6
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and not address:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((address or "::", port))
        if kind == socket.SOCK_STREAM:
            sock.listen(16)
    except OSError:
        sock.close()
        raise
    sock.settimeout(_POLL)
    return sock


def _serve(sock: socket.socket, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            if sock.type == socket.SOCK_STREAM:
                sock.accept()[0].close()
            else:
                data, peer = sock.recvfrom(1 << 16)
                sock.sendto(data, peer)
        except TimeoutError:
            continue
