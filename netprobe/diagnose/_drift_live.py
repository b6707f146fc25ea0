"""The live side of `netprobe drift`, read without changing anything: one namespace's
links, addresses (with whether each has a lifetime) and routes through netlink dumps, and
the sysctls asked for from /proc/sys."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .._privilege import require_root
from ..errors import TopologyError
from ..topology._kernel import netns
from ..topology._kernel.netlink import Rtnl
from ..topology._kernel.state import IPInterface, LiveHost, read
from ..topology._model.persistent import PersistentConfig
from ..topology._model.sysctlfile import sysctl_path

_IFA_F_PERMANENT = 0x80  # set on addresses without a lifetime (`ip addr add`, ifupdown)

# Read in every namespace: forwarding, whatever the configuration says of it.
GLOBAL_SYSCTLS = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding")
PER_INTERFACE = ("net/ipv4/conf/{}/forwarding", "net/ipv6/conf/{}/forwarding")


@dataclass(frozen=True)
class LiveState:
    """One namespace as its kernel has it now: the host (interfaces, addresses, routes),
    the addresses that came with a lifetime (DHCP, SLAAC: a reboot asks for them again),
    and sysctls by /proc/sys path ("net/ipv4/ip_forward" → "1")."""

    host: LiveHost
    sysctls: Mapping[str, str] = field(default_factory=dict)
    dynamic: frozenset[tuple[str, IPInterface]] = frozenset()


def sysctl_paths(config: PersistentConfig) -> tuple[str, ...]:
    """The /proc/sys paths of the sysctls `config` sets."""
    return tuple(dict.fromkeys(sysctl_path(key) for key, _value, _where in config.sysctls))


def read_live(*, netns: str | None = None, pid: int | None = None,
              sysctls: Iterable[str] = ()) -> LiveState:
    """The live state of the namespace `netns` (a name in /run/netns), of process `pid`'s,
    or of the one netprobe runs in; `sysctls` (paths) are read besides forwarding's."""
    if netns is not None and pid is not None:
        raise TopologyError("give a namespace name or a pid, not both")
    fd, name = _open(netns, pid)
    try:
        with Rtnl(fd) as nl:
            host = read(nl, name, neighbours=False)
            dynamic = _dynamic(nl, host)
        values = _sysctls(fd, [*GLOBAL_SYSCTLS, *_per_interface(host), *sysctls])
    finally:
        if fd is not None:
            os.close(fd)
    return LiveState(host, values, dynamic)


def _open(name: str | None, pid: int | None) -> tuple[int | None, str]:
    """A descriptor of the namespace asked for (None: this one), and what to call it."""
    if name is None and pid is None:
        return None, "this machine's namespace"
    require_root()  # entering another namespace takes CAP_SYS_ADMIN
    path = f"/proc/{pid}/ns/net" if pid is not None else f"{netns.NETNS_DIR}/{name}"
    what = f"process {pid}'s namespace" if pid is not None else f"namespace {name}"
    if name is not None and ("/" in name or name in (".", "..")):
        raise TopologyError(f"no namespace named {name!r} (see `ip netns list`)")
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC), what
    except FileNotFoundError:
        missing = f"no process {pid}" if pid is not None else f"no namespace named {name!r}"
        raise TopologyError(f"{missing} (see `ip netns list`)") from None
    except OSError as exc:
        raise TopologyError(f"cannot open {what}: {exc.strerror}") from None


def _dynamic(nl: Rtnl, host: LiveHost) -> frozenset[tuple[str, IPInterface]]:
    names = {i.index: i.name for i in host.interfaces}
    return frozenset(
        (names.get(a.index, str(a.index)), ipaddress.ip_interface(f"{a.address}/{a.prefixlen}"))
        for a in nl.addr_states()
        if not a.flags & _IFA_F_PERMANENT
    )


def _per_interface(host: LiveHost) -> list[str]:
    return [key.format(i.name) for i in host.interfaces if i.kind != "loopback"
            for key in PER_INTERFACE]  # fmt: skip


def _sysctls(fd: int | None, paths: list[str]) -> dict[str, str]:
    """Each path's value, read inside the namespace (/proc/sys/net shows the reader's);
    a path the kernel does not have is left out."""
    out = {}
    with netns.entered(fd):
        for path in dict.fromkeys(paths):
            if ".." in path.split("/"):
                continue
            try:
                with open(f"/proc/sys/{path}") as f:
                    out[path] = " ".join(f.read().split())
            except OSError:
                continue
    return out
