"""What a host is now, read from its kernel: interfaces, addresses, routes, neighbours.

A topology's spec says what netprobe adds; the kernel says what is there, including what
someone else made in an adopted namespace. Everything that asks about a host reads this.
Messages are parsed for the attributes wanted only (struct, not pyroute2's full decode):
reading a hundred namespaces must take a fraction of a second.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from .netlink import HDR, NetlinkError, Rtnl, attr, scan, text

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_RTM_GETLINK, _RTM_GETADDR, RTM_GETROUTE, _RTM_GETNEIGH, _RTM_GETNSID = 18, 22, 26, 30, 90
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
RTMSG = struct.Struct("=BBBBBBBBI")  # struct rtmsg
_NDMSG = struct.Struct("=BBHiHBB")
_LINK_ATTRS = {1, 3, 4, 5, 10, 12, 16, 18, 33, 37}  # address name mtu link master protinfo ...
_ARPHRD_LOOPBACK, _ARPHRD_NONE = 772, 65534
_ROUTE_TYPES = {1: "unicast", 2: "local", 3: "broadcast", 6: "blackhole",
                7: "unreachable", 8: "prohibit"}
_NUD = {0x01: "incomplete", 0x02: "reachable", 0x04: "stale", 0x08: "delay",
        0x10: "probe", 0x20: "failed", 0x40: "noarp", 0x80: "permanent"}
_PROTOS = {2: "kernel", 3: "boot", 4: "static", 16: "dhcp", 186: "bgp", 188: "ospf"}
STP_STATES = {0: "disabled", 1: "listening", 2: "learning", 3: "forwarding", 4: "blocking"}


@dataclass(frozen=True)
class LiveInterface:
    """One interface as the kernel has it now."""

    name: str
    index: int
    kind: str  # veth, bridge, tap, tun, macvlan, vlan, bond, openvswitch, loopback, device …
    mac: str
    mtu: int
    up: bool
    carrier: bool
    master: str | None = None
    addresses: tuple[IPInterface, ...] = ()
    port_state: str | None = None  # as a port of a bridge: forwarding, blocking …
    link_index: int | None = None  # a veth's peer (or a macvlan's parent), by ifindex
    link_nsid: int | None = None  # … in the namespace with this id, when not this one

    @property
    def ipv4(self) -> tuple[ipaddress.IPv4Interface, ...]:
        """Its IPv4 addresses, in the kernel's order."""
        return tuple(a for a in self.addresses if isinstance(a, ipaddress.IPv4Interface))


@dataclass(frozen=True)
class LiveRoute:
    """A route of a host's routing tables (not the local table)."""

    dst: ipaddress.IPv4Network | ipaddress.IPv6Network
    type: str = "unicast"
    gateway: str | None = None
    dev: str | None = None
    src: str | None = None
    metric: int = 0
    table: int = 254
    proto: str = "boot"  # kernel: made with an address; boot, static: by a person or tool

    def __str__(self) -> str:
        default = self.dst.prefixlen == 0
        words = ["default" if default else str(self.dst)]
        if self.type != "unicast":
            words.insert(0, self.type)
        for key, value in (("via", self.gateway), ("dev", self.dev), ("src", self.src)):
            if value:
                words += [key, value]
        return " ".join(words)


@dataclass(frozen=True)
class Neighbour:
    """A neighbour table entry: who `ip` is on `dev`, and how sure the kernel is."""

    ip: str
    mac: str | None
    dev: str
    state: str  # permanent, reachable, stale, failed, incomplete …


