"""Send probes and decide, with evidence, where they came out and in what shape.

Positive expectations poll until every probe has shown up; one that is late is watched
for proof it cannot succeed any more (`_late.py`: its twin dropped under the kernel's drop
trace, or a barrier behind it arrived first), else a deadline decides. Negative ones
("must not appear at P") are decided by a barrier: a frame known to be delivered, sent
behind the probes along the same path. Once the barrier has reached P, the probes had
their chance: deciding costs a round trip, not a fixed sleep. Where no barrier can go,
a bounded quiet period decides, and the evidence says so. Capture loss, or a barrier
that never arrived, makes the verdict INCONCLUSIVE, never PASS.
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import TrafficError
from ..topology import Topology
from ..topology._model.port import VM_SUFFIX, Port
from ..topology._model.spec import Bond, Bridge, OvsBond, OvsBridge
from ..traffic._craft import LOCAL_ETHERTYPE, SLOT, Template
from ..traffic._decode import decode
from ..traffic._port import parse_port
from ._late import LATE, Late
from ._match import Match
from ._outcome import Outcome
from ._run import Run


@dataclass(frozen=True)
class Where:
    """Where the probes must appear (`ports`) and, among `among`, nowhere else. Ports are
    kept as their text ("HOST:IFNAME"), as outcomes and evidence name them."""

    kind: Literal["at", "at_any", "at_exactly", "nowhere"]
    ports: tuple[str, ...] = ()
    among: tuple[str, ...] | None = None  # None: every end-host port of the topology


def at(port: str | Port) -> Where:
    """At `port` (a Port or "HOST:IFNAME"); other ports are not looked at."""
    return Where("at", (_text(port),))


def at_any(ports: Iterable[str | Port]) -> Where:
    """At one or more of `ports`, whichever (a bond's members, an ECMP's next hops)."""
    return Where("at_any", _some(ports, "at_any"))


def at_exactly(ports: Iterable[str | Port], *, among: Iterable[str | Port] | None = None) -> Where:
    """At each of `ports` and at no other port (flooding; the ingress port included)."""
    return Where("at_exactly", _some(ports, "at_exactly"), _texts(among))


def _some(ports: Iterable[str | Port], what: str) -> tuple[str, ...]:
    chosen = tuple(_text(p) for p in ports)
    if not chosen:
        raise TrafficError(f"{what}() needs at least one port")
    return chosen


def _text(port: str | Port) -> str:
    """A port as outcomes name it: its canonical text (bad text: a TrafficError, as when
    it is sent into)."""
    host, ifname, vm = parse_port(port)
    return str(Port(host, ifname, vm))


def _texts(ports: Iterable[str | Port] | None) -> tuple[str, ...] | None:
    return tuple(_text(p) for p in ports) if ports is not None else None


def nowhere(*, among: Iterable[str | Port] | None = None) -> Where:
    """At none of `among` (default: every end-host port but the ingress link's far end)."""
    return Where("nowhere", (), _texts(among))


@dataclass(frozen=True)
class Barrier:
    """A frame that is delivered to every port the probes must not reach."""

    frame: Template
    port: str | Port | None = None  # where it is sent (kept as text); default: the probes'

    def __post_init__(self) -> None:
        if self.port is not None:
            object.__setattr__(self, "port", _text(self.port))


def end_ports(topo: Topology) -> list[str]:
    """Where frames leave the fabric, as the kernel has it now: host interfaces that are
    up and neither loopbacks, bridges, bonds nor their ports, plus the VM side of every
    TAP netprobe holds. The spec adds what the kernel cannot say: the ports and bridges
    of a userspace OVS. The root namespace is not included."""
    out = []
    for name, state in topo.hosts.items():
        if state.spec.root:
            continue
        declared = {i.name: i for i in state.spec.interfaces}
        for iface in topo.live(name, addresses=False).interfaces:
            spec = declared.get(iface.name)
            if not iface.up:
                continue
            if (name, iface.name) in topo.taps:  # a VM's NIC: its far side is the end
                out.append(f"{name}:{iface.name}{VM_SUFFIX}")
            elif not (
                iface.master
                or iface.kind in _FABRIC_KINDS
                or (spec is not None and (spec.master or isinstance(spec.kind, _FABRIC)))
            ):
                out.append(f"{name}:{iface.name}")
    return out


_FABRIC = (Bridge, Bond, OvsBridge, OvsBond)
_FABRIC_KINDS = {"loopback", "bridge", "bond", "openvswitch"}


def expect(
    topo: Topology,
    frame: Template | Sequence[Template],
    port: str | Port,
    where: Where,
    *,
    match: Match | Mapping[str | Port, Match] | None = None,
    count: int = 1,
    barrier: Barrier | Literal["auto"] | None = "auto",
    timeout: float = 1.0,
    quiet: float = 0.05,
) -> Outcome:
    """Send `count` probes of `frame` into `port` and judge them against `where`.

    `frame`: one Template, or several sent one after the other as one probe (the
    `fragments` of a datagram): a copy of every one must appear where `where` says.
    `match`: what a copy must look like (default: exact), one Match for every port, or
    {port: Match} for each port its own (a port not named: exact).

    `barrier`: "auto" sends an Ethernet broadcast behind the probes from the same port;
    where it cannot go (past a router), a `quiet` period decides and the evidence says so.
    A `Barrier` you give must arrive wherever the probes must not: if it does not, the
    verdict is INCONCLUSIVE. None: a quiet period decides every negative port.
    """
    port = _text(port)
    frames = [frame] if isinstance(frame, Template) else list(frame)
    if not frames:
        raise TrafficError("expect() needs at least one frame")
    positive = list(where.ports)
    negative: list[str] = []
    if where.kind in ("at_exactly", "nowhere"):
        among = where.among if where.among is not None else _default_among(topo, port)
        negative = [p for p in among if p not in positive]
    default, per_port = _matches(match, positive + negative)
    run = Run(topo, frames, port, positive, negative, default, count, per_port)
    chosen = _barrier(barrier, frames[0], port) if negative else None
    sent_from = _text(chosen.port) if chosen and chosen.port else None
    run.start(chosen.frame if chosen else None, sent_from)
    decided_by, quiet_ok = _collect(topo, run, where.kind, timeout, quiet, barrier == "auto")
    return run.outcome(where.kind, where, decided_by, quiet_ok)


def _collect(
    topo: Topology, run: Run, kind: str, timeout: float, quiet: float, auto: bool
) -> tuple[str, bool]:
    """Read until decided: (how it was decided, whether absence rests on a quiet period).
    A positive late by `LATE` is watched for proof it cannot succeed (`_late.py`)."""
    if run.send_error is not None:
        return "the send failing", False
    deadline = run.started + timeout
    settled: float | None = None  # when the positives were all in
    late: Late | None = None
    try:
        while True:
            now = time.perf_counter()
            until_late = run.started + LATE - now  # wake then: a late probe is watched
            step = 0.002 if late is not None else until_late if until_late > 0 else 0.01
            run.read(max(0.0, min(deadline - now, step)))
            now = time.perf_counter()
            if run.positives_done(kind):
                settled = settled or now
                done = _negatives_done(run, now - settled, quiet, auto)
                if done is not None:
                    return done
            elif late is None and now - run.started >= LATE:
                late = Late(topo, run, kind)
            elif late is not None and (found := late.decided()) is not None:
                return found, False
            if now >= deadline:
                return "deadline" + (late.why_not if late is not None else ""), False
    finally:
        if late is not None:
            late.close()


def _negatives_done(run: Run, since: float, quiet: float, auto: bool) -> tuple[str, bool] | None:
    """With the positives in for `since` seconds: decided, or None (wait for the barrier)."""
    if not run.negative:
        return "positive match", False
    missing = run.barrier_missing()
    if not missing and run.barrier_port is not None:
        return "barrier", False
    if (run.barrier_port is None or auto) and since >= quiet:
        where = f" at {', '.join(missing)}" if run.barrier_port else ""
        return f"a quiet period of {quiet * 1000:.0f} ms{where} (no barrier path)", True
    return None


def _matches(
    match: Match | Mapping[str | Port, Match] | None, watched: list[str]
) -> tuple[Match, dict[str, Match]]:
    """(the match of ports not named, {port: its own match}); a port named but not
    watched is an error (its match would judge nothing)."""
    if match is None or isinstance(match, Match):
        return match or Match(), {}
    per_port = {_text(p): m for p, m in match.items()}
    stray = [p for p in per_port if p not in watched]
    if stray:
        raise TrafficError(f"a match for {stray[0]}, which this expectation does not watch")
    return Match(), per_port


def _default_among(topo: Topology, port: str) -> list[str]:
    """Every end-host port but the far end of the ingress link, which always sees it."""
    peer = _link_peer(topo, port)
    return [p for p in end_ports(topo) if p != peer]


def _link_peer(topo: Topology, port: str) -> str | None:
    host, ifname, _ = parse_port(port)
    peer = topo.peer(Port(host, ifname))
    return str(peer) if peer else None


def _barrier(
    barrier: Barrier | Literal["auto"] | None, frame: Template, port: str
) -> Barrier | None:
    if barrier != "auto":
        return barrier
    sent = decode(frame.data)  # same source MAC and tags: it teaches the bridge nothing new
    return Barrier(broadcast(sent.get("eth.src", "02:00:00:00:00:00"), sent.get("vlan", ())), port)


@functools.lru_cache(maxsize=256)
def broadcast(src: str, tags: tuple[tuple[int, int], ...]) -> Template:
    """An Ethernet broadcast with the given (TPID, VLAN id) tags, carrying a nonce slot.
    Built from bytes: the automatic barrier must not cost a scapy build per expectation."""
    head = bytes.fromhex("ffffffffffff" + src.replace(":", ""))
    head += b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in tags)
    head += struct.pack("!H", LOCAL_ETHERTYPE)
    data = head + SLOT + bytes(max(0, 60 - len(head) - len(SLOT)))
    vlans = "".join(f" vlan {vid}" for _, vid in tags)
    return Template(data, len(head), None, f"Ether broadcast from {src}{vlans} (barrier)")
