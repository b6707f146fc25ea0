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
from netprobe.traffic import Template, decode, tcp, udp

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
    frame: Template | None = None  # INPUT and FORWARD: the crafted probe
    barrier: Template | None = None  # OUTPUT: sent from the egress behind the probe

    @property
    def path(self) -> tuple[str, int, str, str]:
        """Probes sharing a path can serve as each other's barrier."""
        return (self.line.chain, self.family, self.port, self.observe)

    def matches(self, data: bytes) -> bool:
        """Is this captured frame the OUTPUT probe (known by its ports)?"""
        fields = decode(data)
        return (fields.get("l4.sport") == self.sport
                and fields.get("l4.dport") == self.line.port
                and ("tcp.flags" in fields) == (self.line.proto == "tcp"))

    def with_sport(self, sport: int) -> Plan:
        """The same probe from another source port (a fresh flow for conntrack)."""
        frame = None if self.frame is None else _frame(self.line, self.macs, self.src,
                                                        self.dst, sport)
        return replace(self, sport=sport, frame=frame)


class _NoPath(Exception):
    """This topology cannot carry the probe (no such address, route or neighbour)."""


def _frame(line: Line, macs: tuple[str, str], src: str, dst: str, sport: int) -> Template:
    craft = tcp if line.proto == "tcp" else udp
    return craft(macs[0], macs[1], src, dst, sport=sport, dport=line.port)


class Planner:
    """Turns policy lines into probes on one topology; remembers which probes got through
    (`barriers`, by path) so that later drops on the same path can be proven."""

    def __init__(self, topo: Topology, host: str, client: str, behind: str) -> None:
        self.names = list(topo.hosts)
        if host not in self.names:
            raise SpecError(f"no host {host!r} to filter in topology {topo.spec.name!r} "
                            f"(hosts: {', '.join(self.names)})")
        self.topo, self.host, self.client, self.behind = topo, host, client, behind
        self.addresses = [(h, i.name, a.ip) for h in self.names
                          for i in topo.live(h).interfaces for a in i.addresses
                          if not (a.ip.is_link_local or a.ip.is_loopback)]
        self.barriers: dict[tuple[str, int, str, str], Plan] = {}
        self._routes: dict[tuple[str, str], LiveRoute] = {}
        self._primed: set[tuple[str, str, str]] = set()
        self._sports = itertools.count(random.randrange(20000, 50000, 1000))

    def sport(self) -> int:
        """A source port not yet used in this run, so each probe's flow is its own."""
        return next(self._sports)

    def plan(self, line: Line, family: int) -> Plan | str:
        """The probe for `line` in `family`, or why this topology cannot send it."""
        try:
            if line.chain == "output":
                return self._output(line, family)
            src_host, src = self._pick(line.source(family), family, self.client)
            if line.chain == "input":
                dst, observe = self._own(line.dest(family), family, src), self.host
            else:
                dst_host, dst = self._pick(line.dest(family), family, self.behind)
                observe = self._ingress(dst_host, src)
            port, macs = self._hop(src_host, dst)
            sport = self.sport()
            return Plan(line, family, src_host, port, src, dst, sport, observe, macs,
                        frame=_frame(line, macs, src, dst, sport))
        except _NoPath as exc:
            return str(exc)

    def _output(self, line: Line, family: int) -> Plan:
        dst_host, dst = self._pick(line.dest(family), family, self.client)
        src = self._own(line.source(family), family, dst) if line.source(family) else ""
        port, macs = self._hop(self.host, dst)
        self._prime(port, dst, macs[1])
        prefsrc = src or self.route(self.host, dst).src or ""
        barrier = udp(macs[0], macs[1], prefsrc, dst, sport=self.sport(), dport=9)
        return Plan(line, family, self.host, port, src, dst, self.sport(),
                    self._ingress(dst_host, prefsrc), macs, barrier=barrier)

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

    def _hop(self, host: str, dst: str) -> tuple[str, tuple[str, str]]:
        """The port `host` sends toward `dst` from, and (its MAC, the next hop's MAC)."""
        route = self.route(host, dst)
        dev, hop = str(route.dev), route.gateway or dst
        owner = next(((h, i) for h, i, ip in self.addresses
                      if ip == ipaddress.ip_address(hop)), None)
        if owner is not None:
            mac = self.topo.mac(*owner)
        else:  # a next hop outside the topology: ask the sender's neighbour table
            address = ipaddress.ip_address(hop)
            entry = next((n for n in self.topo.live(host).neighbours if n.dev == dev
                          and ipaddress.ip_address(n.ip) == address), None)
            if entry is None or entry.mac is None:
                raise _NoPath(f"{host} knows no MAC for its next hop {hop} on {dev}")
            mac = entry.mac
        return f"{host}:{dev}", (self.topo.mac(host, dev), mac)

    def _prime(self, port: str, dst: str, mac: str) -> None:
        """Give the host a neighbour entry for the OUTPUT next hop, as ARP or ND would:
        a packet held back by address resolution would arrive after its barrier."""
        found = Port.parse(port)
        host, dev = found.host, found.ifname
        hop = self.route(host, dst).gateway or dst
        if (host, dev, hop) not in self._primed:
            self.topo.run(host, ["ip", "neigh", "replace", hop, "lladdr", mac, "dev", dev,
                                 "nud", "stale"], check=True)
            self._primed.add((host, dev, hop))
