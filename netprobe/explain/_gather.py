"""The live state an explanation reads, whoever made the network.

Every host of the topology is read from its kernel (interfaces, addresses, masters, bridge
port states, routes, neighbours, veth peers across namespaces), so an adopted namespace
is explained as well as one netprobe built. Hosts in namespaces netprobe did not create
are read only where the probe goes (the walk, the trace): elsewhere their traffic is
someone else's, and would be blamed. In the root namespace only the topology's own links
count: the machine's are never traced.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..topology import Topology
from ..topology._kernel import owner
from ..topology._kernel.state import LiveHost, LiveRoute, NsidLookup, peers, read, route_to
from ..traffic._droptrace import Wiring
from . import _counters as counters
from ._facts import LinkFacts, PathFacts, StaleNeighbour, dst_of, src_of, unicast_dst
from ._walk import Device, Network, Step, walk, walk_from


@dataclass
class Live:
    """The topology's hosts as their kernels have them now, by kernel device names."""

    hosts: dict[str, LiveHost]
    peers: Mapping[Device, Device]
    foreign: set[str]  # hosts in namespaces netprobe did not create (adopted, root)
    root: set[str]  # … of which the machine's own namespace
    names: dict[str, dict[int, str]]  # host → ifindex → kernel name
    routes: dict[tuple[str, str], LiveRoute | None] = field(default_factory=dict)

    def route(self, host: str, dst: str, topo: Topology) -> LiveRoute | None:
        """The route `host` picks for `dst` (asked once per explanation)."""
        key = (host, dst)
        if key not in self.routes:
            got = route_to(topo.hosts[host].nl, dst, self.names[host])
            self.routes[key] = _in_table(self.hosts[host], dst, got) if got is not None else None
        return self.routes[key]

    def network(self, topo: Topology) -> Network:
        """The state the walk reads."""
        return Network(self.hosts, self.peers, lambda h, d: self.route(h, d, topo))


def _in_table(host: LiveHost, dst: str, got: LiveRoute) -> LiveRoute:
    """The routing table's entry behind the kernel's answer `got` (which names `dst`
    itself): the route a person reads and fixes. `got` when none matches."""
    address = ipaddress.ip_address(dst)
    fits = [
        r for r in host.routes
        if r.dst.version == address.version and address in r.dst
        and (r.dev, r.gateway) == (got.dev, got.gateway) and r.type == got.type
    ]  # fmt: skip
    if not fits:
        return got
    best = max(fits, key=lambda r: (r.dst.prefixlen, -r.metric))
    return replace(best, src=best.src or None)


def read_live(topo: Topology) -> Live:
    """Every host of `topo`, read now."""
    hosts: dict[str, LiveHost] = {}
    names: dict[str, dict[int, str]] = {}
    foreign, root = set(), set()
    mine = owner.ns_prefix(topo.runid)
    for name, state in topo.hosts.items():
        found = read(state.nl, name)
        names[name] = {i.index: i.name for i in found.interfaces}
        if state.ns is None:  # the machine's: only the topology's own links
            prefix = owner.root_ifname(topo.runid, "")
            kept = tuple(i for i in found.interfaces if i.name.startswith(prefix))
            found = LiveHost(name, kept, found.routes, found.neighbours)
            root.add(name)
        if state.ns is None or not state.ns.startswith(mine):
            foreign.add(name)
        hosts[name] = found
    states = topo.hosts.items()
    lookup = NsidLookup({n: s.nl for n, s in states}, {n: s.fd for n, s in states})
    return Live(hosts, peers(hosts, lookup), foreign, root, names)


def wiring(live: Live) -> Wiring:
    """Which host each kernel device name belongs to, and the veth pairs."""
    names: dict[str, list[str]] = {}
    for host, state in live.hosts.items():
        for iface in state.interfaces:
            if iface.kind != "loopback":
                names.setdefault(iface.name, []).append(host)
    return Wiring({k: tuple(v) for k, v in names.items()}, dict(live.peers))


