"""One expectation in flight: send, read captures as frames arrive, then judge.

Every captured frame is looked at once: each 16-byte nonce in it is looked up among the
probes sent (so bytes that merely look like the nonce's marker, an address 78.80.82.66
say, are never mistaken for it). A frame carrying a probe's nonce is a *copy* when it is
still the same kind of packet as expected (protocol, ICMP type, ARP operation, after the
declared rewrites); an ICMP error or an echo reply quoting the probe is only *related*:
it is shown as evidence, but it is not the probe reaching that port.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import TrafficError
from ..topology import Topology
from ..traffic._capture import Captured, wait_readable
from ..traffic._craft import MAGIC, NONCE_LEN, Template
from ..traffic._decode import Fields, decode
from ..traffic._port import ports
from ._match import Match, compare, expected_fields, kind_of
from ._outcome import Copy, Outcome, PortReport, Verdict, label

_BARRIER = -1


def nonces_in(data: bytes) -> list[bytes]:
    """Every 16-byte candidate nonce in a frame (the marker may also occur by chance)."""
    found, at = [], data.find(MAGIC)
    while 0 <= at <= len(data) - NONCE_LEN:
        found.append(data[at : at + NONCE_LEN])
        at = data.find(MAGIC, at + 1)
    return found


class Run:
    """Captures, what was sent, and what came back, for one expectation."""

    def __init__(
        self,
        topo: Topology,
        frames: Sequence[Template],
        port: str,
        positive: list[str],
        negative: list[str],
        match: Match,
        count: int,
        matches: Mapping[str, Match] | None = None,
    ) -> None:
        self.topo, self.pset = topo, ports(topo)
        self.frames, self.frame = list(frames), frames[0]
        self.port, self.match, self.count = port, match, count
        self.positive, self.negative = positive, negative
        self.caps = {p: self.pset.capture(p) for p in dict.fromkeys(positive + negative)}
        self.matches = {p: (matches or {}).get(p, match) for p in self.caps}  # per port
        self.seen: dict[str, list[Captured]] = {p: [] for p in self.caps}
        self.copies: dict[str, list[tuple[int, Captured]]] = {p: [] for p in self.caps}
        self.related: dict[str, list[tuple[int, Captured]]] = {p: [] for p in self.caps}
        self.barrier_at: set[str] = set()
        self.sent: list[tuple[bytes, bytes, Fields]] = []
        self.expected: dict[str, list[tuple[Fields, set[str]]]] = {}
        self.by_nonce: dict[bytes, int] = {}
        self.barrier_port: str | None = None
        self.barrier_summary: str | None = None
        self.send_error: str | None = None
        self.injected: list[Captured] = []  # what went in, in order: probes, then the barrier
        self.started = 0.0

    # -- sending -------------------------------------------------------------------------

    def start(self, barrier: Template | None, barrier_port: str | None) -> None:
        """Drain the captures, send the probes, then the barrier (a send error is the finding)."""
        for cap in self.caps.values():
            cap.drain()
        probes = []
        for _ in range(self.count):  # a probe's fragments share one identification
            ident = _fresh_ident()
            probes += [f.probe(ident=ident if f.fragment else None) for f in self.frames]
        self.sent = [(data, nonce, decode(data)) for data, nonce in probes]
        self.expected = {
            port: [expected_fields(fields, match) for _, _, fields in self.sent]
            for port, match in self.matches.items()
        }
        self.by_nonce = {nonce: index for index, (_, nonce, _) in enumerate(self.sent)}
        self.started = time.perf_counter()
        now = time.time()
        self.injected = [Captured(self.port, data, now, outgoing=True) for data, _ in probes]
        try:
            self.pset.sender(self.port).send_many(data for data, _ in probes)
            if barrier is not None:
                data, nonce = barrier.probe()
                self.by_nonce[nonce] = _BARRIER
                self.barrier_port, self.barrier_summary = barrier_port or self.port, barrier.summary
                self.injected.append(Captured(self.barrier_port, data, time.time(), outgoing=True))
                self.pset.sender(self.barrier_port).send(data)
        except TrafficError as exc:  # the port cannot send (down, gone): that is the finding
            self.send_error = str(exc)

    # -- reading -------------------------------------------------------------------------

    def read(self, timeout: float) -> None:
        """Ingest what the captures have, waiting up to `timeout` seconds for any."""
        for cap in wait_readable(self.caps.values(), timeout):
            self.ingest(cap.port, cap.read())

    def ingest(self, port: str, frames: list[Captured]) -> None:
        """Sort `frames` seen on `port`: probe copies, related frames (ICMP errors), the barrier."""
        self.seen[port] += frames
        for frame in frames:
            for nonce in nonces_in(frame.data):
                index = self.by_nonce.get(nonce)
                if index == _BARRIER:
                    self.barrier_at.add(port)
                elif index is not None:
                    want = self.expected[port][index][0]
                    same = kind_of(decode(frame.data)) == kind_of(want)
                    (self.copies if same else self.related)[port].append((index, frame))
                else:
                    continue
                break

    def hit(self, port: str, index: int) -> bool:
        """True when a copy of probe `index` (altered or not) arrived at `port`."""
        return any(i == index for i, _ in self.copies[port])

    def positives_done(self, kind: str) -> bool:
        """True when every probe reached where `kind` (at, at_any...) needs it: waiting is over."""
        probes = range(len(self.sent))
        if kind == "at_any":
            return all(any(self.hit(p, i) for p in self.positive) for i in probes)
        return all(self.hit(p, i) for p in self.positive for i in probes)

    def barrier_targets(self) -> list[str]:
        """Where the barrier must arrive before absence counts as proven: every negative
        port but its own ingress, which it cannot reach; with none, the positive ports
        (the fabric has processed the probes, and any copy sent back to the ingress was
        queued ahead of the barrier)."""
        if self.barrier_port is None:
            return []
        return [p for p in self.negative if p != self.barrier_port] or list(self.positive)

    def barrier_missing(self) -> list[str]:
        """The barrier's targets it has not reached yet."""
        return [p for p in self.barrier_targets() if p not in self.barrier_at]

    # -- judging -------------------------------------------------------------------------

    def outcome(self, kind: str, where: Any, decided_by: str, quiet_ok: bool) -> Outcome:
        """Judge what was seen into the Outcome (a send error is a FAIL)."""
        reports = {p: self._report(p) for p in self.caps}
        if self.send_error is not None:
            verdict, reason = Verdict.FAIL, self.send_error
        else:
            late = [] if quiet_ok else self.barrier_missing()
            verdict, reason = judge(
                kind, reports, self.positive, self.negative, len(self.sent), late,
                name=lambda i: label(i, len(self.frames)),
            )  # fmt: skip
        return Outcome(
            verdict=verdict,
            reason=reason,
            probe=_summary(self.frames),
            port=self.port,
            where=where,
            match=self.match,
            sent=[s[2] for s in self.sent],
            reports=reports,
            decided_by=decided_by,
            elapsed=time.perf_counter() - self.started,
            barrier=self.barrier_summary,
            injected=self.injected,
            matches=dict(self.matches),
            frames_per_probe=len(self.frames),
            topo=self.topo,
            frames=tuple(self.frames),
        )

    def _report(self, port: str) -> PortReport:
        def copy(index: int, frame: Captured) -> Copy:
            expected, ignored = self.expected[port][index]
            return Copy(index, frame, compare(expected, ignored, decode(frame.data)))

        return PortReport(
            port,
            self.seen[port],
            [copy(i, f) for i, f in self.copies[port]],
            port in self.barrier_at,
            self.caps[port].stats(),
            port in self.negative,
            related=[Copy(i, f, []) for i, f in self.related[port]],
        )


