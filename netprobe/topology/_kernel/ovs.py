"""Open vSwitch without its kernel module: netprobe's own daemons, userspace datapath.

A host with OVS bridges gets its own ovsdb-server and ovs-vswitchd, started inside the
host's namespace with every file (database, sockets, pidfiles, logs) in a private
directory, /run/netprobe/ovs-RUNID/HOST (OVS_RUNDIR, OVS_LOGDIR, OVS_DBDIR and
OVS_SYSCONFDIR all point there). Bridges use the `netdev` datapath, which needs no
kernel module: ovs-vswitchd moves the frames itself, through AF_PACKET sockets on the
ports. Such a datapath does not complete checksums the kernel left to the NIC, so TX
checksum offload is turned off on both ends of every veth that is an OVS port.

The daemons are in the run's record from the moment they exist; teardown (or
`netprobe clean`, for a killed run) stops them and removes the directory.
"""

from __future__ import annotations

import ctypes
import fcntl
import glob
import os
import shutil
import socket
import struct
import subprocess
import time
from typing import TYPE_CHECKING, Any

from ...errors import SetupError, TopologyError
from .._model.spec import Host, Interface, OvsBond, OvsBridge, OvsVxlan, Veth
from . import daemon, netns, owner, sdn
from .links import netlink_errors, raise_up
from .netlink import RTM_NEWLINK, link_msg

if TYPE_CHECKING:
    from .live import Topology


OVS_TOOLS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl")
_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
_REMEDY = "apt-get install openvswitch-switch (no kernel module is needed)"
_SOCKET_WAIT = 5.0  # seconds for ovsdb-server to open its socket
_SIOCETHTOOL, _ETHTOOL_STXCSUM = 0x8946, 0x17


def has_ovs(host: Host) -> bool:
    """True when `host` has an OVS bridge (and so needs its own OVS daemons)."""
    return any(isinstance(i.kind, OvsBridge) for i in host.interfaces)


def is_ovs_port(host: Host, iface: Interface) -> bool:
    """True for a port of an OVS bridge or a member of an OVS bond (no kernel master)."""
    master = host.interface(iface.master) if iface.master else None
    return master is not None and isinstance(master.kind, (OvsBridge, OvsBond))


def host_dir(runid: str, host: str) -> str:
    """The directory of `host`'s private OVS instance in run `runid`."""
    return os.path.join(owner.private_dir(runid), host)


def environment(directory: str) -> dict[str, str]:
    """What points OVS's daemons and tools at one private instance."""
    names = ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR")
    return dict.fromkeys(names, directory)


def start(topo: Topology, host: Host) -> None:
    """Create the host's OVS database and start ovsdb-server inside the host; the switch
    daemon follows in `configure`, once the database answers."""
    missing = [t for t in OVS_TOOLS if shutil.which(t) is None]
    if missing or not os.path.exists(_SCHEMA):
        raise SetupError(
            f"host {host.name!r} has OVS bridges, but Open vSwitch is not installed "
            f"({', '.join(missing) or _SCHEMA} missing)",
            remedy=_REMEDY,
        )
    directory = host_dir(topo.runid, host.name)
    os.makedirs(owner.private_dir(topo.runid), mode=0o700, exist_ok=True)
    os.makedirs(directory, mode=0o700)
    db = os.path.join(directory, "conf.db")
    made = subprocess.run(
        ["ovsdb-tool", "create", db, _SCHEMA], capture_output=True, text=True, check=False
    )
    if made.returncode != 0:
        raise TopologyError(f"ovsdb-tool create {db}: {made.stderr.strip()}", obj=db)
    argv = [
        "ovsdb-server",
        db,
        f"--remote=punix:{directory}/db.sock",
        *_daemon_options(directory, "ovsdb-server"),
    ]
    _start_daemon(topo, host, argv, directory)


def _daemon_options(directory: str, name: str) -> list[str]:
    return [
        f"--pidfile={directory}/{name}.pid",
        f"--log-file={directory}/{name}.log",
        "-vconsole:off",
    ]


def _start_daemon(topo: Topology, host: Host, argv: list[str], directory: str) -> None:
    ns = topo.namespace(host.name)
    assert ns is not None  # OVS bridges live in namespaces netprobe owns (validated)
    topo.note_daemon(
        daemon.start(
            ns,
            argv,
            env=environment(directory),
            host=host.name,
            directory=directory,
            runid=topo.runid,
            outlive=topo.persistent,
        )
    )


def configure(topo: Topology, host: Host) -> None:
    """Start ovs-vswitchd, then make the host's bridges, ports, bonds and flows in one
    ovs-vsctl transaction (which returns once the switch has applied it)."""
    directory = host_dir(topo.runid, host.name)
    _wait_for_database(topo, host, directory)
    argv = [
        "ovs-vswitchd",
        f"unix:{directory}/db.sock",
        *_daemon_options(directory, "ovs-vswitchd"),
        "--disable-system",  # no kernel datapath: do not even look for one
    ]
    _start_daemon(topo, host, argv, directory)
    _tool(topo, host, ["ovs-vsctl", "--timeout=30", *vsctl_commands(host, topo.runid)])
    if host.controllers:
        sdn.wait_pushed(topo, host)
    for iface in host.interfaces:
        if isinstance(iface.kind, OvsBridge) and iface.kind.flows:
            flows = "\n".join(iface.kind.flows) + "\n"
            _tool(topo, host, ["ovs-ofctl", "replace-flows", iface.name, "-"], flows)
    _checksum_offload_off(topo, host)
    _bridges_up(topo, host)


