"""How the filter check reaches a policy line: who sends the probe, to which address,
through which port and next hop, and where it must come out.

Addresses, routes and next-hop MACs come from the hosts' kernels, whoever made them:
routes as the sending host would pick them (so a probe goes wherever that host's own
traffic would), next-hop MACs from the interface holding the address, or the sender's
neighbour table.
"""

from __future__ import annotations

import ipaddress
import itertools
import random
from dataclasses import dataclass, replace

from netprobe.errors import SpecError
from netprobe.topology import LiveRoute, Port, Topology
from netprobe.traffic import Template, decode, udp

from . import _frames, _learn
from .frames import marker, probe_frame
from .policy import Line, Network

__all__ = ["Plan", "Planner"]


@dataclass(frozen=True)
class Plan:
    """One probe of a line in one family."""

    line: Line
    family: int
    sender: str  # the host that sends it (the filtered host itself for OUTPUT)
    port: str  # HOST:IF it is sent into (OUTPUT: the host's egress, for the barrier)
    src: str  # source address ("" for OUTPUT: the kernel chooses)
    dst: str
    sport: int  # unique per probe: an OUTPUT SYN carries no nonce, its port names it
    observe: str  # INPUT: the filtered host; else HOST:IF where it must come out
    macs: tuple[str, str]  # the frame's source and destination MAC (next hop)
    frame: Template | None = None  # INPUT and FORWARD: the crafted probe (IPv4 lo: none,
    # the kernel refuses a crafted frame with a local source there; a socket sends it)
    barrier: Template | None = None  # OUTPUT: sent from the egress behind the probe
    opener: str = ""  # state established: the host whose socket opens the flow first

    @property
    def path(self) -> tuple[str, int, str, str]:
        """Probes sharing a path can serve as each other's barrier."""
        return (self.line.chain, self.family, self.port, self.observe)

    def matches(self, data: bytes) -> bool:
        """Is this captured frame the OUTPUT probe (known by its ports)?"""
        if self.line.proto not in ("tcp", "udp"):  # a raw or ICMP socket's: its payload
            return marker(self.sport) in data
        fields = decode(data)
        return (fields.get("l4.sport") == self.sport
                and fields.get("l4.dport") == self.line.port
                and ("tcp.flags" in fields) == (self.line.proto == "tcp"))

    @property
    def socket(self) -> bool:
        """An INPUT probe the host sends itself, out and back in by lo (IPv4 lo)."""
        return self.frame is None and self.line.chain == "input"

    def with_sport(self, sport: int) -> Plan:
        """The same probe from another source port (a fresh flow for conntrack)."""
        frame = None if self.frame is None else probe_frame(
            self.line, self.family, self.macs, self.src, self.dst, sport)
        return replace(self, sport=sport, frame=frame)


class _NoPath(Exception):
    """This topology cannot carry the probe (no such address, route or neighbour)."""