def judge(
    kind: str,
    reports: dict[str, PortReport],
    positive: Sequence[str],
    negative: Sequence[str],
    count: int,
    late: Sequence[str],
    name: Callable[[int], str] = lambda index: f"probe {index + 1}",
) -> tuple[Verdict, str]:
    """The verdict from what each port saw (`count` frames sent, `name` says how to call
    each). Order matters: a copy where none may be is a FAIL whatever else happened;
    loss makes the rest unprovable; then the positives."""
    for port in negative:
        if reports[port].copies:
            first = reports[port].copies[0]
            return Verdict.FAIL, f"{name(first.index)} reached {port}, where it must not"
    lossy = [r for r in reports.values() if r.stats.drops]
    if lossy:
        return Verdict.INCONCLUSIVE, "capture lost frames at " + ", ".join(
            f"{r.port} ({r.stats.drops} dropped)" for r in lossy
        )
    for index in range(count):
        hits = [
            p for p in positive if any(c.index == index and not c.diffs for c in reports[p].copies)
        ]
        if kind == "at_any" and not hits:
            return Verdict.FAIL, f"{name(index)} reached none of {', '.join(positive)}"
        missing = [p for p in positive if p not in hits]
        if kind != "at_any" and missing:
            altered = any(c.index == index for c in reports[missing[0]].copies)
            how = "arrived altered at" if altered else "never reached"
            return Verdict.FAIL, f"{name(index)} {how} {missing[0]}"
    if late:
        return Verdict.INCONCLUSIVE, (
            "the barrier never reached " + ", ".join(late) + ": absence there is not proven"
        )
    return Verdict.PASS, "as expected"


def _fresh_ident() -> int:
    """A datagram identification for one probe's fragments (none shared with another)."""
    return int.from_bytes(os.urandom(4), "big")


def _summary(frames: Sequence[Template]) -> str:
    if len(frames) == 1:
        return frames[0].summary
    return f"{len(frames)} frames: {frames[0].summary} …"
