"""Networks made by hand, as a user or a CNI plugin would make them: namespaces, veths,
bridges, addresses, routes, sysctls and rulesets set with plain `ip`, `nft`,
`iptables-restore` and `sysctl` commands (never from a netprobe spec), then adopted by a
spec whose hosts are `Host(name, adopt=NAMESPACE)`. Names are unique per process and per
network (pid + counter), so parallel test runs never meet; `close` removes everything.

    with HandMade() as net:
        a, b = net.ns("a"), net.ns("b")
        net.veth("a", "eth0", "b", "eth0")
        net.ip("a", "addr", "add", "10.0.0.1/24", "dev", "eth0")
        with netprobe.build(net.spec()) as topo: ...
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from types import TracebackType

from netprobe.topology import Host, Spec

_COUNTER = itertools.count()


def _run(argv: Sequence[str], input: str | None = None) -> str:
    done = subprocess.run(list(argv), input=input, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


class HandMade:
    """Namespaces made by hand (prefix hm<pid>x<n>-), and what runs in them."""

    def __init__(self) -> None:
        self.prefix = f"hm{os.getpid()}x{next(_COUNTER)}"
        self.hosts: dict[str, str] = {}  # host name → namespace
        self.dir = tempfile.mkdtemp(prefix=self.prefix + "-")
        self.pidfiles: list[str] = []
        self.ovs_dirs: dict[str, str] = {}

    def ns(self, host: str) -> str:
        """Make namespace `<prefix>-<host>` with its loopback up; return its name."""
        name = f"{self.prefix}-{host}"
        _run(["ip", "netns", "add", name])
        self.hosts[host] = name
        self.ip(host, "link", "set", "lo", "up")
        self.sysctl(host, "net.ipv6.conf.default.accept_dad", "0")  # no DAD wait
        self.sysctl(host, "net.ipv6.conf.default.router_solicitations", "0")
        return name

    def process(self, host: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """`argv` started in `host`'s namespace by `ip netns exec`, returned once it is in
        there: its pid is known at once, the switch into the namespace comes a moment
        later, and a tool given the pid before that (slirp4netns, `drift --pid`) would
        act on the root namespace. The caller stops it."""
        ns = self.hosts[host]
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        want = os.stat(f"/run/netns/{ns}")
        deadline = time.monotonic() + 10
        while True:
            try:
                now = os.stat(f"/proc/{proc.pid}/ns/net")
                if (now.st_dev, now.st_ino) == (want.st_dev, want.st_ino):
                    return proc
            except FileNotFoundError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"{' '.join(argv)} never entered namespace {ns}")
            time.sleep(0.005)

    def ip(self, host: str, *argv: str) -> str:
        """`ip -n NS argv…`."""
        return _run(["ip", "-n", self.hosts[host], *argv])

    def exec(self, host: str, *argv: str, input: str | None = None) -> str:
        """`ip netns exec NS argv…`."""
        return _run(["ip", "netns", "exec", self.hosts[host], *argv], input=input)

    def veth(self, a: str, a_if: str, b: str, b_if: str, *, up: bool = True) -> None:
        """A veth pair between host a (`a_if`) and host b (`b_if`), both ends up."""
        _run(["ip", "link", "add", a_if, "netns", self.hosts[a], "type", "veth", "peer",
              "name", b_if, "netns", self.hosts[b]])
        if up:
            self.ip(a, "link", "set", "dev", a_if, "up")
            self.ip(b, "link", "set", "dev", b_if, "up")

    def bridge(self, host: str, name: str, *ports: str) -> None:
        """A Linux bridge (no STP) with `ports` enslaved, all up."""
        self.ip(host, "link", "add", name, "type", "bridge", "stp_state", "0")
        for port in ports:
            self.ip(host, "link", "set", "dev", port, "master", name)
        self.ip(host, "link", "set", "dev", name, "up")

    def addr(self, host: str, dev: str, *addresses: str) -> None:
        """Add addresses to `dev` (IPv6 without DAD)."""
        for address in addresses:
            extra = ["nodad"] if ":" in address else []
            self.ip(host, "addr", "add", address, "dev", dev, *extra)

    def route(self, host: str, *argv: str) -> None:
        """`ip route add argv…` (`-6` first for IPv6)."""
        six = ["-6"] if any(":" in a for a in argv) else []
        self.ip(host, *six, "route", "add", *argv)

    def sysctl(self, host: str, key: str, value: str) -> None:
        """`sysctl -w key=value` inside the host."""
        self.exec(host, "sysctl", "-q", "-w", f"{key}={value}")

    def file(self, name: str, text: str) -> str:
        """Write `text` to a file of this network's temp dir; return its path."""
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def nft(self, host: str, text: str) -> None:
        """Load an nft ruleset into the host: `nft -f FILE`."""
        self.exec(host, "nft", "-f", self.file(f"{host}-{next(_COUNTER)}.nft", text))

    def iptables_restore(self, host: str, text: str, *, six: bool = False) -> None:
        """Load iptables-restore (or ip6tables-restore) input into the host."""
        tool = "ip6tables-restore" if six else "iptables-restore"
        self.exec(host, tool, self.file(f"{host}-{next(_COUNTER)}.rules", text))

    def daemon(self, host: str, argv: Sequence[str], pidfile: str,
               env: dict[str, str] | None = None) -> None:
        """Start a daemon that detaches itself and writes `pidfile`; killed at close."""
        pairs = [f"{k}={v}" for k, v in (env or {}).items()]
        self.pidfiles.append(pidfile)
        self.exec(host, "env", *pairs, *argv)

    def ovs_start(self, host: str) -> None:
        """ovsdb-server and ovs-vswitchd started by hand inside the host, every file in a
        directory of their own (OVS_RUNDIR …); each returns once it is ready (--detach)."""
        rundir = os.path.join(self.dir, f"ovs-{host}")
        os.mkdir(rundir)
        env = dict.fromkeys(("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR"), rundir)
        db = os.path.join(rundir, "conf.db")
        _run(["ovsdb-tool", "create", db, "/usr/share/openvswitch/vswitch.ovsschema"])
        for name, argv in (("ovsdb-server", [db, f"--remote=punix:{rundir}/db.sock"]),
                           ("ovs-vswitchd", [f"unix:{rundir}/db.sock", "--disable-system"])):
            pidfile = f"{rundir}/{name}.pid"
            self.daemon(host, [name, *argv, f"--pidfile={pidfile}", "--detach",
                               f"--log-file={rundir}/{name}.log", "-vconsole:off"], pidfile, env)
        self.ovs_dirs[host] = rundir

    def ovs(self, host: str, *argv: str, input: str | None = None) -> str:
        """An OVS tool run against the host's hand-started OVS."""
        rundir = self.ovs_dirs[host]
        db = [f"--db=unix:{rundir}/db.sock"] if argv[0] == "ovs-vsctl" else []
        return self.exec(host, "env", f"OVS_RUNDIR={rundir}", argv[0], *db, *argv[1:],
                         input=input)

    def spec(self, name: str = "handmade") -> Spec:
        """A spec adopting every namespace made: `Host(host, adopt=NAMESPACE)`."""
        return Spec(name, tuple(Host(h, adopt=ns) for h, ns in self.hosts.items()))

    def close(self) -> None:
        """Stop the daemons, remove the namespaces and the temp dir."""
        for pidfile in self.pidfiles:
            try:
                with open(pidfile) as f:
                    os.kill(int(f.read().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        for ns in self.hosts.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", self.dir], check=False)

    def __enter__(self) -> HandMade:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
