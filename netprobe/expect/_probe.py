"""`probe`: send from a host's own stack, follow the probe hop by hop, say how it ended.

Every namespace on the way is watched by one capture socket (all its interfaces, both
directions), opened once per topology. The probe goes out of a real socket of the
sender. Deciding costs no fixed wait: an answer (echo reply, SYN-ACK, RST, ICMP error)
arrives after every copy on its way was captured, so the story is complete when it does;
a probe that hears nothing is decided by a barrier: an echo to the last host that saw the
probe, sent behind it, whose reply proves that host has dealt with the probe (and, where
the probe never left the sender, a broadcast behind its ARP request, seen wherever that
request went). Capture loss is reported; the deadline decides only when no barrier came.
"""

from __future__ import annotations

import ipaddress
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import TrafficError
from ..topology import Topology
from ..topology._kernel.netlink import Rtnl
from ..traffic._capture import Captured
from ..traffic._hostcapture import HostCapture
from ..traffic._port import ports
from ..traffic._stack import SocketReport, StackProbe
from ._ending import Verdict, classify
from ._expectation import broadcast
from ._path import Mark, Sighting, Trace, follow
from ._proberesult import ProbeResult

_MAX_BARRIERS = 4


class _Watch:
    """The capture sockets of one topology's hosts, opened once."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.caps: dict[str, HostCapture] = {}
        topo.add_cleanup(self.close)

    def of(self, hosts: Iterable[str]) -> list[HostCapture]:
        out = []
        for host in hosts:
            if host not in self.caps:
                self.caps[host] = HostCapture(self.topo, host)
            out.append(self.caps[host])
        return out

    def close(self) -> None:
        # Closing an AF_PACKET socket waits out an RCU grace period (~13 ms): all at once
        closers = [threading.Thread(target=cap.close) for cap in self.caps.values()]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join()
        self.caps.clear()
        _watches.pop(self.topo, None)


_watches: weakref.WeakKeyDictionary[Topology, _Watch] = weakref.WeakKeyDictionary()


def watched_hosts(topo: Topology, hosts: Sequence[str] | None) -> list[str]:
    """The hosts to capture in: those given, else every host but the root namespace."""
    if hosts is not None:
        return list(dict.fromkeys(hosts))
    return [h.name for h in topo.spec.hosts if not h.root]


def prepare(topo: Topology, hosts: Sequence[str] | None = None) -> None:
    """Open the capture sockets `probe` will use now, so the first probe costs no more."""
    if topo not in _watches:
        _watches[topo] = _Watch(topo)
    _watches[topo].of(watched_hosts(topo, hosts))


def probe(
    topo: Topology,
    from_host: str,
    dst_ip: str,
    proto: str = "icmp",
    port: int | None = None,
    *,
    hosts: Sequence[str] | None = None,
    timeout: float = 1.0,
    size: int | None = None,
    sport: int | None = None,
    awaits_answer: bool = False,
    before_send: Callable[[StackProbe], None] | None = None,
) -> ProbeResult:
    """Send one probe from `from_host`'s own stack to `dst_ip` (`port` for tcp, udp) and
    follow it: the path hop by hop, its rewrites, the reply's path, how it ended.
    `size`: the bytes an icmp or udp probe carries, sent with DF set (MTU questions).
    `sport`: the source port a tcp or udp probe leaves from (a conntrack entry to meet).
    `awaits_answer`: an answer is expected; a udp one comes from a program, in its own
    time, so no barrier decides that probe: its answer does, or the deadline.
    `before_send` is called with the probe's socket once its mark (nonce, source port)
    is known and before it is sent: an explanation arms its traces for it there."""
    chosen = watched_hosts(topo, hosts)
    if from_host not in chosen:
        chosen.insert(0, from_host)
    prepare(topo, chosen)
    caps = _watches[topo].of(chosen)
    flight = _Flight(topo, from_host, dst_ip, proto, port, caps, size, sport, awaits_answer)
    if before_send is not None:
        before_send(flight.stack)
    flight.run(timeout)
    return flight.result()


@dataclass
class _Flight:
    topo: Topology
    sender: str
    dst: str
    proto: str
    port: int | None
    caps: list[HostCapture]
    size: int | None = None
    sport: int | None = None
    awaits_answer: bool = False
    frames: list[Captured] = field(default_factory=list)
    report: SocketReport | None = None
    decided_by: str = ""
    barriers: list[str] = field(default_factory=list)
    started: float = 0.0
    elapsed: float = 0.0
    held_at: str | None = None  # a host seen resolving the probe's next hop

    def __post_init__(self) -> None:
        self.version = ipaddress.ip_address(self.dst).version
        self.stack = StackProbe(
            self.topo.fd_of(self.sender), self.proto, self.dst, self.port,
            size=self.size, sport=self.sport,
        )  # fmt: skip
        self.mark = Mark(self.proto, self.version, self.stack.nonce, self.stack.sport, self.sender)

    def read(self) -> None:
        for cap in self.caps:
            self.frames += cap.read()

    def run(self, timeout: float) -> None:
        for cap in self.caps:
            cap.drain()
        self.started = time.perf_counter()
        self.sent_at = time.time()
        try:
            self.report = self.stack.send()
            if self.report is not None:
                self.read()
                self.decided_by = "the send failing"
                return
            self._wait(self.started + timeout)
        finally:
            self.stack.close()
            self.elapsed = time.perf_counter() - self.started

    def _answered(self) -> bool:
        report = self.stack.poll()
        if report is not None:
            self.report = report
            self.read()  # every copy on the answer's way was captured before it came
            self.decided_by = "the socket's answer"
            return True
        return False

    def _wait(self, deadline: float) -> None:
        pending: StackProbe | None = None
        pending_bcast: tuple[str, set[str]] | None = None
        while True:
            self.read()
            if self._answered():
                return
            trace = follow(self.mark, self.frames)
            if trace.replies and any(
                r.kind in ("echo-reply", "syn-ack", "udp-reply", "rst")
                for r in trace.replies
                if r.host == self.sender
            ):
                self.decided_by = "the answer captured at the sender"
                return
            if pending is not None and pending.poll() is not None:
                done = self._barrier_back(pending, trace)
                pending.close()
                pending = None
                if done:
                    return
            if pending_bcast is not None and pending_bcast[1] <= self._seen_nonce(pending_bcast[0]):
                self.read()
                self.decided_by = "a broadcast barrier behind the ARP/ND request"
                return
            if pending is None and pending_bcast is None and self._barriers_left():
                pending, pending_bcast = self._send_barrier(trace)
                if pending is None and pending_bcast is None and self.decided_by:
                    return
            now = time.perf_counter()
            if now >= deadline:
                self.decided_by = f"the deadline ({(now - self.started) * 1000:.0f} ms)"
                if self.held_at is not None:
                    self.decided_by += f", {self.held_at} resolving the next hop meanwhile"
                if pending is not None:
                    pending.close()
                return
            extra = [pending.fileno()] if pending is not None else []
            fds = [c.fileno() for c in self.caps] + [self.stack.fileno(), *extra]
            _wait_any(fds, min(deadline - now, 0.02))

    def _barriers_left(self) -> bool:
        """Whether a barrier may decide: a UDP service's answer may come after any."""
        udp_answer = self.awaits_answer and self.proto == "udp"
        return not udp_answer and len(self.barriers) < _MAX_BARRIERS

    def _barrier_back(self, barrier: StackProbe, trace: Trace) -> bool:
        """The barrier echo came back (or failed): decided unless the probe got further."""
        self.read()
        if self._answered():
            return True
        if barrier.report is None or barrier.report.kind != "answered":
            return False  # a barrier that failed proves nothing: try another, or the deadline
        before = trace.last.host if trace.last else None
        after = follow(self.mark, self.frames).last
        if after is not None and after.host != before:
            return False  # the probe went on meanwhile: a barrier behind it, further on
        if after is not None and self._held(after.host):
            self.held_at = after.host
            return False  # queued while its next hop is resolved: only the deadline decides
        self.decided_by = f"a barrier: an echo to {self.barriers[-1]} came back after it"
        return True

    def _held(self, host: str) -> bool:
        """Whether `host` holds the probe back while it resolves the next hop (its
        neighbour entry is incomplete): a barrier overtakes it without proving a drop."""
        route = self.topo.route_to(host, self.dst)
        if route is None or route.type != "unicast":
            return False
        entry = self.topo.live(host).neighbour(route.gateway or self.dst)
        return entry is not None and entry.state in ("incomplete", "probe")

    def _send_barrier(self, trace: Trace) -> tuple[StackProbe | None, tuple[str, set[str]] | None]:
        last = trace.last
        if last is None or last.host == self.sender:
            return None, self._broadcast_barrier(trace)
        target = self._address_of(last.host, last.port, last)
        if target is None:
            return None, self._broadcast_barrier(trace)
        self.barriers.append(f"{target} ({last.host})")
        barrier = StackProbe(self.topo.fd_of(self.sender), "icmp", target)
        if barrier.send() is not None:
            barrier.close()
            return None, None
        return barrier, None

    def _broadcast_barrier(self, trace: Trace) -> tuple[str, set[str]] | None:
        """Behind the sender's unanswered ARP/ND request, a broadcast on the same link;
        where the request arrived, it must arrive too."""
        asked = [p for p, _t in trace.unanswered if p.startswith(self.sender + ":")]
        if not asked:
            if trace.last is None:
                self.read()
                self.decided_by = "nothing left the sender"
                self.barriers.append("none possible")
            return None
        out = asked[0]
        heard = {f.port for f in self.frames if not f.outgoing and _asks(f.data)} - {out}
        if not heard:
            self.decided_by = f"the ARP/ND request from {out} reached no one"
            self.barriers.append("none possible")
            return None
        frame = broadcast(self.topo.mac(out), ())
        data, nonce = frame.probe()
        ports(self.topo).sender(out).send(data)
        self.barriers.append(f"a broadcast from {out}")
        return nonce.hex(), heard

    def _seen_nonce(self, nonce_hex: str) -> set[str]:
        nonce = bytes.fromhex(nonce_hex)
        return {f.port for f in self.frames if not f.outgoing and nonce in f.data}

    def _address_of(self, host: str, port: str, last: Sighting) -> str | None:
        """An address of `host` to echo to: the probe's destination there, else one on the
        interface that saw it, else any of the probe's family."""
        addresses = _addresses(self.topo, host)
        dst = last.fields.get("ip.dst", last.fields.get("ip6.dst"))
        family = [a for a in addresses if ipaddress.ip_address(a[1]).version == self.version]
        usable = [a for a in family if not ipaddress.ip_address(a[1]).is_link_local]
        if dst is not None and any(a[1] == dst for a in usable):
            return str(dst)
        ifname = port.split(":", 1)[1]
        on_port = [a[1] for a in usable if a[0] == ifname]
        chosen = on_port or [a[1] for a in usable]
        return chosen[0] if chosen else None

    def result(self) -> ProbeResult:
        trace = follow(self.mark, self.frames)
        holders = {
            (h, a) for h in {c.host for c in trace.copies} for _i, a in _addresses(self.topo, h)
        }
        verdict: Verdict = classify(
            trace,
            self.report,
            sender=self.sender,
            proto=self.proto,
            version=self.version,
            holders=holders,
        )
        lost = {c.host: c.stats().drops for c in self.caps if c.stats().drops}
        return ProbeResult(
            sender=self.sender,
            dst=self.dst,
            proto=self.proto,
            port=self.port,
            ending=verdict.ending,
            where=verdict.where,
            words=verdict.words,
            trace=trace,
            socket=self.report,
            src=self.stack.src,
            sport=self.stack.sport,
            decided_by=self.decided_by or "the deadline",
            barriers=list(self.barriers),
            elapsed=self.elapsed,
            sent_at=self.sent_at,
            lost=lost,
            watched=[c.host for c in self.caps],
            size=self.size,
        )


def _wait_any(fds: list[int], timeout: float) -> None:
    """Wait until one of `fds` is readable (or in error), at most `timeout` seconds."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    poller.poll(max(timeout, 0) * 1000)


def _asks(data: bytes) -> bool:
    """An ARP request or a neighbour solicitation."""
    from ..traffic._decode import decode

    fields = decode(data)
    return fields.get("arp.op") == 1 or fields.get("icmp.type") == 135


def _addresses(topo: Topology, host: str) -> list[tuple[str, str]]:
    """(interface, address) of every address `host` holds now."""
    try:
        with Rtnl(topo.fd_of(host)) as nl:
            names = {s.index: n for n, s in nl.link_states().items()}
            return [(names.get(a.index, "?"), a.address) for a in nl.addr_states()]
    except (OSError, TrafficError):
        return []
