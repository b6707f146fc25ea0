"""A positive expectation that is late: decide, as soon as it can no longer succeed, that
it failed, instead of waiting out its deadline.

Nothing here runs while probes arrive on time (a passing positive pays nothing). Once one
is late, two pieces of evidence can end the wait:

- the drop trace: the topology's trace (`traffic._topotrace`, shared with explanations)
  is switched on and a *twin* of the probe (the same bytes,
  a fresh nonce) is sent the same way. The original's own drop happened before anything
  was armed; the twin, taking the same path through the same rules, shows where it
  goes. When every buffer carrying the twin is gone (freed with a drop reason, or
  consumed) and a positive port never saw it, the probe cannot reach that port either.
- a barrier: an Ethernet broadcast sent behind the probe, when the probe is bridged to
  its positive ports (its destination MAC is theirs, or a group address), so the two
  take the same path in order. A positive port the barrier reached without the probe
  will not get it.

A probe merely held up (a slow queue, a neighbour being resolved) keeps its buffer alive
and the barrier queued behind it: neither decides, and the deadline still does.
"""

from __future__ import annotations

import contextlib
import weakref

from ..errors import NetprobeError
from ..topology import Topology
from ..topology._kernel.state import NsidLookup, peers
from ..traffic._decode import decode
from ..traffic._droptrace import CONSUME, KFREE, RECEIVE, XMIT, DropTrace, Wiring
from ..traffic._droptrace import _Chain as Chain
from ..traffic._port import parse_port
from ..traffic._topotrace import drop_trace
from ._run import Run

LATE = 0.005  # s: a positive not in by then is watched for its end (on time: ~0.4 ms)


def wiring_of(topo: Topology) -> Wiring:
    """Kernel device names → hosts, and veth pairs, as the kernel has them now (one
    interface dump per host; the pairs worked out again only when the devices changed)."""
    hosts = {h: topo.live(h, addresses=False) for h, s in topo.hosts.items() if not s.spec.root}
    key = tuple((h, tuple((i.name, i.index) for i in s.interfaces)) for h, s in hosts.items())
    cached = _wirings.get(topo)
    if cached is not None and cached[0] == key:
        return cached[1]
    names: dict[str, list[str]] = {}
    for host, state in hosts.items():
        for iface in state.interfaces:
            if iface.kind != "loopback":
                names.setdefault(iface.name, []).append(host)
    states = topo.hosts.items()
    lookup = NsidLookup({n: s.nl for n, s in states}, {n: s.fd for n, s in states})
    wiring = Wiring({k: tuple(v) for k, v in names.items()}, peers(hosts, lookup))
    _wirings[topo] = (key, wiring)
    return wiring


_wirings: weakref.WeakKeyDictionary[Topology, tuple[object, Wiring]] = weakref.WeakKeyDictionary()


