"""DHCP in a topology: a dnsmasq per DhcpServer, a busybox udhcpc per `dhcp: true`.

Both are daemons of the run (daemon.py): started inside their host's namespace, in the
run's record from the moment they exist, stopped at teardown, found by `netprobe clean`
after a kill. Every file is in the host's private directory, /run/netprobe/ovs-RUNID/HOST:
dnsmasq-IF.conf, .leases, .pid, .log; udhcpc-IF.pid, .log, .lease, and the one script
udhcpc runs at each DHCP event (udhcpc.sh), which applies the lease with `ip` and writes
it down. dnsmasq reads no file of the machine's (its own --conf-file, no hosts, no
resolv.conf), serves no DNS (port 0), and offers an address without first pinging it
(which would cost 3 s a client: keep static addresses out of the ranges). The servers
start first, and each counts as up once its DHCP socket is bound; the clients follow.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import time
from typing import TYPE_CHECKING

from ...errors import SetupError, TopologyError
from .._model.spec import DhcpServer, Host, Interface, Spec, Tap
from . import daemon, owner
from .dnsmasq import ClientLease, read_client_lease

if TYPE_CHECKING:
    from .live import Topology

DNSMASQ_REMEDY = "apt-get install dnsmasq-base"
BUSYBOX_REMEDY = "apt-get install busybox-static"
_READY_WAIT = 5.0  # seconds for dnsmasq to bind its DHCP socket
_DHCP_PORT = 67

# Called by udhcpc as `udhcpc.sh EVENT` with the lease in its environment ($ip, $mask
# (the prefix length), $router, $dns, $serverid, $lease); writes udhcpc-IF.lease beside itself.
UDHCPC_SCRIPT = r"""#!/bin/sh
# netprobe's udhcpc script: applies a lease with ip, and writes it down.
file="$(dirname "$0")/udhcpc-$interface.lease"
old=$(sed -n 's/^ip=//p' "$file" 2>/dev/null)
oldprefix=$(sed -n 's/^prefix=//p' "$file" 2>/dev/null)
forget() {  # the address of the lease held before (a static one of the spec stays)
    [ -n "$old" ] && ip addr del "$old/$oldprefix" dev "$interface" 2>/dev/null
    rm -f "$file"
}
case "$1" in
deconfig)
    forget
    ip link set dev "$interface" up
    ;;
bound|renew)
    [ "$old" != "$ip" ] && forget
    ip addr replace "$ip/${mask:-32}" dev "$interface" || exit 1
    gateway=${router%% *}
    if [ -n "$gateway" ]; then
        ip route replace default via "$gateway" dev "$interface" || exit 1
    fi
    printf 'ip=%s\nprefix=%s\nrouter=%s\ndns=%s\nserver=%s\nlease=%s\n' \
        "$ip" "${mask:-32}" "$gateway" "$dns" "$serverid" "$lease" > "$file.new"
    mv "$file.new" "$file"
    ;;
esac
exit 0
"""


def host_dir(runid: str, host: str) -> str:
    """The private directory of `host`'s daemons in run `runid` (OVS's too)."""
    return os.path.join(owner.private_dir(runid), host)


def clients(host: Host) -> list[Interface]:
    """The interfaces of `host` netprobe runs a DHCP client on (a TAP's is the VM's)."""
    return [i for i in host.interfaces if i.dhcp and not isinstance(i.kind, Tap)]


def needs_dhcp(spec: Spec) -> bool:
    """True when the spec has a DHCP server or a client netprobe runs."""
    return any(h.dhcp_servers or clients(h) for h in spec.hosts)


def check_tools(spec: Spec) -> None:
    """Before anything is built: the programs the spec's DHCP needs are installed."""
    hosts = spec.hosts
    if any(h.dhcp_servers for h in hosts) and shutil.which("dnsmasq") is None:
        raise SetupError(
            "the topology has DHCP servers, but dnsmasq is not installed", remedy=DNSMASQ_REMEDY
        )
    if any(clients(h) for h in hosts) and shutil.which("busybox") is None:
        raise SetupError(
            "the topology has DHCP clients (dhcp: true), but busybox (udhcpc) is not installed",
            remedy=BUSYBOX_REMEDY,
        )


