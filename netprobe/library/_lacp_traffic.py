"""The frames of the ovs-lacp check: UDP flows of several 5-tuples (one source port
each) from one host to another across a bond, each frame known by its nonce, seen
arriving at the far host and on the member link it crossed (captured at the link's far
end, where every frame that crossed it comes in)."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

from netprobe.check import Context, Port, ipv4_of
from netprobe.errors import SpecError
from netprobe.traffic import find_nonce, ports, udp

_SPORT, _DPORT = 40001, 7781
_BURST_WAIT = 1.0  # seconds a burst's frames get to arrive


@dataclass
class Flows:
    """`count` UDP flows from `src` to `dst`; `links`: member → the port its frames come in
    at. The sending thread only appends to `sent`; readers take copies."""

    ctx: Context
    src: Port
    dst: Port
    links: dict[str, Port]
    count: int
    sent: list[tuple[bytes, int, float]] = field(default_factory=list)  # nonce, flow, time
    arrived: dict[bytes, float] = field(default_factory=dict)
    via: dict[bytes, str] = field(default_factory=dict)  # nonce → member it crossed

    def __post_init__(self) -> None:
        topo = self.ctx.topo
        src_ip, dst_ip = ipv4_of(topo, self.src), ipv4_of(topo, self.dst)
        if src_ip is None or dst_ip is None:
            raise SpecError(f"{self.src if src_ip is None else self.dst} has no IPv4 address")
        self.frames = [udp(topo.mac(self.src), topo.mac(self.dst), src_ip, dst_ip,
                           sport=self.sport(i), dport=_DPORT) for i in range(self.count)]
        lab = ports(topo)
        self.tx = lab.sender(self.src)
        self.rx = lab.capture(self.dst)
        self.seen = {m: lab.capture(p) for m, p in self.links.items()}
        for capture in (self.rx, *self.seen.values()):
            capture.drain()
        self._learn(src_ip, dst_ip)

    def _learn(self, src_ip: str, dst_ip: str) -> None:
        """A frame back from `dst` first, so the bridges on the way learn where `dst` is:
        frames to an unknown address are flooded, and a bond floods on one member only."""
        topo = self.ctx.topo
        frame = udp(topo.mac(self.dst), topo.mac(self.src), dst_ip, src_ip, dport=_DPORT)
        back = ports(topo).capture(self.src)
        back.drain()
        deadline = time.time() + _BURST_WAIT
        while time.time() < deadline:
            data, nonce = frame.probe()
            ports(topo).sender(self.dst).send(data)
            time.sleep(0.01)
            if any(find_nonce(f.data) == nonce for f in back.read()):
                return

    @staticmethod
    def sport(flow: int) -> int:
        """The source port of flow number `flow` (what tells the 5-tuples apart)."""
        return _SPORT + flow

    def send(self, flow: int) -> bytes:
        """Send one frame of flow number `flow`; its nonce."""
        data, nonce = self.frames[flow].probe()
        self.sent.append((nonce, flow, time.time()))
        self.tx.send(data)
        return nonce

    def collect(self) -> None:
        """Note the frames that arrived, and the member each crossed, since the last call."""
        for frame in self.rx.read():
            nonce = find_nonce(frame.data)
            if nonce is not None and not frame.outgoing:
                self.arrived.setdefault(nonce, frame.time)
        for member, capture in self.seen.items():
            for frame in capture.read():
                nonce = find_nonce(frame.data)
                if nonce is not None and not frame.outgoing:
                    self.via.setdefault(nonce, member)

    def burst(self, per_flow: int = 5) -> dict[int, set[str]]:
        """Send `per_flow` frames of every flow; the members each flow's frames crossed."""
        nonces = [self.send(i) for _ in range(per_flow) for i in range(self.count)]
        deadline = time.time() + _BURST_WAIT
        while time.time() < deadline:
            self.collect()
            if all(n in self.arrived and n in self.via for n in nonces):
                break
            time.sleep(0.005)
        return self.members(nonces)

    def members(self, nonces: list[bytes]) -> dict[int, set[str]]:
        """Flow → the members its frames among `nonces` crossed."""
        flow_of = {n: f for n, f, _ in list(self.sent)}
        found: dict[int, set[str]] = {i: set() for i in range(self.count)}
        for nonce in nonces:
            if nonce in self.via:
                found[flow_of[nonce]].add(self.via[nonce])
        return found

    def stream(self, stop: threading.Event, interval: float) -> threading.Thread:
        """Send the flows in turn, one frame every `interval` seconds, until `stop`."""
        def run() -> None:
            start = time.time()
            for i in itertools.count():
                delay = start + i * interval - time.time()
                if delay > 0:
                    time.sleep(delay)
                if stop.is_set():
                    return
                self.send(i % self.count)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def last_member(self, before: float) -> dict[int, str]:
        """Flow → the member its last frame sent before `before` crossed."""
        found: dict[int, str] = {}
        for nonce, flow, sent in list(self.sent):
            if sent < before and nonce in self.via:
                found[flow] = self.via[nonce]
        return found

    def after(self, flows: set[int], cut: float) -> list[bytes]:
        """The frames of `flows` sent from `cut` on."""
        return [n for n, f, t in list(self.sent) if f in flows and t >= cut]

    def lost(self, flows: set[int]) -> tuple[int, int]:
        """(frames of `flows` lost, frames of them sent)."""
        sent = [n for n, f, _ in list(self.sent) if f in flows]
        return sum(1 for n in sent if n not in self.arrived), len(sent)

    def gap(self, flows: set[int], cut: float, until: float) -> float | None:
        """The longest wait between two arrivals of `flows`' frames, from the last arrival
        before `cut` on, counting what arrived before `until`. None: no frame of theirs sent
        after the cut arrived by then."""
        sent = [(n, t) for n, f, t in list(self.sent) if f in flows]
        arrived = sorted(self.arrived[n] for n, _ in sent if self.arrived.get(n, until) < until)
        if not any(t >= cut and self.arrived.get(n, until) < until for n, t in sent):
            return None
        before = [t for t in arrived if t < cut]
        seq = [before[-1] if before else cut, *(t for t in arrived if t >= cut)]
        return max(b - a for a, b in itertools.pairwise(seq))