class Late:
    """Watching one late positive expectation for proof that it cannot succeed."""

    def __init__(self, topo: Topology, run: Run, kind: str) -> None:
        self.run, self.kind = run, kind
        self.note = ""  # why the drop trace cannot decide, or that the twin got through
        self.barrier = _send_broadcast(run) if _bridged(topo, run) else None
        self.held = contextlib.ExitStack()  # the topology's drop trace, recording
        self.trace: DropTrace | None = None
        self.twin: bytes | None = None
        self.chain: Chain | None = None
        self.drops: list[str] = []
        self.overruns, self.reasons, self.first = 0, True, ""
        try:
            self._send_twin(topo)
        except (NetprobeError, OSError) as exc:  # the trace is an aid: the deadline remains
            self.note, self.twin = f" (no twin probe under the drop trace: {exc})", None

    def _send_twin(self, topo: Topology) -> None:
        """Arm the drop trace and send the probe's twin under it."""
        host, ifname, _vm = parse_port(self.run.port)
        self.first = host
        try:  # not waiting for another user: the barrier and the deadline remain
            trace = self.held.enter_context(drop_trace(topo, wiring_of(topo), wait=False))
        except (NetprobeError, OSError) as exc:
            self.note = f" (no drop trace: {exc})"
            return
        self.trace = trace
        self.overruns = trace.instance.overruns()
        self.reasons = bool(trace.reasons)
        data, nonce = self.run.frame.probe()
        self.chain = Chain(trace.wiring, len(data), topo.ifname(host, ifname))
        self.run.pset.sender(self.run.port).send(data)
        self.twin = nonce

    @property
    def why_not(self) -> str:
        """What the deadline's evidence adds: why nothing decided sooner."""
        if self.note or self.twin is None:
            return self.note
        return " (the twin probe sent under the drop trace had not ended)"

    def close(self) -> None:
        """Tracing off again, the trace free for its next use."""
        self.held.close()

    def decided(self) -> str | None:
        """How it was decided that the probe cannot succeed, else None (keep waiting)."""
        if self.twin is not None and self._twin_gone():
            self.run.read(0)  # a copy the twin's end came after was captured before it
            missing = self._missing(self.twin)
            if missing and not self.run.positives_done(self.kind):
                drops = "; ".join(self.drops) or "consumed by a host's stack"
                return (f"the drop trace: a twin of the probe, sent the same way once it was "
                        f"late, ended without reaching {', '.join(missing)} ({drops})")  # fmt: skip
            if not missing:
                self.note = " (a twin of the probe sent when it was late got through)"
                self.twin = None
        if self.barrier is not None:
            ahead = self._barrier_ahead()
            if ahead:
                return f"a barrier sent behind the probe reached {', '.join(ahead)} first"
        return None

    def _twin_gone(self) -> bool:
        assert self.chain is not None and self.trace is not None
        for event in self.trace.events():
            if event.event in (XMIT, RECEIVE):
                self.chain.see(event, self.first)
            elif event.event == CONSUME:
                self.chain.where.pop(event.skbaddr, None)
            elif event.event == KFREE and event.skbaddr in self.chain.where:
                host, dev = self.chain.where.pop(event.skbaddr)
                reason = event.fields.get("reason", "(none given)" if not self.reasons else "?")
                self.drops.append(f"kfree_skb reason {reason} on {host or '?'}:{dev}")
        if not self.chain.path or self.chain.where:
            return False
        return self.trace.instance.overruns() == self.overruns  # a lost event: a copy on its way

    def _seen(self, nonce: bytes) -> set[str]:
        """Where a frame carrying `nonce` was seen, either way (as copies are counted)."""
        return {p for p, frames in self.run.seen.items() if any(nonce in f.data for f in frames)}

    def _missing(self, nonce: bytes) -> list[str]:
        seen = self._seen(nonce)
        if self.kind == "at_any":
            return [] if seen & set(self.run.positive) else list(self.run.positive)
        return [p for p in self.run.positive if p not in seen]

    def _barrier_ahead(self) -> list[str]:
        assert self.barrier is not None
        reached = self._seen(self.barrier) & set(self.run.positive)
        probes = range(self.run.count)
        ahead = [p for p in reached if not all(self.run.hit(p, i) for i in probes)]
        if self.kind == "at_any":
            return ahead if len(ahead) == len(self.run.positive) else []
        return ahead


def _bridged(topo: Topology, run: Run) -> bool:
    """Whether the probe is bridged to every positive port (its destination MAC is a
    group address or theirs), so a broadcast behind it takes the same path."""
    dst = str(decode(run.frame.data).get("eth.dst", ""))
    if not dst or int(dst.split(":", 1)[0], 16) & 1:
        return bool(dst)
    try:
        return all(topo.mac(p).lower() == dst.lower() for p in run.positive)
    except NetprobeError:
        return False


def _send_broadcast(run: Run) -> bytes | None:
    from ._expectation import broadcast  # the barrier frame negatives use

    sent = decode(run.frame.data)
    frame = broadcast(str(sent.get("eth.src", "02:00:00:00:00:00")), sent.get("vlan", ()))
    data, nonce = frame.probe()
    try:
        run.pset.sender(run.port).send(data)
    except NetprobeError:
        return None
    return nonce
