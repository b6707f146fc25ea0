"""A Docker-like host made by hand: containers are processes in namespaces of their own
(`unshare --net`, as a runtime makes them), on two bridges of a host namespace, whose
ruleset is the iptables-restore input dockerd writes (examples/docker-bridge.rules).

    outside ── host(eth0 198.51.100.1; docker0 172.17.0.1/16; br-net2 172.19.0.1/16)
                 docker0: web 172.17.0.2 (tcp/80), app 172.17.0.3
                 br-net2: db 172.19.0.2

Port 8080 of the host is published to web:80. Nothing here comes from netprobe.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from support.paths import EXAMPLES
from support.site import LISTENER

_counter = itertools.count()
CONTAINERS = {"web": ("docker0", "172.17.0.2"), "app": ("docker0", "172.17.0.3"),
              "db": ("br-net2", "172.19.0.2")}
WEB_LISTENER = LISTENER.replace('("0.0.0.0", 22)', '("0.0.0.0", 80)')


@dataclass
class DockerHost:
    """The host's and the outside's namespace names, and each container's pid."""

    host: str
    outside: str
    pids: dict[str, int] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def in_container(self, name: str, *argv: str) -> list[str]:
        """`argv` as run in container `name`'s network namespace."""
        return ["nsenter", f"--net=/proc/{self.pids[name]}/ns/net", *argv]

    def remove(self) -> None:
        """Stop the containers and delete the two named namespaces (nothing else)."""
        for proc in reversed(self.procs):
            proc.kill()
            proc.wait()
        for name in (self.host, self.outside):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def build_docker_host() -> DockerHost:
    """Make the host; the caller removes it (`DockerHost.remove`), even on failure."""
    tag = f"npdock{os.getpid() % 100000}x{next(_counter)}"
    dock = DockerHost(f"{tag}-host", f"{tag}-out")
    try:
        _wire(dock, tag)
    except BaseException:
        dock.remove()
        raise
    return dock


def _wire(dock: DockerHost, tag: str) -> None:
    for ns in (dock.host, dock.outside):
        _run("ip", "netns", "add", ns)
        _run("ip", "-n", ns, "link", "set", "lo", "up")
    _run("ip", "link", "add", "eth0", "netns", dock.host, "type", "veth",
         "peer", "name", "eth0", "netns", dock.outside)
    h, o = ("ip", "-n", dock.host), ("ip", "-n", dock.outside)
    _run(*h, "addr", "add", "198.51.100.1/24", "dev", "eth0")
    _run(*o, "addr", "add", "198.51.100.2/24", "dev", "eth0")
    for bridge, address in (("docker0", "172.17.0.1/16"), ("br-net2", "172.19.0.1/16")):
        _run(*h, "link", "add", bridge, "type", "bridge")
        _run(*h, "addr", "add", address, "dev", bridge)
        _run(*h, "link", "set", bridge, "up")
    for ns in (dock.host, dock.outside):
        _run("ip", "-n", ns, "link", "set", "eth0", "up")
    for index, (name, (bridge, address)) in enumerate(CONTAINERS.items()):
        _container(dock, name, bridge, address, f"veth{tag[-4:]}{index}")
    _run("ip", "netns", "exec", dock.host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    rules = Path(EXAMPLES, "docker-bridge.rules").read_text()
    _run("ip", "netns", "exec", dock.host, "iptables-restore", input=rules)
    web = subprocess.Popen(dock.in_container("web", sys.executable, "-c", WEB_LISTENER),
                           stdout=subprocess.PIPE, text=True)
    dock.procs.append(web)
    assert web.stdout is not None and web.stdout.readline().strip() == "ready"


def _container(dock: DockerHost, name: str, bridge: str, address: str, veth: str) -> None:
    proc = subprocess.Popen(["unshare", "--net", "--", "sleep", "infinity"], text=True)
    dock.procs.append(proc)
    dock.pids[name] = proc.pid
    netns = f"/proc/{proc.pid}/ns/net"
    while os.readlink(netns) == os.readlink("/proc/self/ns/net"):  # until unshare ran
        proc.poll()
    h = ("ip", "-n", dock.host)
    _run(*h, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns",
         str(proc.pid))
    _run(*h, "link", "set", veth, "master", bridge)
    _run(*h, "link", "set", veth, "up")
    gateway = ".".join(address.split(".")[:3]) + ".1"
    for argv in (("link", "set", "lo", "up"), ("addr", "add", f"{address}/16", "dev", "eth0"),
                 ("link", "set", "eth0", "up"), ("route", "add", "default", "via", gateway)):
        _run(*dock.in_container(name, "ip", *argv))


def _run(*argv: str, input: str | None = None) -> None:
    done = subprocess.run(argv, input=input, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
