"""What a build does in a namespace it does not own to objects that were there before.

An interface listed with no type in an adopted host (or the root one) is used as it
exists. netprobe adds the spec's addresses to it (those it holds already are left alone:
they are not netprobe's to remove), and in an adopted namespace gives it the mtu and up
state the spec asks; each change is written to the run's record before it is made, so a
teardown, `topo down` or `clean` after a kill puts it back (see undo.py). A route is
recorded the same way, and one the namespace has already is never taken over.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from ...errors import TopologyError
from .._model.spec import Host, Interface, IPInterface, Route
from .links import IFF_UP, netlink_errors, raise_up
from .live import Topology
from .netlink import RTM_GETROUTE, RTM_NEWLINK, LinkState, link_msg
from .preflight import namespace_of
from .undo import route_words

_MAIN_TABLE = 254
_IPV6_DEFAULT_METRIC = 1024  # what the kernel gives an IPv6 route without one


def settle_links(topo: Topology, host: Host, links: dict[str, LinkState]) -> None:
    """Give the existing interfaces of an adopted `host` the mtu and up state the spec
    asks for, noting the old ones first (in the root namespace nothing is changed)."""
    if host.owned or host.root:
        return
    ns = namespace_of(host, topo.runid)
    nl = topo.hosts[host.name].nl
    for iface in _existing(topo, host):
        link = links[iface.name]
        if iface.mtu is not None and iface.mtu != link.mtu:
            topo.note_undo({"ns": ns, "link": iface.name, "mtu": link.mtu})
            msg = link_msg(0, IFLA_IFNAME=iface.name, IFLA_MTU=iface.mtu)
            with netlink_errors(f"setting mtu {iface.mtu} on {host.name}:{iface.name}", ns):
                nl.request(msg, RTM_NEWLINK)
        was_up = bool(link.flags & IFF_UP)
        if iface.up != was_up:
            topo.note_undo({"ns": ns, "link": iface.name, "up": was_up})
            msg = link_msg(0, IFLA_IFNAME=iface.name)
            if iface.up:
                msg = raise_up(msg)
            else:
                msg["change"] = IFF_UP
            with netlink_errors(f"setting {host.name}:{iface.name} up or down", ns):
                nl.request(msg, RTM_NEWLINK)


def _existing(topo: Topology, host: Host) -> list[Interface]:
    """Existing interfaces the spec asks something of: not those discovery observed,
    which are described as found and must stay so (down ones too)."""
    return [
        i for i in host.interfaces
        if (host.name, i.name) in topo.spec.existing and i.observed is None
    ]


def addresses_to_add(topo: Topology, host: Host, iface: Interface) -> tuple[IPInterface, ...]:
    """The addresses of `iface` to add. On an existing link: those it does not hold yet,
    each noted for undoing first."""
    if (host.name, iface.name) not in topo.spec.existing:
        return iface.addresses  # netprobe's own link: its addresses go with it
    state = topo.hosts[host.name]
    index = state.nl.index(iface.name)
    held = {(a.address, a.prefixlen) for a in state.nl.addr_states() if a.index == index}
    ns = namespace_of(host, topo.runid)
    new = tuple(a for a in iface.addresses if (str(a.ip), a.network.prefixlen) not in held)
    for addr in new:
        topo.note_undo({"ns": ns, "address": str(addr), "dev": iface.name})
    return new


def route_to_add(topo: Topology, host: Host, route: Route, oif: int | None) -> bool:
    """Whether to add `route` to `host`, which netprobe does not own; if so, it is noted
    for undoing first. The same route there already is left alone (not netprobe's to
    remove); another with the same destination and metric is an error, never replaced."""
    state = topo.hosts[host.name]
    family = socket.AF_INET if route.family == 4 else socket.AF_INET6
    for msg in state.nl.dump(RTM_GETROUTE, family):
        if not _same_key(msg, route):
            continue
        gateway, dev = msg.get_attr("RTA_GATEWAY"), msg.get_attr("RTA_OIF")
        if gateway == route.via and oif in (None, dev):
            return False
        raise TopologyError(
            f"adding route {route_words(route)} to {host.name}: namespace "
            f"{state.ns or '(root)'} has a route to {route.to} with this metric already "
            f"(via {gateway or '-'}): netprobe does not replace routes it did not make",
            obj=route.to,
        )
    dev = topo.ifname(host.name, route.dev) if route.dev else None
    entry = {"to": route.to, "via": route.via, "dev": dev, "metric": route.metric}
    topo.note_undo({"ns": namespace_of(host, topo.runid), "route": entry})
    return True


def _same_key(msg: Any, route: Route) -> bool:
    """Whether kernel route `msg` has the destination and metric of `route` in the main
    table: what makes the kernel refuse to add `route` (EEXIST)."""
    table = msg.get_attr("RTA_TABLE") or msg["table"]
    if table != _MAIN_TABLE or msg["type"] != 1:  # unicast routes only
        return False
    if route.to in ("default", "default6"):
        dst, plen = None, 0
    else:
        net = ipaddress.ip_network(route.to, strict=False)
        dst, plen = str(net.network_address), net.prefixlen
    default_metric = 0 if route.family == 4 else _IPV6_DEFAULT_METRIC
    metric = route.metric if route.metric is not None else default_metric
    kernel_metric = msg.get_attr("RTA_PRIORITY") or 0
    return bool(
        msg["dst_len"] == plen and msg.get_attr("RTA_DST") == dst and kernel_metric == metric
    )
