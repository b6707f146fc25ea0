"""A real listening socket inside a test namespace: `listening(topo, host, "udp", 1405)`.

Run as a program (``python listener.py PROTO PORT [ADDRESS]``) it binds, prints "ready"
once the socket exists (the test goes on at that evidence, not after a sleep), then
echoes every UDP datagram back to its sender, or accepts and closes TCP connections.
With no ADDRESS it listens on both families (IPv6's wildcard, v4-mapped allowed). The
program imports only the standard library: it runs with `python -S`.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netprobe.topology import Topology


@contextlib.contextmanager
def listening(
    topo: Topology, host: str, proto: str, port: int, address: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A `proto` listener on `port` (of `address`, else every address) in `host`, ready
    when entered and stopped when left."""
    argv = [sys.executable, "-S", __file__, proto, str(port)] + ([address] if address else [])
    proc = topo.spawn(host, argv, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        said = proc.stdout.readline().strip()
        if said != b"ready":
            raise RuntimeError(f"{proto} listener on {host}:{port} did not start: {said!r}")
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _bound(proto: str, port: int, address: str | None) -> socket.socket:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    family = socket.AF_INET if address and ":" not in address else socket.AF_INET6
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6 and not address:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((address or "::", port))
    if kind == socket.SOCK_STREAM:
        sock.listen(16)
    return sock


def _serve(sock: socket.socket) -> None:
    while True:
        if sock.type == socket.SOCK_STREAM:
            sock.accept()[0].close()
        else:
            data, peer = sock.recvfrom(1 << 16)
            sock.sendto(data, peer)


if __name__ == "__main__":
    listener = _bound(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
    print("ready", flush=True)
    _serve(listener)
