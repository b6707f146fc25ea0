"""A small site made by hand with plain `ip`/`nft`/`sysctl`, the way a person builds one,
never from a netprobe spec, with faults seeded the same way.

    a ── r1 ── r2 ── sw(br0) ── b          10.70.1.0/24, 10.70.2.0/24, 10.70.3.0/24

`a` is a client, `r1` and `r2` route, `sw` holds a bridge between `r2` and the server
`b`, which listens on tcp/22 and udp/53. Namespace names carry the test process's pid and
a counter, so sessions running side by side never meet; `Site.remove` deletes only them.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

_counter = itertools.count()
HOSTS = ("a", "r1", "r2", "sw", "b")

LISTENER = """
import socket, sys, threading
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 22)); s.listen(64)
    while True:
        c, _ = s.accept(); c.close()
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 53))
    while True:
        data, peer = s.recvfrom(2048); s.sendto(data, peer)
threading.Thread(target=tcp, daemon=True).start()
print("ready", flush=True)
udp()
"""


@dataclass
class Site:
    """The namespaces of one hand-made site: `ns["a"]` is host a's namespace name."""

    ns: dict[str, str] = field(default_factory=dict)
    listeners: list[subprocess.Popen[str]] = field(default_factory=list)

    def ip(self, host: str, *argv: str) -> None:
        """`ip -n NS …` for `host`."""
        _run(["ip", "-n", self.ns[host], *argv])

    def sh(self, host: str, *argv: str, input: str | None = None) -> None:
        """Any command inside `host`'s namespace (`ip netns exec`)."""
        _run(["ip", "netns", "exec", self.ns[host], *argv], input=input)

    def sysctl(self, host: str, key: str, value: str) -> None:
        """`sysctl -w key=value` inside `host`."""
        self.sh(host, "sysctl", "-qw", f"{key}={value}")

    def nft(self, host: str, ruleset: str) -> None:
        """Load `ruleset` with `nft -f -` inside `host`."""
        self.sh(host, "nft", "-f", "-", input=ruleset)

    def remove(self) -> None:
        """Stop the listeners and delete this site's namespaces (and nothing else)."""
        for proc in self.listeners:
            proc.kill()
            proc.wait()
        for name in self.ns.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def build_site(prefix: str = "npsite") -> Site:
    """Make the healthy site; the caller removes it (`Site.remove`), even on failure."""
    tag = f"{prefix}{os.getpid() % 100000}x{next(_counter)}"
    site = Site({h: f"{tag}-{h}" for h in HOSTS})
    try:
        _wire(site)
    except BaseException:
        site.remove()
        raise
    return site


def _wire(site: Site) -> None:
    for name in site.ns.values():
        _run(["ip", "netns", "add", name])
    for host in HOSTS:
        site.ip(host, "link", "set", "lo", "up")
        site.sysctl(host, "net.ipv6.conf.all.disable_ipv6", "1")  # no DAD/RS noise
    for (left, lif), (right, rif) in (
        (("a", "e0"), ("r1", "e0")), (("r1", "e1"), ("r2", "e0")),
        (("r2", "e1"), ("sw", "p1")), (("sw", "p2"), ("b", "e0")),
    ):
        _run(["ip", "link", "add", "npsitetmp0", "netns", site.ns[left], "type", "veth",
              "peer", "name", rif, "netns", site.ns[right]])
        site.ip(left, "link", "set", "npsitetmp0", "name", lif)
        for host, ifname in ((left, lif), (right, rif)):
            site.ip(host, "link", "set", ifname, "up")
    site.ip("sw", "link", "add", "br0", "type", "bridge")
    for port in ("p1", "p2"):
        site.ip("sw", "link", "set", port, "master", "br0")
    site.ip("sw", "link", "set", "br0", "up")
    for host, ifname, address in (
        ("a", "e0", "10.70.1.2/24"), ("r1", "e0", "10.70.1.1/24"), ("r1", "e1", "10.70.2.1/24"),
        ("r2", "e0", "10.70.2.2/24"), ("r2", "e1", "10.70.3.1/24"), ("b", "e0", "10.70.3.2/24"),
    ):
        site.ip(host, "addr", "add", address, "dev", ifname)
    site.ip("a", "route", "add", "default", "via", "10.70.1.1")
    site.ip("r1", "route", "add", "10.70.3.0/24", "via", "10.70.2.2")
    site.ip("r2", "route", "add", "10.70.1.0/24", "via", "10.70.2.1")
    site.ip("b", "route", "add", "default", "via", "10.70.3.1")
    for router in ("r1", "r2"):
        site.sysctl(router, "net.ipv4.ip_forward", "1")
    _listen(site)


def _listen(site: Site) -> None:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", site.ns["b"], sys.executable, "-c", LISTENER],
        stdout=subprocess.PIPE, text=True,
    )
    site.listeners.append(proc)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while proc.stdout.readline().strip() != "ready":  # evidence, not a sleep
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the site's listener did not start")


def _run(argv: list[str], input: str | None = None) -> None:
    done = subprocess.run(argv, input=input, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
