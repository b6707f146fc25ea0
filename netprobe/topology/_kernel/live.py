"""A built topology: its hosts' namespaces, commands inside them, and its teardown."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from types import FrameType, TracebackType
from typing import Any

from ...errors import NotFound, SetupError, TopologyError
from .._model.port import Port, host_and_ifname
from .._model.spec import Host, Spec
from . import daemon, dhcp, dnsmasq, netns, ovs, owner, process, sdn, stored, view
from .cleanup import CleanReport, note_reverted
from .dnsmasq import ClientLease, RunningDhcpServer
from .links import IFF_UP, raise_up
from .netlink import RTM_NEWLINK, Rtnl, link_msg
from .state import LiveHost, LiveRoute
from .tap import make_persistent
from .undo import revert


@dataclass(frozen=True)
class RunResult:
    """What a command run inside a host returned."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.returncode == 0


@dataclass(eq=False)
class HostState:
    """A host as built: its namespace and what netprobe changed in it."""

    spec: Host
    ns: str | None  # name under /run/netns; None for the root namespace
    fd: int
    nl: Rtnl


class Topology:
    """A live topology. Use as a context manager: teardown always runs on the way out."""

    def __init__(self, spec: Spec, record: owner.RunRecord, *, persistent: bool = False) -> None:
        self.spec = spec
        self.record = record
        self.persistent = persistent  # its daemons outlive the process that built it
        self.spawned: list[subprocess.Popen[Any]] = []
        self.hosts: dict[str, HostState] = {}
        self.taps: dict[tuple[str, str], int] = {}
        self.daemons: list[daemon.Daemon] = []
        self._torn_down = False
        self._cleanups: list[Callable[[], None]] = []
        self._existing = spec.existing  # used as they are: no root prefix
        # What the teardown did (removed_additions: what it took away from namespaces
        # netprobe does not own); None until it has run.
        self.teardown_report: CleanReport | None = None
        # False: explanations add nothing (no nft trace table) to namespaces netprobe did
        # not create; netprobe.explain reads it
        self.touch = True
        _live.append(self)

    # -- what users ask of it ----------------------------------------------------------

    @property
    def runid(self) -> str:
        """The run id naming this topology's namespaces, links and record."""
        return self.record.runid

    def namespace(self, host: str) -> str | None:
        """The /run/netns name of `host` (None for the root namespace)."""
        return self._host(host).ns

    def ifname(self, host: str | Port, name: str | None = None) -> str:
        """The kernel's name of interface `name` of `host` (prefixed in the root namespace);
        ``ifname(port)`` with a port (a Port or "HOST:IFNAME") alone, too."""
        host, name = host_and_ifname(host, name)
        prefixed = self._host(host).spec.root and (host, name) not in self._existing
        return owner.root_ifname(self.runid, name) if prefixed else name

    def tap(self, host: str | Port, name: str | None = None) -> int:
        """The open descriptor of TAP `name`: write a frame to send it, read to receive
        (``tap(port)`` too)."""
        host, name = host_and_ifname(host, name)
        try:
            return self.taps[(host, name)]
        except KeyError:
            raise NotFound(f"{host}:{name} is not a TAP of this topology") from None

    def run(
        self,
        host: str,
        argv: Sequence[str],
        *,
        timeout: float = 60,
        input: str | bytes | None = None,
        check: bool = False,
    ) -> RunResult:
        """Run `argv` inside `host`'s namespace (as `ip netns exec` does). `input` goes to
        its stdin as given (bytes unchanged, text as UTF-8); its output is read as UTF-8."""
        full = self._inside(host, argv)
        data = input.encode() if isinstance(input, str) else input
        try:
            proc = process.run(
                full, runid=self.runid, capture_output=True, timeout=timeout, input=data,
                check=False,
            )
        except FileNotFoundError as exc:
            raise _not_installed(full[0]) from exc
        except subprocess.TimeoutExpired as exc:
            raise TopologyError(f"{' '.join(argv)} in {host} timed out after {timeout} s") from exc
        out, err = (b.decode(errors="replace") for b in (proc.stdout, proc.stderr))
        result = RunResult(proc.returncode, out, err)
        if check and not result.ok:
            raise TopologyError(
                f"{' '.join(argv)} in {host} failed ({proc.returncode}): "
                f"{err.strip() or out.strip()}"
            )
        return result

    def spawn(self, host: str, argv: Sequence[str], **options: Any) -> subprocess.Popen[Any]:
        """Start `argv` inside `host`'s namespace and leave it running (a listener, a
        monitor): `options` as for subprocess.Popen. It is stopped at teardown if still
        running, dies with the thread that started it (start it from one that lives as
        long as it should: the main thread), and `netprobe clean` finds it after a kill."""
        full = self._inside(host, argv)
        try:
            proc = process.popen(full, runid=self.runid, **options)
        except FileNotFoundError as exc:
            raise _not_installed(full[0]) from exc
        self.spawned.append(proc)
        return proc

    def ovs(
        self, host: str, *argv: str, input: str | bytes | None = None, check: bool = False
    ) -> RunResult:
        """Run an Open vSwitch tool inside `host`, talking to that host's own OVS:
        ``topo.ovs("switch", "ovs-ofctl", "dump-flows", "br0")``. In a namespace netprobe
        adopted, that is the ovs-vswitchd running there (and its database)."""
        self._host(host)
        full = ovs.tool_argv(self, host, argv)
        if full is None:
            result = RunResult(1, "", f"no ovs-vswitchd runs in {host}'s namespace")
            if check:
                raise TopologyError(f"{' '.join(argv)} in {host}: {result.stderr}")
            return result
        return self.run(host, full, input=input, check=check)

    def set_link(self, port: str | Port, *, up: bool) -> None:
        """Set a link administratively up or down through netlink, at once: no process is
        started, so the moment of the change is known to a fraction of a millisecond."""
        host, name = host_and_ifname(port, None)
        msg = link_msg(0, IFLA_IFNAME=self.ifname(host, name))
        if up:
            msg = raise_up(msg)
        else:
            msg["change"] = IFF_UP  # and IFF_UP cleared in the flags
        with Rtnl(self.fd_of(host)) as nl:  # its own socket: callable beside others' use
            nl.request(msg, RTM_NEWLINK)

    def mac(self, host: str | Port, name: str | None = None) -> str:
        """The MAC address interface `name` of `host` has now (assigned or random);
        ``mac(port)`` with a port (a Port or "HOST:IFNAME") alone, too."""
        if name is None and Port.parse(host).vm:  # the VM picks its own
            raise NotFound(f"{host} is a VM's side of a TAP: the topology knows no MAC of it")
        host, name = host_and_ifname(host, name)
        state = self._host(host)
        link = state.nl.links().get(self.ifname(host, name))
        if link is None:
            raise NotFound(f"{host} has no interface {name!r}")
        mac: str = link.get_attr("IFLA_ADDRESS")
        return mac

    # -- what the kernel says (the spec only says what netprobe added) -------------------

    def live(self, host: str, *, addresses: bool = True) -> LiveHost:
        """What `host` is now, read from its kernel: interfaces (kind, MAC, MTU, state,
        master, addresses, bridge port state), routes and neighbours. `addresses=False`:
        the interfaces alone (one netlink dump, for questions asked on every probe)."""
        return view.live(self, host, addresses=addresses)

    def peer(self, port: str | Port) -> Port | None:
        """The far end of the veth at `port`, among this topology's hosts, as the kernel
        pairs them (None: not a veth, or its far end is in no host of the topology)."""
        return view.peer(self, port)

    def holder(self, ip: str) -> Port | None:
        """The host and interface holding address `ip` now (None: no host holds it)."""
        return view.holder(self, ip)

    def route_to(self, host: str, dst: str, src: str | None = None) -> LiveRoute | None:
        """The route `host`'s kernel picks for `dst` now, as `ip route get` (None: none)."""
        return view.kernel_route(self, host, dst, src)

    def sysctl(self, host: str, key: str) -> str | None:
        """Sysctl `key` ("net.ipv4.ip_forward") inside `host` (None: no such key)."""
        return view.sysctl(self, host, key)

    def dhcp_servers(self, host: str) -> list[RunningDhcpServer]:
        """The DHCP servers (dnsmasq) running in `host`'s namespace now, whoever started
        them: netprobe for the spec's `dhcp_servers`, or anyone in a namespace adopted.
        Each is read from its command line and configuration files; `leases()` reads its
        lease file."""
        return dnsmasq.running_servers(self.fd_of(host))

    def dhcp_lease(self, host: str, iface: str) -> ClientLease | None:
        """The lease netprobe's DHCP client (`dhcp: true`) on `host`:`iface` holds now: its
        address, prefix, router, DNS servers, server and lease time (None: netprobe runs
        no client there, or it holds no lease)."""
        self._host(host)
        return dhcp.client_lease(self, host, iface)

    def stop_controller(self, host: str, target: str, *, allow: int | None = None) -> int | None:
        """Stop netprobe's OpenFlow controller listening at `target` (tcp:IP:PORT or
        unix:PATH, as an OVS bridge names it) in `host`'s namespace, and wait until it is
        gone: its pid (None: nothing listens there). Only a controller this topology
        started is stopped, or the process whose pid is `allow` (the caller's consent);
        anyone else's raises TopologyError (`foreign_controller`'s reason), unsignalled."""
        self._host(host)
        return sdn.stop_listener(self, host, target, allow)

    def foreign_controller(self, host: str, target: str, *,
                           allow: int | None = None) -> str | None:
        """Why `stop_controller` would refuse the controller at `target` in `host`: "the
        controller at T in H is not netprobe's (pid N, COMMAND): netprobe never stops it"
        (None: nothing listens there, it is this topology's, or its pid is `allow`)."""
        self._host(host)
        return sdn.foreign(self, host, target, allow)

    def note_undo(self, entry: dict[str, Any]) -> None:
        """Record how to undo a change in a namespace netprobe does not own, before it is
        made, so that even a killed run can be put right by `netprobe clean`."""
        self.record.undo.append(entry)
        owner.update(self.record)

    def forget_undo(self, entry: dict[str, Any]) -> None:
        """Drop an entry `note_undo` recorded, once its change has been undone."""
        if entry in self.record.undo:
            self.record.undo.remove(entry)
            owner.update(self.record)

    def note_daemon(self, started: daemon.Daemon) -> None:
        """Keep a daemon started for this topology, and put it in the run's record at once,
        so that `netprobe clean` can stop it should this process be killed."""
        self.daemons.append(started)
        self.record.daemons.append(started.entry)
        owner.update(self.record)

    def fd_of(self, host: str) -> int:
        """A descriptor of `host`'s namespace (for setns), valid while the topology lives."""
        return self._host(host).fd

    def add_cleanup(self, callback: Callable[[], None]) -> None:
        """Run `callback` first thing at teardown (layers above close their sockets here)."""
        self._cleanups.append(callback)

    def _inside(self, host: str, argv: Sequence[str]) -> list[str]:
        """`argv` as run inside `host`'s namespace."""
        ns = self._host(host).ns
        return list(argv) if ns is None else netns.exec_argv(ns, list(argv))

    def _host(self, name: str) -> HostState:
        try:
            return self.hosts[name]
        except KeyError:
            raise NotFound(f"no host {name!r} in topology {self.spec.name!r}") from None

    # -- lifetime ------------------------------------------------------------------------

    def __enter__(self) -> Topology:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.teardown()
        except TopologyError:
            if exc is None:
                raise  # otherwise the original failure matters more

    def guard_signals(self) -> None:
        """Turn SIGTERM into SystemExit while any topology lives, so teardown runs."""
        _sigterm.arm()

    def keep(self) -> None:
        """Leave the topology up after this process ends (`netprobe topo up`)."""
        for fd in self.taps.values():
            make_persistent(fd)
        self.record = replace(self.record, persistent=True)
        with suppress(OSError):  # without it the lab is drawn from its file, as before
            stored.store_spec(self.spec, self.runid)
        owner.update(self.record)
        self._release()
        self.daemons.clear()  # they run on; `netprobe topo down` stops them by the record
        self._torn_down = True
        _live.remove(self)
        _sigterm.disarm_if_idle()

    def teardown(self) -> CleanReport:
        """Remove everything this topology made, in reverse order, and put back what it
        changed in namespaces it does not own; returns what it did (also kept as
        `teardown_report`): `removed_additions` names, per adopted namespace, each of its
        additions it took away there. Safe to call twice."""
        if self._torn_down:
            return self.teardown_report or CleanReport()
        self._torn_down = True
        _live.remove(self)
        report = self.teardown_report = CleanReport(removed_runs=[self.runid])
        problems: list[str] = []
        with _signals_deferred():
            while self._cleanups:
                try:
                    self._cleanups.pop()()
                except Exception as exc:  # a layer above failing must not stop teardown
                    problems.append(f"cleanup {exc!r}")
            self._stop_spawned()
            stuck = daemon.stop(self.daemons)
            stuck += daemon.stop_recorded(ovs.pidfile_daemons(self.runid))[1]  # unrecorded
            problems += stuck
            if not stuck:  # else the directory and the record are how `clean` finds them
                problems += ovs.remove_dirs(self.runid)
            problems += note_reverted(report, revert(self.record))
            self._release()
            # By prefix, not by self.hosts: a build may die between creating a namespace
            # and recording it.
            prefix = owner.ns_prefix(self.runid)
            mine = [n for n in reversed(netns.list_names()) if n.startswith(prefix)]
            failed = netns.delete_many(mine)
            report.removed_namespaces += [n for n in mine if n not in failed]
            problems += failed.values()
            if not stuck and not failed:  # else the record is how `clean` finds them
                owner.unregister(self.runid)
        _sigterm.disarm_if_idle()
        if problems:
            raise TopologyError("teardown was incomplete:\n  " + "\n  ".join(problems))
        return report

    def _stop_spawned(self) -> None:
        running = {p.pid: str(p.args) for p in self.spawned if p.poll() is None}
        process.stop(running)
        for proc in self.spawned:  # reap them
            with suppress(subprocess.TimeoutExpired):
                proc.wait(0.5)
        self.spawned.clear()

    def _release(self) -> None:
        for fd in self.taps.values():
            os.close(fd)
        self.taps.clear()
        for state in self.hosts.values():
            state.nl.close()
            os.close(state.fd)


