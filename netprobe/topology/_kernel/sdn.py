"""OpenFlow controllers in a topology: one os-ken process per SdnController.

Each is a daemon of the run (daemon.py): started inside its host's namespace before the
host's OVS bridges are made, in the run's record from the moment it exists, stopped at
teardown, found by `netprobe clean` after a kill. Its files are in the host's private
directory, /run/netprobe/ovs-RUNID/HOST: controller-NAME.json (what oskenapp.py reads),
.log, and .sock when it listens on a unix socket. It counts as up once it holds its
listening socket; a bridge that names it counts as built once the controller has logged
the barrier after its flows. Bridges of netprobe's own get `inactivity_probe=0` on their
controller, so that a dropped connection is noticed at once: a standalone bridge fails
open as soon as its controller is gone, not after three probe intervals (15 s).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import itertools
import json
import os
import struct
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import SetupError, TopologyError
from .._model.spec import Host, OvsBridge, SdnController, Spec
from . import daemon, owner, process

if TYPE_CHECKING:
    from .live import Topology

OSKEN_REMEDY = "pip install os-ken (into netprobe's own environment)"
_READY_WAIT = 20.0  # seconds for os-ken to start listening (it imports a lot)
_PUSH_WAIT = 10.0  # seconds for a bridge to connect and its flows to be pushed
_TCP_LISTEN = "0A"
_UNIX_ACCEPTCON = 0x10000


def has_os_ken() -> bool:
    """True when os-ken (the controller netprobe runs) is importable here."""
    return importlib.util.find_spec("os_ken") is not None


def check_tools(spec: Spec) -> None:
    """Before anything is built: os-ken is installed if the spec runs a controller."""
    if any(h.controllers for h in spec.hosts) and not has_os_ken():
        raise SetupError("the topology runs OpenFlow controllers, but os-ken is not installed",
                         remedy=OSKEN_REMEDY)


def target(runid: str, host: Host, controller: SdnController) -> str:
    """Where `controller` of `host` listens: tcp:127.0.0.1:PORT, or unix:PATH."""
    if controller.listen == "unix":
        directory = os.path.join(owner.private_dir(runid), host.name)
        return f"unix:{directory}/controller-{controller.name}.sock"
    return controller.listen


def bridge_target(runid: str, host: Host, bridge: OvsBridge) -> str | None:
    """The target an OVS bridge connects to: its controller's, when it names one."""
    named = next((c for c in host.controllers if c.name == bridge.controller), None)
    return target(runid, host, named) if named is not None else bridge.controller


def start(topo: Topology, host: Host) -> None:
    """Start each controller of `host`, and wait until each one listens."""
    if not host.controllers:
        return
    directory = os.path.join(owner.private_dir(topo.runid), host.name)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    ns = topo.namespace(host.name)
    assert ns is not None  # controllers run in namespaces netprobe owns (validated)
    for controller in host.controllers:
        base = os.path.join(directory, f"controller-{controller.name}")
        where = target(topo.runid, host, controller)
        with open(f"{base}.json", "w") as out:
            json.dump({"listen": where, "flows": list(controller.flows)}, out)
        argv = [sys.executable, "-m", "netprobe.topology._kernel.oskenapp", f"{base}.json"]
        started = daemon.start(ns, argv, env={}, host=host.name, directory=directory,
                               runid=topo.runid, outlive=topo.persistent, output=f"{base}.log")
        started.entry["name"] = f"controller-{controller.name}"
        topo.note_daemon(started)
        def listening(where: str = where, pid: int = started.proc.pid,
                      fd: int = topo.fd_of(host.name)) -> bool:
            return listener(fd, where) == pid

        _wait(listening, started, f"controller {host.name}:{controller.name} listening on "
              f"{where}", f"{base}.log", _READY_WAIT)


def wait_pushed(topo: Topology, host: Host) -> None:
    """Each controller of `host` has pushed its flows to every bridge that names it (its
    log says so once the switch answered the barrier behind them)."""
    directory = os.path.join(owner.private_dir(topo.runid), host.name)
    for controller in host.controllers:
        users = sum(1 for i in host.interfaces if isinstance(i.kind, OvsBridge)
                    and i.kind.controller == controller.name)
        log = os.path.join(directory, f"controller-{controller.name}.log")
        started = next(d for d in topo.daemons if d.name == f"controller-{controller.name}"
                       and d.entry["host"] == host.name)
        def pushed(log: str = log, users: int = users) -> bool:
            return _log_text(log).count(" pushed ") >= users

        _wait(pushed, started,
              f"controller {host.name}:{controller.name} pushing its flows to {users} "
              "bridge(s)", log, _PUSH_WAIT)


def _wait(done: Callable[[], bool], started: daemon.Daemon, what: str, log: str,
          limit: float) -> None:
    deadline = time.monotonic() + limit
    while not done():
        if not started.running() or time.monotonic() > deadline:
            why = "exited" if not started.running() else f"not done in {limit} s"
            tail = "\n    ".join(_log_text(log).splitlines()[-5:])
            raise TopologyError(f"{what}: {why}" + (f"\n  its log:\n    {tail}" if tail else ""))
        time.sleep(0.01)