def vsctl_commands(host: Host, runid: str = "") -> list[str]:
    """The ovs-vsctl arguments that make `host`'s bridges and ports (`--` separated);
    `runid` places the unix sockets of the host's controllers."""
    args: list[str] = []
    for iface in host.interfaces:
        if isinstance(iface.kind, OvsBridge):
            args += ["--", "add-br", iface.name]
            args += ["--", "set", "bridge", iface.name, "datapath_type=netdev"]
            if iface.kind.fail_mode:
                args += [f"fail_mode={iface.kind.fail_mode}"]
            if iface.mac:
                args += [f'other-config:hwaddr="{iface.mac}"']
            target = sdn.bridge_target(runid, host, iface.kind)
            if target:  # a lost connection is noticed at once (no inactivity probe)
                args += ["--", "set-controller", iface.name, target]
                args += ["--", "set", "controller", iface.name, "inactivity_probe=0"]
            if iface.mtu:
                args += ["--", "set", "interface", iface.name, f"mtu_request={iface.mtu}"]
    for iface in host.interfaces:
        master = host.interface(iface.master) if iface.master else None
        if master is None or not isinstance(master.kind, OvsBridge):
            continue
        vlan = [f"tag={iface.tag}"] if iface.tag is not None else []
        if iface.trunks:
            vlan = ["trunks=" + ",".join(map(str, iface.trunks))]
        if isinstance(iface.kind, OvsBond):
            members = [i.name for i in host.interfaces if i.master == iface.name]
            args += ["--", "add-bond", master.name, iface.name, *members]
            args += [f"bond_mode={iface.kind.mode}", *vlan]
            args += [f"other_config:bond-primary={members[0]}"]  # the first listed
            if iface.kind.lacp_mode != "off":
                args += [f"lacp={iface.kind.lacp_mode}"]
            if iface.kind.lacp_time != "slow":
                args += [f"other_config:lacp-time={iface.kind.lacp_time}"]
            if iface.kind.rebalance_interval is not None:
                args += [f"other_config:bond-rebalance-interval={iface.kind.rebalance_interval}"]
        elif isinstance(iface.kind, OvsVxlan):
            args += ["--", "add-port", master.name, iface.name, *vlan]
            args += ["--", "set", "interface", iface.name, *vxlan_options(iface.kind)]
        else:
            args += ["--", "add-port", master.name, iface.name, *vlan]
    return args


def vxlan_options(vxlan: OvsVxlan) -> list[str]:
    """The Interface columns of an OVS VXLAN port: userspace tunnelling finds the route
    and the neighbour of `remote` through the OVS bridge that holds the underlay address."""
    options = ["type=vxlan", f"options:remote_ip={vxlan.remote}", f"options:key={vxlan.key}",
               f"options:dst_port={vxlan.dstport}"]
    return options + ([f"options:local_ip={vxlan.local}"] if vxlan.local else [])


def _wait_for_database(topo: Topology, host: Host, directory: str) -> None:
    sock = os.path.join(directory, "db.sock")
    deadline = time.monotonic() + _SOCKET_WAIT
    db = next(d for d in topo.daemons if d.entry["dir"] == directory)
    while not os.path.exists(sock):
        if not db.running() or time.monotonic() > deadline:
            why = "exited" if not db.running() else f"opened no socket in {_SOCKET_WAIT} s"
            raise TopologyError(
                f"ovsdb-server of {host.name} {why}{_log_tail(directory, 'ovsdb-server')}"
            )
        time.sleep(0.001)


def _tool(topo: Topology, host: Host, argv: list[str], input: str | None = None) -> None:
    result = topo.ovs(host.name, *argv, input=input)
    if not result.ok:
        directory = host_dir(topo.runid, host.name)
        raise TopologyError(
            f"{' '.join(argv[:3])}… in {host.name} failed: "
            f"{result.stderr.strip() or result.stdout.strip()}"
            f"{_log_tail(directory, 'ovs-vswitchd')}",
            obj=host.name,
        )


def _log_tail(directory: str, name: str, lines: int = 5) -> str:
    try:
        with open(os.path.join(directory, f"{name}.log"), errors="replace") as src:
            tail = src.read().splitlines()[-lines:]
    except OSError:
        return ""
    return ("\n  " + name + " log:\n    " + "\n    ".join(tail)) if tail else ""