class Planner:
    """Turns policy lines into probes on one topology; remembers which probes got through
    (`barriers`, by path) so that later drops on the same path can be proven."""

    def __init__(self, topo: Topology, host: str, client: str, behind: str) -> None:
        self.names = list(topo.hosts)
        if host not in self.names:
            raise SpecError(f"no host {host!r} to filter in topology {topo.spec.name!r} "
                            f"(hosts: {', '.join(self.names)})")
        self.topo, self.host, self.client, self.behind = topo, host, client, behind
        self.links = [(h, i.name, a) for h in self.names for i in topo.live(h).interfaces
                      for a in i.addresses]
        self.addresses = [(h, i, a.ip) for h, i, a in self.links
                          if not (a.ip.is_link_local or a.ip.is_loopback)]
        self.barriers: dict[tuple[str, int, str, str], Plan] = {}
        self._routes: dict[tuple[str, str], LiveRoute] = {}
        self._primed: dict[tuple[str, str, str], bool] = {}
        self._macs: dict[tuple[str, str], str] = {}
        self._sports = itertools.count(random.randrange(20000, 50000, 1000))

    def mac(self, host: str, ifname: str) -> str:
        """An interface's MAC (cached: each lookup is a link dump)."""
        if (host, ifname) not in self._macs:
            self._macs[(host, ifname)] = self.topo.mac(host, ifname)
        return self._macs[(host, ifname)]

    def sport(self) -> int:
        """A source port not yet used in this run, so each probe's flow is its own."""
        return next(self._sports)

    def plan(self, line: Line, family: int) -> Plan | str:
        """The probe for `line` in `family`, or why this topology cannot send it."""
        try:
            if line.chain == "output":
                return self._output(line, family)
            src_host, src = self._source(line, family)
            opener = ""
            if line.chain == "input":
                dst, observe, opener = self._input_dest(line, family, src), self.host, self.host
            elif line.dnat:
                dst = self._own(line.dest(family), family, src)
                target = self._owner(line.dnat)
                observe, opener = self._ingress(target, src), target
            else:
                opener, dst = self._dest(line, family)
                observe = self._ingress(opener, src)
            port, macs = self.hop(src_host, dst)
            self._entry(line, src_host, dst, macs)
            sport = self.sport()
            local = line.iif == "lo" and family == 4  # sent from a socket: see `socket`
            return Plan(line, family, src_host, port, src, dst, sport, observe, macs,
                        frame=None if local else probe_frame(line, family, macs, src, dst,
                                                             sport),
                        opener=opener if line.state == "established" else "")
        except _NoPath as exc:
            return str(exc)

    def _source(self, line: Line, family: int) -> tuple[str, str]:
        """(host, address) the probe comes from: the neighbour on `in`'s link, or `from`."""
        if line.iif == "lo":
            if family == 4 and line.state == "established":
                raise _NoPath("an established flow over IPv4 loopback is not probed")
            return self.host, "127.0.0.1" if family == 4 else "::1"
        if not line.iif:
            return self._pick(line.source(family), family, self.client)
        return self._neighbour(line.iif, family, line.source(family))

    def _input_dest(self, line: Line, family: int, src: str) -> str:
        if line.own_if:
            return self._on(line.own_if, family, line.dest(family))
        if line.iif == "lo" and line.dest(family) is None:
            return src
        return self._own(line.dest(family), family, src)

    def _dest(self, line: Line, family: int) -> tuple[str, str]:
        """(host, address) a forward probe goes to: in `to`, or the neighbour on `out`'s link."""
        if line.oif and line.dest(family) is None:
            return self._neighbour(line.oif, family, None)
        found = self._pick(line.dest(family), family, self.behind)
        if line.oif and self.route(self.host, found[1]).dev != line.oif:
            raise _NoPath(f"{self.host} routes {found[1]} by "
                          f"{self.route(self.host, found[1]).dev}, not {line.oif}")
        return found

    def _entry(self, line: Line, host: str, dst: str, macs: tuple[str, str]) -> None:
        """Refuse a probe that would not enter by `in`, or a solicitation sent from afar."""
        if line.iif and line.iif != "lo" and macs[1] != self.mac(self.host, line.iif):
            raise _NoPath(f"{host}'s route to {dst} does not enter {self.host} by {line.iif}")
        if line.proto == "icmpv6" and line.icmp_number(6) in range(133, 138) and \
                self.route(host, dst).gateway is not None:
            raise _NoPath(f"{host} is not on {self.host}'s link: neighbour discovery "
                          "does not cross a router")

    def _neighbour(self, ifname: str, family: int, net: Network | None) -> tuple[str, str]:
        """A host with an address on the link of the filtered host's `ifname` (in `net`)."""
        prefixes = [a.network for h, i, a in self.links if h == self.host and i == ifname
                    and a.version == family and not a.ip.is_link_local]
        for h, _, ip in self.addresses:
            if h != self.host and ip.version == family and any(ip in p for p in prefixes) \
                    and (net is None or ip in net):
                return h, str(ip)
        within = f" in {net}" if net is not None else ""
        raise _NoPath(f"no neighbour on the link of {self.host}:{ifname} has an IPv{family} "
                      f"address{within}")

    def _on(self, ifname: str, family: int, net: Network | None) -> str:
        """The filtered host's IPv`family` address on `ifname` (lo: loopback)."""
        if ifname == "lo" and net is None:
            return "127.0.0.1" if family == 4 else "::1"
        for h, i, ip in self.addresses:
            if h == self.host and i == ifname and ip.version == family and (
                    net is None or ip in net):
                return str(ip)
        raise _NoPath(f"{self.host}:{ifname} has no IPv{family} address")

    def _owner(self, address: str) -> str:
        """The host holding `address` (a DNAT target)."""
        ip = ipaddress.ip_address(address)
        found = next((h for h, _, a in self.addresses if a == ip), None)
        if found is None:
            raise _NoPath(f"no host of this topology has the DNAT target {address}")
        return found

    def _output(self, line: Line, family: int) -> Plan:
        if line.oif and line.dest(family) is None:
            dst_host, dst = (self.host, self._on("lo", family, None)) if line.oif == "lo" \
                else self._neighbour(line.oif, family, None)
        else:
            dst_host, dst = self._pick(line.dest(family), family, self.client)
        if line.own_if:
            src = self._on(line.own_if, family, line.source(family))
        else:
            src = self._own(line.source(family), family, dst) if line.source(family) else ""
        port, macs = self.hop(self.host, dst)
        if line.oif and Port.parse(port).ifname != line.oif:
            raise _NoPath(f"{self.host} routes {dst} by {Port.parse(port).ifname}, "
                          f"not {line.oif}")
        if dst_host != self.host:
            self.prime(port, dst, macs[1])
        prefsrc = src or self.route(self.host, dst).src or ""
        barrier = udp(macs[0], macs[1], prefsrc, dst, sport=self.sport(), dport=9)
        observe = port if dst_host == self.host else self._ingress(dst_host, prefsrc)
        return Plan(line, family, self.host, port, src, dst, self.sport(), observe, macs,
                    barrier=barrier)

    def _ingress(self, host: str, peer: str) -> str:
        """Where `host` receives traffic from `peer`: the way its route back goes."""
        return f"{host}:{self.route(host, peer).dev}"

    def _pick(self, net: Network | None, family: int, default: str) -> tuple[str, str]:
        """(host, address): a host other than the filtered one with an address in `net`
        (the default host, the client, the host behind, then the others), or the default
        host's address when the line names no network."""
        found = [(h, str(ip)) for h, _, ip in self.addresses
                 if ip.version == family and h != self.host
                 and (ip in net if net is not None else h == default)]
        rank = [default, self.client, self.behind]
        found.sort(key=lambda item: rank.index(item[0]) if item[0] in rank else len(rank))
        if not found and net is None and default not in self.names:  # bad input: stop
            raise SpecError(f"no host {default!r} in this topology: name one with the "
                            f"{'behind' if default == self.behind else 'client'} parameter")
        if not found:
            raise _NoPath(f"no host but {self.host} has an IPv{family} address in {net}"
                          if net is not None else f"{default} has no IPv{family} address")
        return found[0]

    def _own(self, net: Network | None, family: int, peer: str) -> str:
        """The filtered host's address: in `net`, or the one it would use toward `peer`."""
        if net is None:
            return str(self.route(self.host, peer).src)
        for h, _, ip in self.addresses:
            if h == self.host and ip.version == family and ip in net:
                return str(ip)
        raise _NoPath(f"{self.host} has no IPv{family} address in {net}")

    def route(self, host: str, dst: str) -> LiveRoute:
        """The route `host`'s kernel picks for `dst` (cached); raises _NoPath when there is
        none."""
        if (host, dst) not in self._routes:
            route = self.topo.route_to(host, dst)
            if route is None or route.dev is None:
                raise _NoPath(f"{host} has no route to {dst}")
            self._routes[(host, dst)] = route
        return self._routes[(host, dst)]

    def hop(self, host: str, dst: str) -> tuple[str, tuple[str, str]]:
        """The port `host` sends toward `dst` from (HOST:IF), and (its MAC, the next hop's
        MAC): the next hop's interface in the topology, else `host`'s neighbour table.
        Raises _NoPath when there is no route or no MAC is known."""
        if host == self.host and _frames.address(dst).is_loopback:
            return f"{host}:lo", ("00:00:00:00:00:00", "00:00:00:00:00:00")
        route = self.route(host, dst)
        dev, hop = str(route.dev), route.gateway or dst
        if dev == "lo":
            return f"{host}:lo", ("00:00:00:00:00:00", "00:00:00:00:00:00")
        hop_ip = _frames.address(hop)
        owner = next(((h, i) for h, i, ip in self.addresses
                      if ip == hop_ip), None)
        if owner is not None:
            mac = self.mac(*owner)
        else:  # a next hop outside the topology: ask the sender's neighbour table
            address = ipaddress.ip_address(hop)
            entry = next((n for n in self.topo.live(host).neighbours if n.dev == dev
                          and ipaddress.ip_address(n.ip) == address), None)
            if entry is None or entry.mac is None:
                raise _NoPath(f"{host} knows no MAC for its next hop {hop} on {dev}")
            mac = entry.mac
        return f"{host}:{dev}", (self.mac(host, dev), mac)

    def prime(self, port: str, dst: str, mac: str) -> bool:
        """Give the host of `port` a neighbour entry for its next hop toward `dst` (MAC
        `mac`) before a burst: a packet held back by address resolution would arrive after
        its barrier. In a namespace netprobe made, the entry is written (STALE, as ARP or
        ND leave it); in an adopted one, whose tables are not netprobe's to write, the next
        hop asks for the host's address and the host learns it as real traffic teaches it.
        False: the entry is not there (a probe through it may arrive late)."""
        found = Port.parse(port)
        host, dev = found.host, found.ifname
        hop = self.route(host, dst).gateway or dst
        key = (host, dev, hop)
        if key not in self._primed:
            if self.topo.spec.host(host).owned:
                self.topo.run(host, ["ip", "neigh", "replace", hop, "lladdr", mac, "dev", dev,
                                     "nud", "stale"], check=True)
                self._primed[key] = True
            else:
                self._primed[key] = self._taught(host, dev, hop, mac)
        return self._primed[key]

    def primed(self, port: str, dst: str) -> bool:
        """Did `prime` leave the host of `port` an entry for its next hop toward `dst`
        (True when it was never asked to)?"""
        found = Port.parse(port)
        try:
            hop = self.route(found.host, dst).gateway or dst
        except _NoPath:
            return True
        return self._primed.get((found.host, found.ifname, hop), True)

    def _taught(self, host: str, dev: str, hop: str, mac: str) -> bool:
        """Have the next hop `hop` ask for `host`'s address on `dev`, and wait until `host`
        has noted it (bounded); False if it did not, or no host here holds `hop`."""
        if _learn.known(self.topo, host, dev, hop):
            return True
        hop_ip = _frames.address(hop)
        owner = next(((h, i) for h, i, a in self.links if a.ip == hop_ip), None)
        target = next((a.ip for h, i, a in self.links if h == host and i == dev
                       and a.version == hop_ip.version and (hop_ip in a.network
                                                            or a.ip.is_link_local)), None)
        if owner is None or target is None:
            return False
        _learn.teach(self.topo, f"{owner[0]}:{owner[1]}", mac, hop, str(target),
                     self.mac(host, dev))
        return _learn.learned(self.topo, host, dev, hop)
