"""A live topology's hosts as their kernels have them: the answers `Topology` gives.

Read fresh on every call (a check's own probes change neighbour tables and counters),
in the host's namespace, whether netprobe built it or adopted it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import TYPE_CHECKING

from .._model.port import Port, host_and_ifname
from . import netns, owner
from .state import LiveHost, LiveRoute, NsidLookup, links, peers, read, route_to

if TYPE_CHECKING:
    from .live import Topology


def live(topo: Topology, host: str, *, addresses: bool = True) -> LiveHost:
    """What `host` is now (`addresses=False`: its interfaces only, in one dump). In the
    root namespace, the topology's own links go by the names the spec gives them
    (without the run's prefix); the rest by the kernel's."""
    state = topo._host(host)
    found = read(state.nl, host) if addresses else LiveHost(host, links(state.nl))
    if not state.spec.root:
        return found
    prefix = owner.root_ifname(topo.runid, "")
    names = {i.name: i.name.removeprefix(prefix) for i in found.interfaces}
    return replace(
        found,
        interfaces=tuple(
            replace(i, name=names[i.name], master=names.get(i.master or "", i.master))
            for i in found.interfaces
        ),
        routes=tuple(replace(r, dev=names.get(r.dev or "", r.dev)) for r in found.routes),
        neighbours=tuple(replace(n, dev=names.get(n.dev, n.dev)) for n in found.neighbours),
        _by_name={},
    )


def everything(topo: Topology) -> dict[str, LiveHost]:
    """Every host of the topology, read now."""
    return {name: live(topo, name) for name in topo.hosts}


def peer(topo: Topology, port: str | Port) -> Port | None:
    """The far end of the veth at `port` among the topology's hosts (None: not a veth,
    or its far end is in a namespace the topology does not hold)."""
    host, ifname = host_and_ifname(port, None)
    hosts = everything(topo)
    states = topo.hosts.items()
    lookup = NsidLookup({n: s.nl for n, s in states}, {n: s.fd for n, s in states})
    far = peers(hosts, lookup).get((host, ifname))
    return Port(*far) if far else None


def holder(topo: Topology, ip: str) -> Port | None:
    """The host and interface of the topology that hold address `ip` now (None: none)."""
    for name in topo.hosts:
        found = live(topo, name).holder(ip)
        if found is not None:
            return Port(name, found.name)
    return None


def kernel_route(topo: Topology, host: str, dst: str, src: str | None = None) -> LiveRoute | None:
    """The route `host`'s kernel picks for `dst` now (None: it has none)."""
    ipaddress.ip_address(dst)
    state = topo._host(host)
    names = {i.index: i.name for i in live(topo, host).interfaces}
    return route_to(state.nl, dst, names, src)


def sysctl(topo: Topology, host: str, key: str) -> str | None:
    """Sysctl `key` ("net.ipv4.ip_forward") as `host` has it (None: no such key)."""
    path = "/proc/sys/" + key.replace(".", "/")
    with netns.entered(topo.fd_of(host)):  # /proc/sys/net is the reader's namespace's
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return None