@dataclass(frozen=True)
class LiveHost:
    """A host's interfaces, routes and neighbours at the moment they were read."""

    name: str
    interfaces: tuple[LiveInterface, ...] = ()
    routes: tuple[LiveRoute, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()
    _by_name: dict[str, LiveInterface] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update({i.name: i for i in self.interfaces})

    def interface(self, name: str) -> LiveInterface | None:
        """The interface called `name` (None when there is none)."""
        return self._by_name.get(name)

    def holder(self, ip: str | IPAddress) -> LiveInterface | None:
        """The interface that holds address `ip` (None: this host holds it nowhere)."""
        address = ipaddress.ip_address(ip)
        return next((i for i in self.interfaces for a in i.addresses if a.ip == address), None)

    def ports_of(self, bridge: str) -> tuple[LiveInterface, ...]:
        """The interfaces whose master is `bridge`."""
        return tuple(i for i in self.interfaces if i.master == bridge)

    def neighbour(self, ip: str) -> Neighbour | None:
        """The neighbour entry for `ip`, if the kernel has one."""
        address = ipaddress.ip_address(ip)
        return next((n for n in self.neighbours if ipaddress.ip_address(n.ip) == address), None)


def read(nl: Rtnl, name: str, *, neighbours: bool = True) -> LiveHost:
    """Everything of one namespace through its netlink socket `nl`."""
    bare = links(nl)
    names = {link.index: link.name for link in bare}
    addresses: dict[int, list[IPInterface]] = {}
    for index, address in _addresses(nl):
        addresses.setdefault(index, []).append(address)
    interfaces = tuple(replace(i, addresses=tuple(addresses.get(i.index, ()))) for i in bare)
    routes = tuple(_routes(nl, names))
    found = tuple(_neighbours(nl, names)) if neighbours else ()
    return LiveHost(name, interfaces, routes, found)


def links(nl: Rtnl) -> tuple[LiveInterface, ...]:
    """The namespace's interfaces with their masters and port states, but no addresses:
    one dump (two with bridge ports), for questions asked on every expectation."""
    found = [_link(chunk) for chunk in nl.raw(_RTM_GETLINK, _IFINFO.pack(0, 0, 0, 0, 0))]
    names = {link.index: link.name for link, _master in found}
    states = nl.bridge_port_states() if any(master for _l, master in found) else {}
    return tuple(
        replace(
            link,
            master=names.get(master) if master else None,
            port_state=STP_STATES.get(states[link.name]) if link.name in states else None,
        )
        for link, master in found
    )


def route_to(
    nl: Rtnl, dst: str, names: Mapping[int, str], src: str | None = None
) -> LiveRoute | None:
    """The route the kernel picks for `dst` now (`ip route get`); None: unreachable."""
    address = ipaddress.ip_address(dst)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    attrs = attr(1, address.packed)
    if src:
        attrs += attr(2, ipaddress.ip_address(src).packed)
    body = RTMSG.pack(family, address.max_prefixlen, 32 if src else 0, 0, 0, 0, 0, 0, 0)
    try:
        replies = nl.raw(RTM_GETROUTE, body + attrs, dump=False)
    except NetlinkError:  # ENETUNREACH, EHOSTUNREACH …
        return None
    routes = [r for chunk in replies if (r := _route(chunk, names, wanted=None)) is not None]
    return routes[0] if routes else None


def nsid_of(nl: Rtnl, ns_fd: int) -> int | None:
    """The id under which `nl`'s namespace knows the namespace `ns_fd` (None: none yet)."""
    body = struct.pack("=Bxxx", socket.AF_UNSPEC) + attr(3, struct.pack("=I", ns_fd))
    for chunk in nl.raw(_RTM_GETNSID, body, dump=False):
        raw = scan(chunk, HDR.size + 4, {1}).get(1)
        if raw is not None:
            (nsid,) = struct.unpack("=i", raw[:4])
            return nsid if nsid >= 0 else None
    return None


Pairs = dict[tuple[str, str], tuple[str, str]]


def peers(hosts: Mapping[str, LiveHost], nsid: NsidLookup) -> Pairs:
    """The far end of every veth whose both ends are among `hosts`: (host, ifname) → same.

    A veth names its peer by ifindex and, when the peer is elsewhere, by the id its
    namespace has here. Ifindexes repeat across namespaces, so the pair is found by both
    ends naming each other; only when that is ambiguous is the namespace id asked.
    """
    ends = [(h, i) for h in hosts.values() for i in h.interfaces if i.kind == "veth"]
    by_index: dict[int, list[tuple[LiveHost, LiveInterface]]] = {}
    for host, iface in ends:
        by_index.setdefault(iface.index, []).append((host, iface))
    found: Pairs = {}
    for host, iface in ends:
        candidates = [
            (h, i) for h, i in by_index.get(iface.link_index or -1, ())
            if i.link_index == iface.index
            and (h is host) == (iface.link_nsid is None)
            and not (h is host and i is iface)
        ]
        if len(candidates) > 1 and iface.link_nsid is not None:
            want = iface.link_nsid
            candidates = [(h, i) for h, i in candidates if nsid(host.name, h.name) == want]
        if len(candidates) == 1:
            far_host, far = candidates[0]
            found[(host.name, iface.name)] = (far_host.name, far.name)
    return found


class NsidLookup:
    """Namespace ids between hosts, asked of the kernel once each: (from, of) → id."""

    def __init__(self, sockets: Mapping[str, Rtnl], fds: Mapping[str, int]) -> None:
        self.sockets, self.fds = sockets, fds
        self.cache: dict[tuple[str, str], int | None] = {}

    def __call__(self, here: str, there: str) -> int | None:
        key = (here, there)
        if key not in self.cache:
            self.cache[key] = nsid_of(self.sockets[here], self.fds[there])
        return self.cache[key]


def _link(chunk: bytes) -> tuple[LiveInterface, int | None]:
    """One link, and its master's ifindex."""
    _family, arphrd, index, flags, _change = _IFINFO.unpack_from(chunk, HDR.size)
    attrs = scan(chunk, HDR.size + _IFINFO.size, _LINK_ATTRS)
    info = scan(attrs[18], 0, {1, 2}) if 18 in attrs else {}
    kind = text(info.get(1))
    if kind == "tun" and scan(info.get(2, b""), 0, {3}).get(3, b"\1")[:1] == b"\2":
        kind = "tap"  # IFLA_TUN_TYPE: IFF_TAP
    if kind is None:
        kind = {_ARPHRD_LOOPBACK: "loopback", _ARPHRD_NONE: "device"}.get(arphrd, "device")
    link = LiveInterface(
        name=text(attrs.get(3)) or str(index),
        index=index,
        kind=kind,
        mac=":".join(f"{b:02x}" for b in attrs.get(1, b"")),
        mtu=_u32(attrs.get(4)),
        up=bool(flags & 1),
        carrier=bool(attrs.get(33, b"\0")[0]),
        link_index=_u32(attrs.get(5)) or None,
        link_nsid=struct.unpack("=i", attrs[37][:4])[0] if 37 in attrs else None,
    )
    return link, (_u32(attrs[10]) if 10 in attrs else None)


def _u32(raw: bytes | None) -> int:
    return int(struct.unpack("=I", raw[:4])[0]) if raw else 0


def _addresses(nl: Rtnl) -> Iterable[tuple[int, IPInterface]]:
    for chunk in nl.raw(_RTM_GETADDR, _IFADDR.pack(0, 0, 0, 0, 0)):
        family, prefixlen, _flags, _scope, index = _IFADDR.unpack_from(chunk, HDR.size)
        attrs = scan(chunk, HDR.size + _IFADDR.size, {1, 2})
        raw = attrs.get(2) or attrs.get(1)
        if raw is not None:
            ip = socket.inet_ntop(family, raw)
            yield index, ipaddress.ip_interface(f"{ip}/{prefixlen}")


def _routes(nl: Rtnl, names: Mapping[int, str]) -> Iterable[LiveRoute]:
    for family in (socket.AF_INET, socket.AF_INET6):
        for chunk in nl.raw(RTM_GETROUTE, RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)):
            route = _route(chunk, names, wanted=set(_ROUTE_TYPES) - {2, 3})
            if route is not None and route.table != 255:
                yield route


