"""The pieces of the rootless check: TCP sockets opened inside a topology's namespaces
(a listener that counts what it accepts, a client that says how it ended), the user-mode
network programs (slirp4netns, pasta) started for a container's namespace, and the
state of the host side compared before and after."""

from __future__ import annotations

import errno
import itertools
import json
import os
import secrets
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field

from netprobe.topology import Topology
from netprobe.topology._kernel import netns
from netprobe.topology._kernel.tap import TUN

SLIRP_GW = "10.0.2.2"  # slirp4netns: the host's loopback, seen from the container
SLIRP_ADDR = "10.0.2.100"


@dataclass
class Listener:
    """A TCP listener in one namespace: answers each connection with its nonce."""

    sock: socket.socket
    host: str = ""
    addr: str = ""
    nonce: bytes = field(default_factory=lambda: secrets.token_hex(8).encode())
    accepted: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    probes: set[str] = field(default_factory=set)

    def serve(self) -> None:
        """Answer connections (each with the nonce, once counted) until closed."""
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return  # closed
            with self.lock:
                self.accepted.append(f"{peer[0]}:{peer[1]}")
            with conn:
                conn.sendall(self.nonce)

    def settled(self, topo: Topology) -> list[str] | None:
        """Every peer accepted so far (but these probes), read once a probe from the
        listener's own namespace has been answered: the kernel hands connections to
        accept() in the order they were made, and the nonce is sent after the count, so
        each connection made before the probe is counted. None if the probe failed."""
        port = self.sock.getsockname()[1]
        with netns.entered(topo.fd_of(self.host)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        with sock:
            sock.settimeout(10)
            try:
                sock.connect((self.addr if self.addr != "0.0.0.0" else "127.0.0.1", port))
                me = "{}:{}".format(*sock.getsockname())
                answer = sock.recv(64)
            except OSError:
                return None
        with self.lock:
            self.probes.add(me)
            return [p for p in self.accepted if p not in self.probes] if answer else None

    def close(self) -> None:
        """Stop listening."""
        self.sock.close()


def listen(topo: Topology, host: str, addr: str, port: int) -> Listener:
    """A listener on addr:port inside `host`, served by a thread until the topology goes."""
    with netns.entered(topo.fd_of(host)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((addr, port))
    sock.listen(16)
    listener = Listener(sock, host, addr)
    threading.Thread(target=listener.serve, daemon=True).start()
    topo.add_cleanup(listener.close)
    return listener


def fetch(topo: Topology, host: str, addr: str, port: int, timeout: float = 3.0) -> bytes | str:
    """Connect from inside `host` and read what the far side says: its bytes, or how the
    attempt ended (a string)."""
    with netns.entered(topo.fd_of(host)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        sock.connect((addr, port))
        data = sock.recv(64)
        return data or f"connection closed without a reply after {time.monotonic() - start:.2f} s"
    except OSError as exc:
        what = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        return f"connect to {addr}:{port} {what} after {time.monotonic() - start:.2f} s"
    finally:
        sock.close()


def host_state(topo: Topology, host: str) -> dict[str, object]:
    """What a rootless network must leave alone on its host side: links, addresses,
    routes and the forwarding sysctls."""
    state: dict[str, object] = {}
    for what in ("link", "addr", "route"):
        out = topo.run(host, ["ip", "-j", what, "show"], check=True).stdout
        items = json.loads(out or "[]")
        for item in items:  # counters and timers move on their own
            for key in ("stats64", "stats", "operstate", "linkmode", "addr_info_lifetimes"):
                item.pop(key, None)
            # the kernel adds a link's IPv6 link-local address itself, some time after the
            # link comes up (later still on a loaded machine): not a change anyone made
            if isinstance(item.get("addr_info"), list):
                item["addr_info"] = [
                    a for a in item["addr_info"]
                    if not (a.get("family") == "inet6" and a.get("scope") == "link")
                ]  # fmt: skip
        state[what] = items
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        state[key] = topo.sysctl(host, key)
    return state


def state_diff(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """What differs between two host_state()s, by part."""
    return [part for part in before if before[part] != after.get(part)]


def wait_addr(topo: Topology, host: str, ifname: str, timeout: float = 10.0) -> str | None:
    """The IPv4 address `ifname` has once it is configured inside `host`, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = topo.run(host, ["ip", "-j", "-4", "addr", "show", "dev", ifname]).stdout
        for item in json.loads(out or "[]") if out.strip() else []:
            for info in item.get("addr_info", []):
                if item.get("operstate") != "DOWN" or "UP" in item.get("flags", []):
                    return str(info["local"])
        time.sleep(0.05)
    return None


def gateway(topo: Topology, host: str) -> str | None:
    """The default route's gateway inside `host`."""
    out = topo.run(host, ["ip", "-j", "-4", "route", "show", "default"]).stdout
    routes = json.loads(out or "[]") if out.strip() else []
    return str(routes[0]["gateway"]) if routes and "gateway" in routes[0] else None


def api(path: str, request: dict[str, object]) -> dict[str, object]:
    """One request to slirp4netns's API socket, and its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode())
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    answer: dict[str, object] = json.loads(data or b"{}")
    return answer


def forwarded(path: str) -> list[int]:
    """The host ports slirp4netns forwards (its list_hostfwd)."""
    answer = api(path, {"execute": "list_hostfwd"}).get("return")
    entries = answer.get("entries", []) if isinstance(answer, dict) else []
    return [int(e["host_port"]) for e in entries if isinstance(e, dict) and "host_port" in e]


@dataclass(frozen=True)
class Adopted:
    """A user-mode network program someone else started (found by its API socket)."""

    pid: int


Program = subprocess.Popen[bytes] | Adopted


def find_slirp(api_socket: str) -> Adopted | None:
    """The slirp4netns serving `api_socket` (its --api-socket), found by command line."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as src:
                argv = src.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == "slirp4netns" and (
            f"--api-socket={api_socket}" in argv
            or any(a == "--api-socket" and b == api_socket for a, b in itertools.pairwise(argv))
        ):
            return Adopted(int(entry))
    return None


def exited(proc: Program) -> str | None:
    """How a program ended, or None while it runs."""
    if isinstance(proc, Adopted):
        return None if os.path.exists(f"/proc/{proc.pid}") else f"pid {proc.pid} gone"
    code = proc.poll()
    if code is None:
        return None
    return f"exit status {code}" if code >= 0 else f"killed by signal {-code}"


def ns_path(topo: Topology, host: str) -> str:
    """The path of `host`'s namespace, as slirp4netns and pasta take it."""
    name = topo.namespace(host)
    return f"/run/netns/{name}" if name else f"/proc/{os.getpid()}/ns/net"


_TUN_MODE_REMEDY = f"chmod 0666 {TUN} (the mode udev gives it)"
_TUN_REMEDY = f"modprobe tun; if {TUN} is missing: mknod {TUN} c 10 200"


def tun_refusal(who: str, *, others: bool = False) -> str | None:
    """Why `who` cannot open /dev/net/tun (a user-mode network's TAP), or None. `others`:
    it runs as another unprivileged user, so the node's mode for others decides;
    otherwise this process tries to open it (which makes no device: no TUNSETIFF)."""
    try:
        if others:
            mode = os.stat(TUN).st_mode & 0o777
            if mode & 0o006 != 0o006:
                return f"{TUN} is mode {mode:04o}, so {who} cannot open it: {_TUN_MODE_REMEDY}"
            return None
        os.close(os.open(TUN, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        denied = exc.errno in (errno.EACCES, errno.EPERM)
        remedy = f"{_TUN_MODE_REMEDY}, or run as root" if denied else _TUN_REMEDY
        return f"{who} cannot open {TUN} ({exc.strerror}): {remedy}"
    return None
