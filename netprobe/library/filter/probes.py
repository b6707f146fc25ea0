"""A derived probe on one topology: the packet a rule's `Want` describes, who sends it,
where it must appear, and the barrier of its path.

INPUT and FORWARD probes are crafted frames sent by the filtered host's neighbour on the
interface the probe must come in by (the one the host routes its source address to: a
source no host holds is sent by that neighbour all the same, as a router would forward
it), to the host's MAC. OUTPUT probes leave from a real socket in the host. Whatever a
probe is, the barrier of its path skips netfilter: a frame of a local ethertype sent
into the same port, seen where it enters the host (INPUT, FORWARD) or leaves it
(OUTPUT).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace

from netprobe.topology import LiveRoute, Topology
from netprobe.traffic import ethernet, icmp_echo, new_nonce

from . import _frames, _icmp
from ._hostsend import host_sender
from .batch import Barrier, Point, Probe, flow_key
from .net import Planner
from .rules import Net, Rule, Unprobeable, Want

__all__ = ["Builder", "Built", "trace_key"]

_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1}
_DPORT = 9  # a port no rule names is as good as any: discard
_ZERO = "00:00:00:00:00:00"  # lo's addresses


def trace_key(proto: str, family: int, transport: bytes) -> bytes:
    """What names a probe in its trace events: ports, or ICMP type and identifier."""
    if proto == "icmp":
        return transport[0:1] + transport[4:6]
    return bytes([_NUMBERS[proto]]) + transport[0:4]


@dataclass(frozen=True)
class Built:
    """A probe of one rule, and what must go first (the flow opened the other way)."""

    rule: Rule
    probe: Probe
    barrier: Barrier
    key: bytes  # its trace_key
    proto: str
    summary: str
    opener: Probe | None = None
    opener_barrier: Barrier | None = None
    opener_key: bytes = b""  # the opener's trace key
    # established, if the opener the other way is dropped: the flow opened by the probe's
    # own side instead (its first packet, then the reply), the probe then its second packet
    own_way: tuple[tuple[Probe, Barrier], tuple[Probe, Barrier]] | None = None
    mark_at: int = 0  # where in the transport header the nonce is, if not at 8 or 20


@dataclass(frozen=True)
class _Ends:
    family: int
    src: str
    dst: str
    sender: tuple[str, str]  # the neighbour (host, interface) that sends it in
    iif: str  # the filtered host's interface it comes in by ("" for OUTPUT)
    oif: str  # … and goes out by ("" for INPUT)


class Builder:
    """Turns rules' wants into probes on a topology around the filtered host."""

    def __init__(self, topo: Topology, planner: Planner) -> None:
        self.topo, self.planner, self.host = topo, planner, planner.host
        self.own = [(i, ip) for h, i, ip in planner.addresses if h == self.host]
        self.others = [(h, i, ip) for h, i, ip in planner.addresses if h != self.host]
        self._routes: dict[str, LiveRoute | None] = {}
        self._table = [r for r in topo.live(self.host).routes if r.table == 254]
        self._macs: dict[tuple[str, str], str] = {}
        self._marks: dict[str, Barrier] = {}
        self._primed: set[str] = set()

    def _route(self, dst: str) -> LiveRoute | None:
        """The host's route to `dst`: the kernel's answer for the addresses of hosts,
        the longest prefix of its main table for others (one lookup each is slow)."""
        if dst not in self._routes:
            ip = ipaddress.ip_address(dst)
            if any(ip == a for _, _, a in self.planner.addresses):
                self._routes[dst] = self.topo.route_to(self.host, dst)
            else:
                found = [r for r in self._table if r.dst.version == ip.version and ip in r.dst]
                self._routes[dst] = max(found, key=lambda r: (r.dst.prefixlen, -r.metric),
                                        default=None)
        return self._routes[dst]

    def _mac(self, host: str, dev: str) -> str:
        if (host, dev) not in self._macs:
            self._macs[(host, dev)] = self.topo.mac(host, dev)
        return self._macs[(host, dev)]

    def variants(self, rule: Rule, want: Want) -> list[Built]:
        """A probe of `rule` for each way in and out of the host (and family) it can be
        reached by: one probe decided early proves only that its own way is shadowed."""
        ways: dict[tuple[int, str, str], _Ends] = {}
        for ends in self._all_ends(rule, want):
            ways.setdefault((ends.family, ends.iif, ends.oif), ends)
        if not ways:
            raise Unprobeable("no packet of this topology fits its addresses and interfaces")
        return [self.build(rule, want, ends) for ends in ways.values()]

    def build(self, rule: Rule, want: Want, ends: _Ends | None = None) -> Built:
        """The probe of `rule` (by `ends`, or the first way that fits); raises Unprobeable
        with the reason there is none."""
        if want.proto == "icmp":
            return self._icmp(rule, want, ends or self._ends(rule, want))
        state = want.state
        proto = want.proto or ("tcp" if state == "invalid" else "udp")
        if state == "invalid" and (proto != "tcp" or rule.hook == "output"):
            raise Unprobeable("matches ct state invalid (only a crafted TCP SYN+FIN is sent)")
        if state == "established" and proto != "udp":
            raise Unprobeable(f"matches ct state established over {proto} (an established "
                              "flow is opened first over UDP only)")
        ends = ends or self._ends(rule, want)
        sport = want.port("sport", self.planner.sport())
        dport = want.port("dport", _DPORT)
        if "lo" in (ends.iif, ends.oif):
            built = self._loopback(rule, ends, proto, sport, dport)
        elif rule.hook == "output":
            built = self._output(rule, ends, proto, sport, dport)
        else:
            built = self._crafted(rule, ends, proto, sport, dport,
                                  "SF" if state == "invalid" else "S")
        if state == "established":
            back = _Ends(ends.family, ends.dst, ends.src, self._reverse_sender(rule, ends),
                         ends.oif, ends.iif)
            if "lo" in (ends.iif, ends.oif):
                raise Unprobeable("matches ct state established on lo (not opened)")
            opener, barrier, okey = self._opener(rule, back, "udp", dport, sport)
            again = self._output(rule, ends, proto, sport, dport) if rule.hook == "output" \
                else self._crafted(rule, ends, proto, sport, dport)
            reply = self._opener(rule, back, "udp", dport, sport)[:2]
            built = replace(built, summary=built.summary + " (established: the flow opened "
                            "the other way first)", opener=opener, opener_barrier=barrier,
                            opener_key=okey, own_way=((again.probe, again.barrier), reply))
        return built

    def _icmp(self, rule: Rule, want: Want, ends: _Ends) -> Built:
        """An ICMP or ICMPv6 message of a type the rule allows, with the flow it needs
        (an echo request for a reply, a datagram for an error) opened first."""
        family = ends.family
        kind = _icmp.kind_of(want, family)
        if rule.hook == "output" or "lo" in (ends.iif, ends.oif):
            raise Unprobeable("matches ICMP sent by the host itself (not sent)")
        hops, ident = _icmp.hops(want, kind, family), self.planner.sport() & 0xFFFF
        host, dev = ends.sender
        macs = (self._mac(host, dev), self._mac(self.host, ends.iif))
        data, nonce = _icmp.message(kind, family, macs, ends.src, ends.dst, ident, hops)
        observe = self._inward(rule, ends, "icmp")
        port = f"{host}:{dev}"
        summary = (f"{_icmp.name(kind, family)} id {ident}, {ends.src} → {ends.dst}, sent by "
                   f"{port} into {self.host}:{ends.iif}")
        if ends.oif:
            summary += f", out of {self.host}:{ends.oif}"
        built = Built(rule, Probe(port, nonce, observe, port, data),
                      self._port_barrier(port, macs, ends.iif), bytes([kind]) +
                      struct.pack("!H", ident), "icmp", summary,
                      mark_at=data.find(nonce) - _icmp.transport_at(data))
        needs = _icmp.state(kind, family)
        if needs not in ("established", "related"):
            return built
        back = _Ends(family, ends.dst, ends.src, self._reverse_sender(rule, ends), ends.oif,
                     ends.iif)
        opener, barrier, okey = self._opener(rule, back, "icmp", ident, 0) \
            if needs == "established" else self._opener(rule, back, "udp", ident,
                                                        _icmp.QUOTED_DPORT)
        what = "the echo request" if needs == "established" else "the datagram it quotes"
        return replace(built, summary=f"{summary} ({needs}: {what} sent the other way first)",
                       opener=opener, opener_barrier=barrier, opener_key=okey)

    def _inward(self, rule: Rule, ends: _Ends, proto: str) -> Point:
        """Where a crafted probe must appear: out of the host (FORWARD), else its stack."""
        if rule.hook == "forward":
            self._prime(ends.dst, ends.oif)
            return Point("out", f"{self.host}:{ends.oif}")
        return Point("stack", self.host, ends.family, proto)

    def _port_barrier(self, port: str, macs: tuple[str, str], iif: str) -> Barrier:
        if port not in self._marks:
            mark = ethernet(*macs).probe()
            self._marks[port] = Barrier(port, mark[0], mark[1], Point("in", f"{self.host}:{iif}"))
        return self._marks[port]

    def _loopback(self, rule: Rule, ends: _Ends, proto: str, sport: int, dport: int) -> Built:
        """From a socket of the host to its own address, out and back in by lo; the
        barrier is a frame of a local ethertype sent into lo behind it (one backlog)."""
        inward = rule.hook == "input"
        observe = Point("stack", self.host, ends.family, proto) if inward \
            else Point("out", f"{self.host}:lo")
        # a TCP SYN to the host's own stack carries no nonce it shows: a path of its own
        # with no barrier (its delivery undecided), not one another lo probe's barrier closes
        path = ("lo", self.host, sport, dport) if proto == "tcp" and inward else ("lo", self.host)
        probe = replace(self._socket(ends, proto, sport, dport, observe), path=path)
        data, nonce = ethernet(_ZERO, _ZERO).probe()
        barrier = Barrier(f"{self.host}:lo", data, nonce,
                          Point("in" if inward else "out", f"{self.host}:lo"))
        key = bytes([_NUMBERS[proto]]) + struct.pack("!HH", sport, dport)
        summary = (f"{proto} {sport} → {dport}, {ends.src} → {ends.dst}, from a socket of "
                   f"{self.host}, by lo")
        return Built(rule, probe, barrier, key, proto, summary)

    def _ends(self, rule: Rule, want: Want) -> _Ends:
        for ends in self._all_ends(rule, want):
            return ends
        raise Unprobeable("no packet of this topology fits its addresses and interfaces")

    def _all_ends(self, rule: Rule, want: Want) -> Iterator[_Ends]:
        """Every (source, destination) the topology can send that fits, in order."""
        for family in sorted(want.families):
            yield from self._lo_ends(rule, want, family)
            for src, dst in self._pairs(rule.hook, want, family):
                iif = "" if rule.hook == "output" else self._dev(src)
                oif = "" if rule.hook == "input" else self._dev(dst)
                if not (_names(iif, want.iif) and _names(oif, want.oif)):
                    continue
                sender = (self.host, oif) if rule.hook == "output" else self._neighbour(src)
                if sender is not None:
                    yield _Ends(family, src, dst, sender, iif, oif)

    def _lo_ends(self, rule: Rule, want: Want, family: int) -> Iterator[_Ends]:
        """A way by lo, when the rule names it (in at INPUT, out at OUTPUT): from the
        host's loopback or own address to one of them."""
        tests = want.iif if rule.hook == "input" else want.oif if rule.hook == "output" else []
        if not any(not neg and any(_glob("lo", n) for n in names) for names, neg in tests):
            return
        mine = ["127.0.0.1" if family == 4 else "::1"] + [
            str(ip) for _, ip in self.own if ip.version == family]
        iif, oif = ("lo", "") if rule.hook == "input" else ("", "lo")
        if want.local is False or not (_names(iif, want.iif) and _names(oif, want.oif)):
            return
        for src in mine:
            for dst in mine:
                if _fits(src, want.saddr) and _fits(dst, want.daddr):
                    yield _Ends(family, src, dst, (self.host, "lo"), iif, oif)
                    return

    def _pairs(self, hook: str, want: Want, family: int) -> list[tuple[str, str]]:
        mine = [str(ip) for _, ip in self.own if ip.version == family]
        near, far = self.planner.client, self.planner.behind
        if want.state == "established":  # the reply of a flow the client side opened
            near, far = far, near
        srcs = mine if hook == "output" else self._theirs(family, near) \
            + _spoofs(want.saddr, family)
        dsts = mine if hook == "input" else self._theirs(family, far) \
            + _spoofs(want.daddr, family)
        if want.local is (hook != "input"):
            return []
        return [(s, d) for s in srcs if _fits(s, want.saddr) for d in dsts
                if _fits(d, want.daddr) and s != d and self._routed(hook, d)]

    def _theirs(self, family: int, first: str) -> list[str]:
        """The other hosts' addresses in `family`, those of host `first` first."""
        found = [(h != first, str(ip)) for h, _, ip in self.others if ip.version == family]
        return [ip for _, ip in sorted(found, key=lambda item: item[0])]

    def _routed(self, hook: str, dst: str) -> bool:
        """A destination the host forwards to (or sends to) over a known next hop."""
        if hook == "input":
            return True
        route = self._route(dst)
        if route is None or route.dev is None or route.type not in (None, "unicast"):
            return False
        hop = ipaddress.ip_address(route.gateway or dst)
        return any(ip == hop for _, _, ip in self.others)

    def _dev(self, peer: str) -> str:
        route = self._route(peer)
        return str(route.dev) if route is not None and route.dev is not None else ""

    def _neighbour(self, src: str) -> tuple[str, str] | None:
        """The neighbour that sends a packet from `src` in: its next hop, or `src`'s owner
        on the link, or any host on that link."""
        route = self._route(src)
        if route is None or route.dev is None:
            return None
        hop = ipaddress.ip_address(route.gateway or src)
        onlink = [(h, i, ip) for h, i, ip in self.others if ip.version == hop.version
                  and (r := self._route(str(ip))) is not None
                  and r.dev == route.dev and r.gateway is None]
        for h, i, _ in sorted(onlink, key=lambda item: item[2] != hop):
            return h, i
        return None

    def _reverse_sender(self, rule: Rule, ends: _Ends) -> tuple[str, str]:
        if rule.hook == "input":
            return (self.host, "")
        found = self._neighbour(ends.dst)
        if found is None:
            raise Unprobeable(f"no neighbour sends from {ends.dst} to open the flow")
        return found

    def _crafted(self, rule: Rule, ends: _Ends, proto: str, sport: int,
                 dport: int, flags: str = "S") -> Built:
        host, dev = ends.sender
        iif = ends.iif
        macs = (self._mac(host, dev), self._mac(self.host, iif))
        if proto == "icmp":
            frame = icmp_echo(*macs, ends.src, ends.dst, ident=sport)
            key = bytes([8 if ends.family == 4 else 128]) + struct.pack("!H", sport)
            what = f"ICMP echo-request id {sport}"
        if proto != "icmp":
            key = bytes([_NUMBERS[proto]]) + struct.pack("!HH", sport, dport)
            what = f"{proto} {sport} → {dport}" + (" SYN+FIN" if flags == "SF" else "")
        observe = self._inward(rule, ends, proto)
        if proto == "icmp":
            data, nonce = frame.probe()
        else:
            nonce = new_nonce()
            data = _frames.frame(macs, ends.src, ends.dst, proto, sport, dport, nonce, flags)
        port = f"{host}:{dev}"
        barrier = self._port_barrier(port, macs, iif)
        summary = f"{what}, {ends.src} → {ends.dst}, sent by {port} into {self.host}:{iif}"
        if ends.oif:
            summary += f", out of {self.host}:{ends.oif}"
        return Built(rule, Probe(port, nonce, observe, port, data), barrier, key, proto,
                     summary)

    def _opener(self, rule: Rule, back: _Ends, proto: str, sport: int, dport: int
                ) -> tuple[Probe, Barrier, bytes]:
        """The first packet of the flow, sent the other way (udp, or an icmp echo request
        with identifier `sport`), and its trace key."""
        if rule.hook == "input":  # the host's own socket opens it
            self._prime(back.dst, self._dev(back.dst))
            out = self._dev(back.dst)
            opener = self._socket(back, proto, sport, dport, Point("out", f"{self.host}:{out}"))
            key = bytes([8 if back.family == 4 else 128]) + struct.pack("!H", sport) \
                if proto == "icmp" else bytes([17]) + struct.pack("!HH", sport, dport)
            return opener, self._out_barrier(back.dst, out), key
        built = self._crafted(rule, back, proto, sport, dport)
        return built.probe, built.barrier, built.key

    def _output(self, rule: Rule, ends: _Ends, proto: str, sport: int, dport: int) -> Built:
        self._prime(ends.dst, ends.oif)
        observe = Point("out", f"{self.host}:{ends.oif}")
        probe = self._socket(ends, proto, sport, dport, observe)
        key = bytes([_NUMBERS[proto]]) + struct.pack("!HH", sport, dport)
        summary = (f"{proto} {sport} → {dport}, {ends.src} → {ends.dst}, from a socket of "
                   f"{self.host}, out of {self.host}:{ends.oif}")
        return Built(rule, probe, self._out_barrier(ends.dst, ends.oif), key, proto, summary)

    def _socket(self, ends: _Ends, proto: str, sport: int, dport: int,
                observe: Point) -> Probe:
        nonce = new_nonce()
        ident = flow_key(_NUMBERS[proto], sport, dport) if proto == "tcp" and \
            observe.kind != "stack" else nonce
        send = host_sender(self.topo.fd_of(self.host), ends.family, ends.src, ends.dst, proto,
                           sport, dport, nonce)
        return Probe(("out", observe.where), ident, observe, send=send)

    def _out_barrier(self, dst: str, dev: str) -> Barrier:
        port, macs = self.planner.hop(self.host, dst)
        data, nonce = ethernet(*macs).probe()
        return Barrier(port, data, nonce, Point("out", f"{self.host}:{dev}"))

    def _prime(self, dst: str, dev: str) -> None:
        """A neighbour entry for the next hop: a packet held for ARP would come late."""
        route = self._route(dst)
        hop = f"{dev} {route.gateway if route is not None and route.gateway else dst}"
        if hop in self._primed:
            return
        self._primed.add(hop)
        port, macs = self.planner.hop(self.host, dst)
        self.planner.prime(port, dst, macs[1])


def _fits(address: str, tests: list[tuple[list[Net], bool]]) -> bool:
    ip = ipaddress.ip_address(address)
    return all(any(ip.version == n.version and ip in n for n in nets) != neg
               for nets, neg in tests)


def _names(name: str, tests: list[tuple[list[str], bool]]) -> bool:
    return all(any(_glob(name, n) for n in names) != neg for names, neg in tests)


def _glob(name: str, pattern: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def _spoofs(tests: list[tuple[list[Net], bool]], family: int) -> list[str]:
    """An address in each network a match names (the second of it: rarely anyone's)."""
    out = []
    for nets, neg in tests:
        for net in nets:
            if not neg and net.version == family:
                out.append(str(net[min(net.num_addresses - 1, 2)]))
    return out
