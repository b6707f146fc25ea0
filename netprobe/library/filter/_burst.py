"""Policy lines decided in one burst, and the marks that close a path.

The crafted probes of every INPUT and FORWARD line of state new go through the batch
engine at once: each sending port's path is closed by a frame of a local ethertype,
seen where it enters the filtered host (netfilter never sees it); INPUT is judged in the
host's stack (raw sockets), FORWARD where the probe leaves the host (so a NAT rewrite
is seen as done). A probe sent alone (an established flow, lo, a mismatch probed again
for its evidence) gets the same mark behind it when it has no accepted probe to follow.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netprobe.traffic import decode, ethernet, find_nonce, ports, udp

from .batch import Barrier, Outcome, Point, Probe, pinned, run_batch
from .frames import marker
from .net import Plan, Planner
from .observe import TIMEOUT, Stack, send_from_host, watch

_ZERO = "00:00:00:00:00:00"


@dataclass(frozen=True)
class Found:
    """A batched probe's outcome, where it was looked for, and how it was rewritten."""

    outcome: Outcome
    where: str
    rewrite: str | None = None  # forward, arrived: "" unchanged, else what changed


class Paths:
    """Where each probe enters and leaves the filtered host (by next-hop MAC and route)."""

    def __init__(self, planner: Planner) -> None:
        self.planner, self.host, topo = planner, planner.host, planner.topo
        self._by_mac = {planner.mac(self.host, i.name).lower(): i.name
                        for i in topo.live(self.host, addresses=False).interfaces
                        if i.name != "lo"}
        self._marks: dict[tuple[str, int, str, tuple[str, str]], Barrier] = {}

    def entry(self, plan: Plan) -> str | None:
        """The host's interface the probe enters by: its next hop's, or (sent from
        beyond a router) the one the host routes its source by. None: unknown, or lo."""
        direct = self._by_mac.get(plan.macs[1].lower())
        if direct is not None or plan.sender == self.host:
            return direct
        try:
            dev = self.planner.route(self.host, plan.src).dev
        except Exception:  # no route back: probed alone, which says so
            return None
        return None if dev in (None, "lo") else str(dev)

    def egress(self, plan: Plan) -> str | None:
        """The host's interface a forward probe leaves by (to its DNAT target, if any)."""
        try:
            dev = self.planner.route(self.host, plan.line.dnat or plan.dst).dev
        except Exception:  # no route: probed alone, which says so
            return None
        return None if dev in (None, "lo") else str(dev)

    def batchable(self, plan: Plan) -> bool:
        """A crafted INPUT or FORWARD probe of state new, whose way in is known."""
        line = plan.line
        if plan.frame is None or plan.opener or line.chain not in ("input", "forward"):
            return False
        return self.entry(plan) is not None and (
            line.chain == "input" or self.egress(plan) is not None)

    def mark(self, plan: Plan) -> Barrier | None:
        """What closes the probe's path, seen where it enters the host: a frame of a local
        ethertype from its neighbour (or sent into lo, for a probe the host sends itself
        there), or from beyond a router a datagram the routers forward as they do the
        probe (seen before the host's netfilter). None: the way in is not known."""
        iif = self.entry(plan)
        if iif is None and plan.sender == self.host and plan.port == f"{self.host}:lo":
            iif = "lo"
        if iif is None:
            return None
        key = (plan.port, plan.family, iif, plan.macs)
        if key not in self._marks:
            self._marks[key] = self._mark(plan, iif)
        return self._marks[key]

    def prime(self, plan: Plan) -> bool:
        """Resolve a forward probe's next hop on the host (toward its DNAT target, if
        any) before the burst; False: the host holds no entry for it, so the probe may be
        held back resolving it and arrive after its mark."""
        dst = plan.line.dnat or plan.dst
        try:
            port, macs = self.planner.hop(self.host, dst)
        except Exception:  # no route or MAC: the probe is not batchable, or fails alone
            return True
        return self.planner.prime(port, dst, macs[1])

    def _mark(self, plan: Plan, iif: str) -> Barrier:
        if iif == "lo":
            data, nonce = ethernet(_ZERO, _ZERO).probe()
        elif plan.macs[1].lower() in self._by_mac:
            data, nonce = ethernet(*plan.macs).probe()
        else:
            data, nonce = udp(*plan.macs, plan.src, plan.dst, sport=9, dport=9).probe()
        return Barrier(plan.port, data, nonce, Point("in", f"{self.host}:{iif}"))