def _checksum_offload_off(topo: Topology, host: Host) -> None:
    """Both ends of every veth that is an OVS port: the sending end would otherwise leave
    TCP and UDP checksums for a NIC to fill in, which the netdev datapath never does."""
    for iface in host.interfaces:
        if not is_ovs_port(host, iface) or isinstance(iface.kind, (OvsBond, OvsVxlan)):
            continue  # ports inside OVS, with no kernel device
        ends = [(host.name, iface.name)]
        peer = _veth_peer(topo, host, iface)
        if peer is not None:
            ends.append(peer)
        for end_host, name in ends:
            _tx_checksum_off(topo, end_host, topo.ifname(end_host, name))


def _veth_peer(topo: Topology, host: Host, iface: Interface) -> tuple[str, str] | None:
    if isinstance(iface.kind, Veth):
        return iface.kind.peer_host, iface.kind.peer_ifname
    for other in topo.spec.hosts:
        for item in other.interfaces:
            if isinstance(item.kind, Veth) and item.kind.peer == f"{host.name}:{iface.name}":
                return other.name, item.name
    return None


def _tx_checksum_off(topo: Topology, host: str, ifname: str) -> None:
    """`ethtool -K IFNAME tx off`, by the ETHTOOL_STXCSUM ioctl inside the host."""
    value = ctypes.create_string_buffer(struct.pack("=II", _ETHTOOL_STXCSUM, 0))
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value)).ljust(40, b"\0")
    with netns.entered(topo.fd_of(host)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(sock.fileno(), _SIOCETHTOOL, ifreq)
    except OSError as exc:
        raise TopologyError(
            f"turning TX checksum offload off on {host}:{ifname}: {exc.strerror}",
            errno=exc.errno,
            obj=ifname,
        ) from exc
    finally:
        sock.close()


def _bridges_up(topo: Topology, host: Host) -> None:
    """ovs-vswitchd makes each bridge's own interface (a TAP) down; bring it up."""
    nl = topo.hosts[host.name].nl
    for iface in host.interfaces:
        if isinstance(iface.kind, OvsBridge) and iface.up:
            with netlink_errors(f"bringing OVS bridge {host.name}:{iface.name} up", iface.name):
                nl.request(raise_up(link_msg(0, IFLA_IFNAME=iface.name)), RTM_NEWLINK)


def pidfile_daemons(runid: str) -> list[dict[str, Any]]:
    """Daemons found by their pidfiles in the run's directory: a run interrupted between
    starting one and recording it leaves only that."""
    found = []
    for path in glob.glob(os.path.join(owner.private_dir(runid), "*", "*.pid")):
        try:
            with open(path) as src:
                pid = int(src.read().strip())
        except (OSError, ValueError):
            continue
        found.append({"pid": pid, "dir": os.path.dirname(path), "name": os.path.basename(path)})
    return found


def remove_dirs(runid: str) -> list[str]:
    """Remove the run's private directory (after its daemons are gone); problems."""
    path = owner.private_dir(runid)
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        return [f"removing {path}: {exc.strerror}"]
    return []


# -- an Open vSwitch someone else started (in a namespace netprobe adopted) --------------

_DEFAULT_RUNDIR = "/var/run/openvswitch"


def tool_argv(topo: Topology, host: str, argv: tuple[str, ...]) -> list[str] | None:
    """`argv` (an OVS tool and its arguments) as run against `host`'s own OVS: netprobe's
    private instance in a host it made; in an adopted one, the ovs-vswitchd running in
    its namespace, found by its process (its OVS_RUNDIR, its database, its control
    socket). None: no ovs-vswitchd runs there."""
    state = topo.hosts[host]
    if state.spec.owned:
        directory = host_dir(topo.runid, host)
        env, db, target = environment(directory), f"unix:{directory}/db.sock", None
    else:
        found = _running_switch(state.fd)
        if found is None:
            return None
        env, db, target = found
    tool = os.path.basename(argv[0]) if argv else ""
    extra = [f"--db={db}"] if tool == "ovs-vsctl" else []
    if tool == "ovs-appctl" and target and not any(a.startswith(("-t", "--target"))
                                                   for a in argv[1:]):
        extra = ["-t", target]
    return ["env", *(f"{k}={v}" for k, v in env.items()), argv[0], *extra, *argv[1:]]


def _running_switch(ns_fd: int) -> tuple[dict[str, str], str, str] | None:
    """(environment, database, control socket) of an ovs-vswitchd in namespace `ns_fd`."""
    ns = os.fstat(ns_fd)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            here = os.stat(f"/proc/{pid}/ns/net")
            if (here.st_ino, here.st_dev) != (ns.st_ino, ns.st_dev):
                continue
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "ovs-vswitchd":
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = [a.decode() for a in f.read().split(b"\0") if a]
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = dict(e.decode().partition("=")[::2] for e in f.read().split(b"\0") if e)
        except (OSError, UnicodeDecodeError):
            continue  # gone, or not readable: not one to talk to
        rundir = environ.get("OVS_RUNDIR", _DEFAULT_RUNDIR)
        db = next((a for a in args[1:] if not a.startswith("-")), f"unix:{rundir}/db.sock")
        control = next((a.split("=", 1)[1] for a in args if a.startswith("--unixctl=")),
                       f"{rundir}/ovs-vswitchd.{pid}.ctl")
        return {"OVS_RUNDIR": rundir}, db, control
    return None
