"""Send probes and decide, with evidence, where they came out and in what shape.

Positive expectations poll until every probe has shown up (or a deadline). Negative ones
("must not appear at P") are decided by a barrier: a frame known to be delivered, sent
behind the probes along the same path. Once the barrier has reached P, the probes had
their chance: deciding costs a round trip, not a fixed sleep. Where no barrier can go,
a bounded quiet period decides, and the evidence says so. Capture loss, or a barrier
that never arrived, makes the verdict INCONCLUSIVE, never PASS.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import TrafficError
from ..topology import Topology
from ..topology.spec import Bond, Bridge, Tap
from ..traffic.capture import Captured, wait_readable
from ..traffic.craft import LOCAL_ETHERTYPE, Template, ethernet, find_nonce
from ..traffic.decode import Fields, decode
from ..traffic.port import VM_SUFFIX, ports
from .match import Match, compare, expected_fields
from .outcome import Copy, Outcome, PortReport, Verdict

__all__ = ["Barrier", "Where", "at", "at_any", "at_exactly", "end_ports", "expect", "nowhere"]


@dataclass(frozen=True)
class Where:
    """Where the probes must appear (`ports`) and, among `among`, nowhere else."""

    kind: Literal["at", "at_any", "at_exactly", "nowhere"]
    ports: tuple[str, ...] = ()
    among: tuple[str, ...] | None = None  # None: every end-host port of the topology


def at(port: str) -> Where:
    return Where("at", (port,))


def at_any(ports: Iterable[str]) -> Where:
    return Where("at_any", tuple(ports))


def at_exactly(ports: Iterable[str], *, among: Iterable[str] | None = None) -> Where:
    """At each of `ports` and at no other port (flooding; the ingress port included)."""
    return Where("at_exactly", tuple(ports), tuple(among) if among is not None else None)


def nowhere(*, among: Iterable[str] | None = None) -> Where:
    return Where("nowhere", (), tuple(among) if among is not None else None)


@dataclass(frozen=True)
class Barrier:
    """A frame that is delivered to every port the probes must not reach."""

    frame: Template
    port: str | None = None  # where it is sent; default: the probes' port


def end_ports(topo: Topology) -> list[str]:
    """Where frames leave the fabric: host interfaces that are neither bridges, bonds nor
    their ports, plus the VM side of every TAP. The root namespace is not included."""
    out = []
    for host in topo.spec.hosts:
        if host.root:
            continue
        for iface in host.interfaces:
            if not iface.up or isinstance(iface.kind, (Bridge, Bond)):
                continue
            if isinstance(iface.kind, Tap):
                out.append(f"{host.name}:{iface.name}{VM_SUFFIX}")
            elif iface.master is None:
                out.append(f"{host.name}:{iface.name}")
    return out


def expect(
    topo: Topology,
    frame: Template,
    port: str,
    where: Where,
    *,
    match: Match | None = None,
    count: int = 1,
    barrier: Barrier | Literal["auto"] | None = "auto",
    timeout: float = 1.0,
    quiet: float = 0.05,
) -> Outcome:
    """Send `count` probes of `frame` into `port` and judge them against `where`."""
    match = match or Match()
    positive = list(where.ports)
    negative: list[str] = []
    if where.kind in ("at_exactly", "nowhere"):
        among = where.among if where.among is not None else end_ports(topo)
        negative = [p for p in among if p not in positive]
    run = _Run(topo, frame, port, positive, negative, match, count)
    chosen = _barrier(barrier, frame, port) if negative else None
    if not _barrier_targets(chosen, port, negative, positive):
        chosen = None  # nowhere for it to prove anything: fall back to a quiet period
    run.start(chosen)
    decided_by = run.collect(where.kind, timeout, quiet)
    return run.outcome(where, decided_by)


def _barrier_targets(
    barrier: Barrier | None, port: str, negative: Sequence[str], positive: Sequence[str]
) -> list[str]:
    if barrier is None:
        return []
    ingress = barrier.port or port
    return [p for p in negative if p != ingress] or list(positive)


def _barrier(
    barrier: Barrier | Literal["auto"] | None, frame: Template, port: str
) -> Barrier | None:
    if barrier != "auto":
        return barrier
    sent = decode(frame.data)  # same source MAC and tags: it teaches the bridge nothing new
    tags = tuple(vid for _, vid in sent.get("vlan", ()))
    return Barrier(_broadcast(sent.get("eth.src", "02:00:00:00:00:00"), tags), port)


@functools.lru_cache(maxsize=256)
def _broadcast(src: str, tags: tuple[int, ...]) -> Template:
    """The automatic barrier: built once per source and tags (scapy takes ~0.3 ms)."""
    return ethernet(src, "ff:ff:ff:ff:ff:ff", ethertype=LOCAL_ETHERTYPE, vlan=tags or None)


class _Run:
    """One expectation in flight: captures, what was sent, and what came back."""

    def __init__(
        self,
        topo: Topology,
        frame: Template,
        port: str,
        positive: list[str],
        negative: list[str],
        match: Match,
        count: int,
    ) -> None:
        self.pset = ports(topo)
        self.frame, self.port, self.match = frame, port, match
        self.positive, self.negative = positive, negative
        self.caps = {p: self.pset.capture(p) for p in dict.fromkeys(positive + negative)}
        self.count = count
        self.sent: list[tuple[bytes, bytes, Fields]] = []
        self.barrier: Barrier | None = None
        self.barrier_nonce: bytes | None = None
        self.seen: dict[str, list[Captured]] = {p: [] for p in self.caps}
        self.started = 0.0
        self.send_error: str | None = None

    def start(self, barrier: Barrier | None) -> None:
        for cap in self.caps.values():
            cap.drain()
        sender = self.pset.sender(self.port)
        probes = [self.frame.probe() for _ in range(self.count)]
        self.sent = [(data, nonce, decode(data)) for data, nonce in probes]
        self.started = time.perf_counter()
        try:
            sender.send_many(data for data, _ in probes)
            if barrier is not None:
                self.barrier = barrier
                data, self.barrier_nonce = barrier.frame.probe()
                self.pset.sender(barrier.port or self.port).send(data)
        except TrafficError as exc:  # the port cannot send (down, gone): that is the finding
            self.send_error = str(exc)

    def collect(self, kind: str, timeout: float, quiet: float) -> str:
        """Read captures until decided; return how it was decided."""
        deadline = self.started + timeout
        while True:
            remaining = deadline - time.perf_counter()
            for cap in wait_readable(self.caps.values(), min(remaining, 0.05)):
                self.seen[cap.port] += cap.read()
            if self._positives_done(kind) and self._barrier_done():
                break
            if time.perf_counter() >= deadline:
                return "deadline"
        if not self.negative:
            return "positive match"
        if self.barrier is None:
            time.sleep(quiet)
            for port, cap in self.caps.items():
                self.seen[port] += cap.read()
            return f"quiet period of {quiet * 1000:.0f} ms (no barrier path)"
        return "barrier"

    def _copies(self, port: str, index: int) -> list[Captured]:
        nonce = self.sent[index][1]
        return [f for f in self.seen[port] if find_nonce(f.data) == nonce]

    def _positives_done(self, kind: str) -> bool:
        if kind == "at_any":
            return all(any(self._copies(p, i) for p in self.positive) for i in range(self.count))
        return all(self._copies(p, i) for p in self.positive for i in range(self.count))

    def barrier_targets(self) -> list[str]:
        """Where the barrier must arrive before absence counts as proven: every negative
        port but its own ingress (a bridge never sends a frame back where it came from,
        and a copy of a probe reflected there was queued before the barrier crossed the
        fabric). With no such port, the positive ports: the fabric has done its work."""
        return _barrier_targets(self.barrier, self.port, self.negative, self.positive)

    def _barrier_done(self) -> bool:
        return all(
            any(find_nonce(f.data) == self.barrier_nonce for f in self.seen[p])
            for p in self.barrier_targets()
        )

    def outcome(self, where: Where, decided_by: str) -> Outcome:
        reports = {p: self._report(p) for p in self.caps}
        if self.send_error is not None:
            verdict, reason = Verdict.FAIL, self.send_error
        else:
            verdict, reason = _judge(
                where.kind,
                reports,
                self.positive,
                self.negative,
                self.count,
                self.barrier_targets(),
            )
        return Outcome(
            verdict=verdict,
            reason=reason,
            probe=self.frame.summary,
            port=self.port,
            where=where,
            match=self.match,
            sent=[s[2] for s in self.sent],
            reports=reports,
            decided_by=decided_by,
            elapsed=time.perf_counter() - self.started,
            barrier=self.barrier.frame.summary if self.barrier else None,
        )

    def _report(self, port: str) -> PortReport:
        copies = []
        for index, (_data, nonce, fields) in enumerate(self.sent):
            expected, ignored = expected_fields(fields, self.match)
            for frame in self.seen[port]:
                if find_nonce(frame.data) == nonce:
                    copies.append(
                        Copy(index, frame, compare(expected, ignored, decode(frame.data)))
                    )
        barrier_seen = self.barrier_nonce is not None and any(
            find_nonce(f.data) == self.barrier_nonce for f in self.seen[port]
        )
        return PortReport(
            port,
            self.seen[port],
            copies,
            barrier_seen,
            self.caps[port].stats(),
            port in self.negative,
        )


def _judge(
    kind: str,
    reports: dict[str, PortReport],
    positive: Sequence[str],
    negative: Sequence[str],
    count: int,
    barrier_targets: Sequence[str],
) -> tuple[Verdict, str]:
    for port in negative:
        if reports[port].copies:
            first = reports[port].copies[0]
            return Verdict.FAIL, f"probe {first.index + 1} reached {port}, where it must not"
    lossy = [r for r in reports.values() if r.stats.drops]
    if lossy:
        return Verdict.INCONCLUSIVE, "capture lost frames at " + ", ".join(
            f"{r.port} ({r.stats.drops} dropped)" for r in lossy
        )
    for index in range(count):
        hits = [
            p for p in positive if any(c.index == index and not c.diffs for c in reports[p].copies)
        ]
        if kind == "at_any" and positive and not hits:
            return Verdict.FAIL, f"probe {index + 1} reached none of {', '.join(positive)}"
        missing = [p for p in positive if p not in hits]
        if kind != "at_any" and missing:
            altered = any(c.index == index for c in reports[missing[0]].copies)
            how = "arrived altered at" if altered else "never reached"
            return Verdict.FAIL, f"probe {index + 1} {how} {missing[0]}"
    late = [p for p in barrier_targets if not reports[p].barrier_seen]
    if late:
        return Verdict.INCONCLUSIVE, (
            "the barrier never reached " + ", ".join(late) + ": absence there is not proven"
        )
    return Verdict.PASS, "as expected"