def run(paths: Paths, plans: Sequence[Plan]) -> list[Found]:
    """Send every plan's probe in one burst, each port's path closed by its mark."""
    host, topo = paths.host, paths.planner.topo
    probes: list[Probe] = []
    barriers: dict[Hashable, Barrier] = {}
    sent: list[tuple[Plan, bytes]] = []
    late = {id(plan) for plan in plans if plan.line.chain == "forward" and not paths.prime(plan)}
    for plan in sorted(plans, key=lambda p: p.port):  # one send_many per port
        mark = paths.mark(plan)
        assert plan.frame is not None and mark is not None
        path = (plan.port, plan.family, mark.observe)
        barriers.setdefault(path, mark)
        data, nonce = plan.frame.probe()
        if plan.line.chain == "input":
            observe = Point("stack", host, plan.family, plan.line.proto)
        else:
            observe = Point("out", f"{host}:{paths.egress(plan)}")
        probes.append(Probe(path, nonce, observe, plan.port, data))
        sent.append((plan, data))
    outcomes = run_batch(topo, probes, barriers)
    found = {id(plan): _found(plan, data, probe, _unless_late(outcome, id(plan) in late))
             for (plan, data), probe, outcome in zip(sent, probes, outcomes, strict=True)}
    return [found[id(plan)] for plan in plans]


def _unless_late(outcome: Outcome, late: bool) -> Outcome:
    """A drop is not proven when the probe may still be waiting for its next hop's MAC."""
    if outcome.arrived is False and late:
        return Outcome(None, "its next hop on the host was not resolved before the burst: "
                             "it may have arrived after its mark; absence is not proven")
    return outcome


def _found(plan: Plan, data: bytes, probe: Probe, outcome: Outcome) -> Found:
    where = f"{plan.observe}'s stack" if probe.observe.kind == "stack" else probe.observe.where
    if plan.line.chain != "forward" or outcome.frame is None:
        return Found(outcome, where)
    return Found(outcome, where, changes(decode(data), decode(outcome.frame)))


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """How a forwarded copy's fields differ from those of the frame sent ("": unchanged)."""
    changed = []
    for label, names in (("src", ("ip.src", "ip6.src")), ("dst", ("ip.dst", "ip6.dst")),
                         ("sport", ("l4.sport",)), ("dport", ("l4.dport",))):
        for key in names:
            if key in before and before.get(key) != after.get(key):
                changed.append(f"{label} {before[key]} → {after.get(key)}")
    return ", ".join(changed)


def as_stated(plan: Plan, seen: bytes) -> bool:
    """Did the forwarded copy come out rewritten as the line states (snat, dnat)?"""
    line, fields = plan.line, decode(seen)
    src = fields.get("ip.src", fields.get("ip6.src"))
    dst = fields.get("ip.dst", fields.get("ip6.dst"))
    if line.snat and str(src) != line.snat:
        return False
    port_ok = not line.dnat_port or fields.get("l4.dport") == line.dnat_port
    return not line.dnat or (str(dst) == line.dnat and port_ok)


class Marked:
    """A capture read only for one mark's frames (what enters, never what leaves)."""

    def __init__(self, source: Any, nonce: bytes) -> None:
        self.source, self.nonce = source, nonce

    def fileno(self) -> int:
        """The capture's descriptor."""
        return int(self.source.fileno())

    def read(self) -> list[bytes]:
        """The mark's frames queued (never blocks)."""
        frames = self.source.read()
        return [f.data for f in frames if not getattr(f, "outgoing", False)
                and find_nonce(f.data) == self.nonce]


def loopback(paths: Paths, plan: Plan, stack: Stack) -> tuple[bool | None, str]:
    """IPv4 lo: the host's own socket sends the probe to its own address, out and back
    in by lo (OUTPUT, then INPUT); its stack's raw socket says whether INPUT let it in.
    A mark sent into lo behind it closes the path."""
    topo, port = paths.planner.topo, f"{paths.host}:lo"
    source = stack.source(4, plan.line.proto)
    source.drain()
    capture = ports(topo).capture(port)
    capture.drain()
    data, nonce = ethernet(_ZERO, _ZERO).probe()
    with pinned():
        error = send_from_host(topo, plan)
        ports(topo).sender(port).send(data)
    seen, how = watch([source, Marked(capture, nonce)], lambda packet: carries(plan, packet),
                      nonce, TIMEOUT)
    if error and not seen:
        return None, (f"its socket could not send it ({error}): the OUTPUT hook refused "
                      "it, so INPUT was never reached")
    return seen, f"sent from {paths.host}'s own socket to {plan.dst} by lo; {how}"


def carries(plan: Plan, packet: bytes) -> bool:
    """Is this IPv4 packet (a raw socket's: no Ethernet header) the socket's probe?"""
    if plan.line.proto not in ("tcp", "udp"):
        return marker(plan.sport) in packet
    at = (packet[0] & 0x0F) * 4 if packet else 0
    if len(packet) < at + 4:
        return False
    return struct.unpack_from("!HH", packet, at) == (plan.sport, plan.line.port)