def start(topo: Topology) -> None:
    """Start every server, wait until each is bound, then start every client."""
    hosts = topo.spec.hosts
    for host in hosts:
        for server in host.dhcp_servers:
            _start_server(topo, host, server)
    for host in hosts:
        for iface in clients(host):
            _start_client(topo, host, iface)


def _directory(topo: Topology, host: Host) -> str:
    directory = host_dir(topo.runid, host.name)
    os.makedirs(owner.private_dir(topo.runid), mode=0o700, exist_ok=True)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    return directory


def dnsmasq_config(server: DhcpServer, ifname: str, directory: str) -> str:
    """The whole configuration of the dnsmasq that serves `server` on kernel link `ifname`."""
    base = os.path.join(directory, f"dnsmasq-{ifname}")
    first, last = server.range
    lines = [
        f"interface={ifname}",
        "bind-interfaces",  # port 67 on this link alone: other servers may run beside it
        "port=0",  # no DNS
        "no-hosts",
        "no-resolv",
        "user=root",  # keeps the lease and log files in the private directory writable
        "dhcp-authoritative",
        "no-ping",  # no 3 s ping check before each offer: static addresses stay off ranges
        "log-dhcp",
        f"log-facility={base}.log",
        f"dhcp-leasefile={base}.leases",
        f"pid-file={base}.pid",
        f"dhcp-range={first},{last},{server.lease_time}",
        "dhcp-option=option:dns-server" + "".join("," + d for d in server.dns),  # or none
    ]
    if server.router is not None:  # else dnsmasq's default: its own address on the link
        lines.append(f"dhcp-option=option:router,{server.router}")
    return "\n".join(lines) + "\n"


def _start_server(topo: Topology, host: Host, server: DhcpServer) -> None:
    directory = _directory(topo, host)
    ifname = topo.ifname(host.name, server.interface)
    _check_served_subnet(topo, host, server, ifname)
    conf = os.path.join(directory, f"dnsmasq-{ifname}.conf")
    with open(conf, "w") as out:
        out.write(dnsmasq_config(server, ifname, directory))
    log = os.path.join(directory, f"dnsmasq-{ifname}.log")
    argv = ["dnsmasq", f"--conf-file={conf}", "--keep-in-foreground"]
    started = _start(topo, host, argv, directory, log, server.interface)
    _wait_bound(topo, host, started, ifname, log)


def _check_served_subnet(topo: Topology, host: Host, server: DhcpServer, ifname: str) -> None:
    """An interface that exists already had no addresses in the spec to check the range
    against: its kernel's must hold it, or dnsmasq would serve nothing."""
    first, last = (ipaddress.IPv4Address(a) for a in server.range)
    nl = topo.hosts[host.name].nl
    index = nl.index(ifname)
    nets = [
        ipaddress.ip_interface(f"{a.address}/{a.prefixlen}").network
        for a in nl.addr_states()
        if a.index == index and ":" not in a.address
    ]
    if not any(first in n and last in n for n in nets):
        raise TopologyError(
            f"DHCP server on {host.name}:{server.interface}: range {first}-{last} is in no "
            f"subnet of its addresses ({', '.join(map(str, nets)) or 'none'})",
            obj=f"{host.name}:{server.interface}",
        )


def _start(
    topo: Topology, host: Host, argv: list[str], directory: str, log: str, iface: str
) -> daemon.Daemon:
    ns = topo.namespace(host.name)
    assert ns is not None  # never the root namespace (validated)
    started = daemon.start(
        ns,
        argv,
        env={},
        host=host.name,
        directory=directory,
        runid=topo.runid,
        outlive=topo.persistent,
        output=log,
    )
    started.entry["interface"] = iface  # the spec's name of the link it serves or runs on
    topo.note_daemon(started)
    return started


def _wait_bound(
    topo: Topology, host: Host, started: daemon.Daemon, ifname: str, log: str
) -> None:
    """Evidence that dnsmasq serves: a UDP socket on port 67 of its own, in its host."""
    deadline = time.monotonic() + _READY_WAIT
    while not _bound(started.proc.pid, topo.fd_of(host.name)):
        if not started.running() or time.monotonic() > deadline:
            why = "exited" if not started.running() else f"bound no DHCP socket in {_READY_WAIT} s"
            raise TopologyError(
                f"dnsmasq serving {host.name}:{ifname} {why}{log_tail(log, 'dnsmasq')}",
                obj=f"{host.name}:{ifname}",
            )
        time.sleep(0.005)