_live: list[Topology] = []


def _not_installed(program: str) -> SetupError:
    return SetupError(
        f"cannot run {program!r}: not installed",
        remedy=f"install the package that provides {program}",
    )


class _SigtermGuard:
    """One SIGTERM handler for all live topologies: installed with the first (unless the
    program has its own), restored when the last one is gone."""

    def __init__(self) -> None:
        self.previous: Any = None
        self.armed = False

    def arm(self) -> None:
        if self.armed or not _in_main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            self.previous = signal.signal(signal.SIGTERM, _exit_on_signal)
            self.armed = True

    def disarm_if_idle(self) -> None:
        if self.armed and not _live and _in_main_thread():
            signal.signal(signal.SIGTERM, self.previous)
            self.armed = False


_sigterm = _SigtermGuard()


@atexit.register
def _teardown_leftovers() -> None:
    """Topologies built without `with` still go when the interpreter exits (SIGTERM too)."""
    for topo in reversed(list(_live)):
        try:
            topo.teardown()
        except TopologyError as exc:
            print(f"netprobe: {exc}", file=__import__("sys").stderr)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Let teardown finish under Ctrl-C or SIGTERM, then act on the signal."""
    if not _in_main_thread():
        yield
        return
    received: list[int] = []
    old = {
        s: signal.signal(s, lambda n, f: received.append(n))
        for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if received:
            if received[0] == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + received[0])
