"""A built topology: its hosts' namespaces, commands inside them, and its teardown."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import FrameType, TracebackType
from typing import Any

from ..errors import SetupError, TopologyError
from . import netns, owner
from .netlink import RTM_DELLINK, RTM_DELROUTE, NetlinkError, Rtnl, link_msg
from .spec import Host, Spec
from .tap import make_persistent

__all__ = ["HostState", "RunResult", "Topology"]


@dataclass(frozen=True)
class RunResult:
    """What a command run inside a host returned."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(eq=False)
class HostState:
    """A host as built: its namespace and what netprobe changed in it."""

    spec: Host
    ns: str | None  # name under /run/netns; None for the root namespace
    fd: int
    nl: Rtnl
    made_links: list[str] = field(default_factory=list)  # kernel names, non-owned hosts only
    added_routes: list[Any] = field(default_factory=list)  # to delete, adopted hosts only
    saved_sysctls: list[tuple[str, str]] = field(default_factory=list)  # (path, old value)


class Topology:
    """A live topology. Use as a context manager: teardown always runs on the way out."""

    def __init__(self, spec: Spec, record: owner.RunRecord) -> None:
        self.spec = spec
        self.record = record
        self.hosts: dict[str, HostState] = {}
        self.taps: dict[tuple[str, str], int] = {}
        self._torn_down = False
        self._old_sigterm: Any = None
        self._cleanups: list[Callable[[], None]] = []
        _live.append(self)

    # -- what users ask of it ----------------------------------------------------------

    @property
    def runid(self) -> str:
        return self.record.runid

    def namespace(self, host: str) -> str | None:
        """The /run/netns name of `host` (None for the root namespace)."""
        return self._host(host).ns

    def ifname(self, host: str, name: str) -> str:
        """The kernel's name of interface `name` of `host` (prefixed in the root namespace)."""
        return owner.root_ifname(self.runid, name) if self._host(host).spec.root else name

    def tap(self, host: str, name: str) -> int:
        """The open descriptor of TAP `name`: write a frame to send it, read to receive."""
        try:
            return self.taps[(host, name)]
        except KeyError:
            raise KeyError(f"{host}:{name} is not a TAP of this topology") from None

    def run(
        self,
        host: str,
        argv: Sequence[str],
        *,
        timeout: float = 60,
        input: str | None = None,
        check: bool = False,
    ) -> RunResult:
        """Run `argv` inside `host`'s namespace (as `ip netns exec` does)."""
        ns = self._host(host).ns
        full = list(argv) if ns is None else ["ip", "netns", "exec", ns, *argv]
        try:
            proc = subprocess.run(
                full, capture_output=True, text=True, timeout=timeout, input=input, check=False
            )
        except FileNotFoundError as exc:
            raise SetupError(
                f"cannot run {full[0]!r}: not installed",
                remedy=f"install the package that provides {full[0]}",
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise TopologyError(f"{' '.join(argv)} in {host} timed out after {timeout} s") from exc
        result = RunResult(proc.returncode, proc.stdout, proc.stderr)
        if check and not result.ok:
            raise TopologyError(
                f"{' '.join(argv)} in {host} failed ({proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        return result

    def mac(self, host: str, name: str) -> str:
        """The MAC address interface `name` of `host` has now (assigned or random)."""
        state = self._host(host)
        link = state.nl.links().get(self.ifname(host, name))
        if link is None:
            raise KeyError(f"{host} has no interface {name!r}")
        mac: str = link.get_attr("IFLA_ADDRESS")
        return mac

    def fd_of(self, host: str) -> int:
        """A descriptor of `host`'s namespace (for setns), valid while the topology lives."""
        return self._host(host).fd

    def add_cleanup(self, callback: Callable[[], None]) -> None:
        """Run `callback` first thing at teardown (layers above close their sockets here)."""
        self._cleanups.append(callback)

    def _host(self, name: str) -> HostState:
        try:
            return self.hosts[name]
        except KeyError:
            raise KeyError(f"no host {name!r} in topology {self.spec.name!r}") from None

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
        """Turn SIGTERM into SystemExit while the topology lives, so teardown runs."""
        if _in_main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            self._old_sigterm = signal.signal(signal.SIGTERM, _exit_on_signal)

    def keep(self) -> None:
        """Leave the topology up after this process ends (`netprobe topo up`)."""
        for fd in self.taps.values():
            make_persistent(fd)
        self.record = replace(self.record, persistent=True)
        owner.update(self.record)
        self._release()
        self._restore_sigterm()
        self._torn_down = True
        _live.remove(self)

    def teardown(self) -> None:
        """Remove everything this topology made, in reverse order. Safe to call twice."""
        if self._torn_down:
            return
        self._torn_down = True
        _live.remove(self)
        problems: list[str] = []
        with _signals_deferred():
            while self._cleanups:
                try:
                    self._cleanups.pop()()
                except Exception as exc:  # a layer above failing must not stop teardown
                    problems.append(f"cleanup {exc!r}")
            for state in reversed(list(self.hosts.values())):
                if not state.spec.owned:
                    problems += _undo_in_foreign(state)
            self._release()
            # By prefix, not by self.hosts: a build may die between creating a namespace
            # and recording it.
            prefix = owner.ns_prefix(self.runid)
            for name in reversed(netns.list_names()):
                if name.startswith(prefix):
                    netns.delete(name)
            owner.unregister(self.runid)
        self._restore_sigterm()
        if problems:
            raise TopologyError("teardown was incomplete:\n  " + "\n  ".join(problems))

    def _release(self) -> None:
        for fd in self.taps.values():
            os.close(fd)
        self.taps.clear()
        for state in self.hosts.values():
            state.nl.close()
            os.close(state.fd)

    def _restore_sigterm(self) -> None:
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None


_live: list[Topology] = []


@atexit.register
def _teardown_leftovers() -> None:
    """Topologies built without `with` still go when the interpreter exits (SIGTERM too)."""
    for topo in reversed(list(_live)):
        try:
            topo.teardown()
        except TopologyError as exc:
            print(f"netprobe: {exc}", file=__import__("sys").stderr)


def _undo_in_foreign(state: HostState) -> list[str]:
    """In a namespace netprobe does not own, remove exactly what it added."""
    problems = []
    for msg in reversed(state.added_routes):
        try:
            state.nl.request(msg, RTM_DELROUTE)
        except NetlinkError as exc:
            if exc.code not in (2, 3, 19):  # gone with its link already
                problems.append(f"route in {state.spec.name}: {exc}")
    for path, value in reversed(state.saved_sysctls):
        try:
            with netns.entered(state.fd), open(path, "w") as out:
                out.write(value)
        except OSError as exc:
            problems.append(f"restoring {path} in {state.spec.name}: {exc}")
    for name in reversed(state.made_links):
        try:
            state.nl.request(link_msg(0, IFLA_IFNAME=name), RTM_DELLINK)
        except NetlinkError as exc:
            if exc.code != 19:  # ENODEV: a veth whose peer went first
                problems.append(f"link {name} in {state.spec.name}: {exc}")
    return problems


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