def _bound(pid: int, ns_fd: int) -> bool:
    """True once process `pid`, inside namespace `ns_fd`, holds a socket on UDP port 67."""
    try:
        here, ns = os.stat(f"/proc/{pid}/ns/net"), os.fstat(ns_fd)
        if (here.st_ino, here.st_dev) != (ns.st_ino, ns.st_dev):
            return False  # still on its way in (setpriv, then ip netns exec)
        with open(f"/proc/{pid}/net/udp") as src:
            rows = [line.split() for line in src.read().splitlines()[1:]]
        inodes = {r[9] for r in rows if len(r) > 9 and int(r[1].split(":")[1], 16) == _DHCP_PORT}
        held = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except (OSError, ValueError, IndexError):
        return False
    return any(f"socket:[{inode}]" in held for inode in inodes)


def _start_client(topo: Topology, host: Host, iface: Interface) -> None:
    directory = _directory(topo, host)
    script = os.path.join(directory, "udhcpc.sh")
    if not os.path.exists(script):
        with open(script, "w") as out:
            out.write(UDHCPC_SCRIPT)
        os.chmod(script, 0o700)
    ifname = topo.ifname(host.name, iface.name)
    base = os.path.join(directory, f"udhcpc-{ifname}")
    argv = client_argv(ifname, script, f"{base}.pid", host.name)
    _start(topo, host, argv, directory, f"{base}.log", iface.name)


def client_argv(ifname: str, script: str, pidfile: str, hostname: str) -> list[str]:
    """The command line of the udhcpc netprobe runs on `ifname` (repro.sh runs it too)."""
    return [
        "busybox", "udhcpc", "-f", "-i", ifname, "-s", script, "-p", pidfile,
        "-t", "4", "-T", "1", "-A", "1",  # discover each second, and go on after 4
        "-x", f"hostname:{hostname}",
    ]  # fmt: skip


def client_lease(topo: Topology, host: str, iface: str) -> ClientLease | None:
    """The lease netprobe's client on `host`:`iface` holds (None: it runs none there, or
    holds no lease now)."""
    spec = topo.spec.host(host)
    wanted = spec.interface(iface)
    if wanted is None or wanted not in clients(spec) or not spec.owned:
        return None
    ifname = topo.ifname(host, iface)
    return read_client_lease(os.path.join(host_dir(topo.runid, host), f"udhcpc-{ifname}.lease"))


def lease_problem(topo: Topology, host: Host, iface: Interface) -> str | None:
    """Why `host`:`iface` does not hold its lease yet (None: it does, file and kernel)."""
    lease = client_lease(topo, host.name, iface.name)
    if lease is None:
        return f"{host.name}:{iface.name} holds no DHCP lease"
    nl = topo.hosts[host.name].nl
    index = nl.index(topo.ifname(host.name, iface.name))
    if not any(a.index == index and a.address == lease.ip for a in nl.addr_states()):
        return f"{host.name}:{iface.name}: leased address {lease.ip} is not on the interface"
    return None


def client_log(topo: Topology, host: Host, iface: Interface) -> str:
    """The last lines of the client's log, for an error message."""
    ifname = topo.ifname(host.name, iface.name)
    path = os.path.join(host_dir(topo.runid, host.name), f"udhcpc-{ifname}.log")
    return log_tail(path, "udhcpc")


def client_running(topo: Topology, host: Host, iface: Interface) -> bool:
    """True while the client started on `host`:`iface` runs."""
    return any(
        d.running()
        for d in topo.daemons
        if d.entry["host"] == host.name and d.name == "busybox"
        and d.entry.get("interface") == iface.name
    )


def log_tail(path: str, name: str, lines: int = 6) -> str:
    """The last `lines` lines of log `path`, indented under `name`, or ""."""
    try:
        with open(path, errors="replace") as src:
            tail = src.read().splitlines()[-lines:]
    except OSError:
        return ""
    return ("\n  " + name + " log:\n    " + "\n    ".join(tail)) if tail else ""