def _route(chunk: bytes, names: Mapping[int, str], wanted: set[int] | None) -> LiveRoute | None:
    family, dst_len, _src, _tos, table, proto, _scope, rtype, _fl = RTMSG.unpack_from(
        chunk, HDR.size
    )
    if wanted is not None and (rtype not in wanted or table == 255):  # 255: local table
        return None
    attrs = scan(chunk, HDR.size + RTMSG.size, {1, 4, 5, 6, 7, 15})
    zero = "0.0.0.0" if family == socket.AF_INET else "::"
    dst = socket.inet_ntop(family, attrs[1]) if 1 in attrs else zero
    if 15 in attrs:
        table = _u32(attrs[15])
    return LiveRoute(
        dst=ipaddress.ip_network(f"{dst}/{dst_len}", strict=False),
        type=_ROUTE_TYPES.get(rtype, str(rtype)),
        gateway=socket.inet_ntop(family, attrs[5]) if 5 in attrs else None,
        dev=names.get(_u32(attrs[4])) if 4 in attrs else None,
        src=socket.inet_ntop(family, attrs[7]) if 7 in attrs else None,
        metric=_u32(attrs.get(6)),
        table=table,
        proto=_PROTOS.get(proto, str(proto)),
    )


def _neighbours(nl: Rtnl, names: Mapping[int, str]) -> Iterable[Neighbour]:
    for chunk in nl.raw(_RTM_GETNEIGH, _NDMSG.pack(0, 0, 0, 0, 0, 0, 0)):
        family, _p1, _p2, index, state, _flags, _type = _NDMSG.unpack_from(chunk, HDR.size)
        attrs = scan(chunk, HDR.size + _NDMSG.size, {1, 2})
        if 1 not in attrs or family not in (socket.AF_INET, socket.AF_INET6):
            continue
        lladdr = attrs.get(2)
        yield Neighbour(
            ip=socket.inet_ntop(family, attrs[1]),
            mac=":".join(f"{b:02x}" for b in lladdr) if lladdr else None,
            dev=names.get(index, str(index)),
            state=next((word for bit, word in sorted(_NUD.items(), reverse=True)
                        if state & bit), "none"),
        )