def link_facts(
    topo: Topology, live: Live, host: str, declared: Mapping[str, str]
) -> dict[str, LinkFacts]:
    """The facts of each of `host`'s devices (bridge port details only where there is a
    bridge: they cost an `ip` run)."""
    state = live.hosts[host]
    bridged = any(i.kind == "bridge" for i in state.interfaces)
    details = counters.links(topo, host) if bridged else {}
    out = {}
    for iface in state.interfaces:
        info = details.get(iface.name, {}).get("linkinfo", {})
        port = info.get("info_slave_data", {}) if info.get("info_slave_kind") == "bridge" else {}
        ageing = info.get("info_data", {}).get("ageing_time")
        far = live.peers.get((host, iface.name))
        out[iface.name] = LinkFacts(
            iface.name,
            iface.mac or None,
            iface.master,
            declared.get(iface.name),
            iface.port_state,
            iface.up,
            iface.kind,
            tuple(str(a.ip) for a in iface.addresses if a.version == 4),
            iface.mtu,
            port.get("learning"),
            port.get("flood"),
            ageing / 100 if isinstance(ageing, int | float) and iface.kind == "bridge" else None,
            far[1] if far is not None and far[0] == host else None,
            tuple(str(a.ip) for a in iface.addresses if a.version == 6 and not a.is_link_local),
        )
    return out


def declared_masters(topo: Topology) -> dict[str, dict[str, str]]:
    """The masters netprobe itself was asked to set (host → device → bridge, kernel
    names): what a port was meant for, which no kernel can tell. The spec says only what
    netprobe adds; everything else is read from the kernel."""
    out: dict[str, dict[str, str]] = {}
    for host in topo.spec.hosts:
        out[host.name] = {
            topo.ifname(host.name, i.name): topo.ifname(host.name, i.master)
            for i in host.interfaces
            if i.master
        }
    return out


def path_facts(topo: Topology, live: Live, sender: Device, probe: Mapping[str, Any],
               data: bytes) -> PathFacts:  # fmt: skip
    """The probe's way by the tables, its answer's way back, and what is wrong on them."""
    dst, src = dst_of(probe), src_of(probe)
    if dst == "?" or sender[0] not in live.hosts:
        return PathFacts()
    net = live.network(topo)
    steps = walk(net, sender, dst, unicast_dst(probe))
    own = live.route(sender[0], dst, topo)
    end = net.holder(dst)
    back: tuple[Step, ...] = ()
    own_back: tuple[Step, ...] = ()
    if end is not None and src != "?" and end[0] != sender[0]:
        back = walk_from(net, end[0], src)
        if own is not None and own.src and own.src != src:
            own_back = walk_from(net, end[0], own.src)
    addresses = tuple(
        str(a.ip)
        for i in live.hosts[sender[0]].interfaces
        if i.kind != "loopback"
        for a in i.addresses
        if not a.is_link_local
    )
    stale = tuple(_stale(net, sender[0], own, steps))
    return PathFacts(steps, back, own, True, stale, own_back, addresses, _df(data))


def _stale(net: Network, sender: str, own: LiveRoute | None,
           steps: tuple[Step, ...]) -> Iterable[StaleNeighbour]:  # fmt: skip
    """Neighbour entries of the sender and the routers on the way, for their next hop,
    that name a MAC other than the one its holder has now."""
    hops: list[tuple[str, str | None, str | None]] = []
    if own is not None:
        hops.append((sender, own.gateway or None, own.dev))
    hops += [(s.host, s.via, s.oif) for s in steps if s.action == "forward"]
    for host, via, dev in hops:
        if via is None or dev is None:
            continue
        entry = net.hosts[host].neighbour(via)
        holder = net.holder(via)
        link = net.link(*holder) if holder is not None else None
        if entry is None or entry.mac is None or holder is None or link is None:
            continue
        if entry.dev != dev:
            continue
        if entry.mac.lower() != link.mac.lower() and entry.state not in ("failed", "incomplete"):
            yield StaleNeighbour(host, via, dev, entry.mac, entry.state, holder, link.mac)


def _df(data: bytes) -> bool:
    """Whether the frame's packet may not be fragmented on the way (IPv4 DF, or IPv6)."""
    at = 12
    ethertype = struct.unpack_from("!H", data, at)[0] if len(data) >= 14 else 0
    while ethertype in (0x8100, 0x88A8) and at + 6 <= len(data):
        at += 4
        ethertype = struct.unpack_from("!H", data, at)[0]
    if ethertype == 0x86DD:
        return True
    return ethertype == 0x0800 and len(data) > at + 8 and bool(data[at + 2 + 6] & 0x40)


def relevant(live: Live, steps: Iterable[Step], extra: Iterable[str]) -> list[str]:
    """The hosts whose state and counters bear on the probe: every host netprobe made,
    and of the others those on its way."""
    on_way = {d[0] for s in steps for d in (*s.crossed, (s.host, ""))} | set(extra)
    return [h for h in live.hosts if h not in live.foreign or h in on_way]