def _log_text(path: str) -> str:
    try:
        with open(path, errors="replace") as src:
            return src.read()
    except OSError:
        return ""


def listener(ns_fd: int, where: str) -> int | None:
    """The pid of the process in namespace `ns_fd` listening at `where` (tcp:IP:PORT or
    unix:PATH), whoever started it (None: nothing listens there). A TCP listener counts
    when its local address is IP, or a wildcard one and IP is an address of the namespace."""
    pids = _pids_in(ns_fd)
    if not pids:
        return None
    inodes = _listening_inodes(pids[0], where)
    for pid in pids:
        try:
            held = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in held for inode in inodes):
            return pid
    return None


def _pids_in(ns_fd: int) -> list[int]:
    ns = os.fstat(ns_fd)
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            here = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        if (here.st_ino, here.st_dev) == (ns.st_ino, ns.st_dev):
            found.append(int(pid))
    return found


def _listening_inodes(pid: int, where: str) -> set[str]:
    """Inodes of the listening sockets at `where`, as the namespace of `pid` lists them."""
    kind, _, rest = where.partition(":")
    try:
        if kind == "unix":
            with open(f"/proc/{pid}/net/unix") as src:
                rows = [line.split() for line in src.read().splitlines()[1:]]
            return {r[6] for r in rows if len(r) > 7 and r[7] == rest
                    and int(r[3], 16) & _UNIX_ACCEPTCON}
        host, _, port_text = rest.rpartition(":")
        ip, port = ipaddress.ip_address(host.strip("[]")), int(port_text)
        rows = []
        for table in ("tcp", "tcp6"):
            with open(f"/proc/{pid}/net/{table}") as src:
                rows += [line.split() for line in src.read().splitlines()[1:]]
    except (OSError, ValueError, IndexError):
        return set()
    local = ip.is_loopback or ip in _local_addresses(pid)
    found = set()
    for row in rows:
        if len(row) <= 9 or row[3] != _TCP_LISTEN:
            continue
        bound, _, bound_port = row[1].partition(":")
        at = _proc_address(bound)
        if int(bound_port, 16) == port and (at == ip or (at.is_unspecified and local)):
            found.add(row[9])
    return found


def _proc_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} prints it: 32-bit words in the host's byte order;
    an IPv4-mapped IPv6 one as its IPv4 address."""
    raw = b"".join(struct.pack("=I", int(text[i:i + 8], 16)) for i in range(0, len(text), 8))
    address = ipaddress.ip_address(raw)
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def _local_addresses(pid: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses of the namespace of `pid` (its local routes; its IPv6 addresses)."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    try:
        with open(f"/proc/{pid}/net/fib_trie") as src:
            lines = src.read().splitlines()
        with open(f"/proc/{pid}/net/if_inet6") as src:
            found |= {ipaddress.ip_address(bytes.fromhex(line.split()[0]))
                      for line in src if line.strip()}
    except (OSError, ValueError):
        return found
    for before, line in itertools.pairwise(lines):
        if line.strip() == "/32 host LOCAL" and "-- " in before:
            found.add(ipaddress.ip_address(before.rsplit("-- ", 1)[1].strip()))
    return found


def foreign(topo: Topology, host: str, where: str, allow: int | None = None) -> str | None:
    """Why the controller listening at `where` in `host` is not netprobe's to stop: it is
    no daemon of this topology, and its pid is not `allow` (None: nothing listens there,
    or it may be stopped)."""
    pid = listener(topo.fd_of(host), where)
    if pid is None or pid == allow or any(d.proc.pid == pid for d in topo.daemons):
        return None
    return (f"the controller at {where} in {host} is not netprobe's (pid {pid}, "
            f"{_command(pid)}): netprobe never stops it")


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as src:
            argv = src.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return "gone"
    return " ".join(a.decode(errors="replace") for a in argv)[:120] or "?"


def stop_listener(topo: Topology, host: str, where: str, allow: int | None = None) -> int | None:
    """Stop netprobe's controller in `host` listening at `where` (one of this topology's
    daemons, or the process whose pid is `allow`), and wait until it is gone: its pid
    (None: nothing listens there). Anyone else's: TopologyError, and nothing is signalled."""
    why = foreign(topo, host, where, allow)
    if why is not None:
        raise TopologyError(why)
    pid = listener(topo.fd_of(host), where)
    if pid is None:
        return None
    _, problems = process.stop({pid: f"controller at {where}"})
    if problems:
        raise TopologyError(f"stopping the controller in {host}: {'; '.join(problems)}")
    own = next((d for d in topo.daemons if d.proc.pid == pid), None)
    if own is not None:
        own.proc.wait()  # reaped now: teardown finds it exited
    return pid
