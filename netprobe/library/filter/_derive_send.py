"""Derived probes sent: the flows established and related probes need opened first, then
every probe in traced batches, in rounds where probes share ports (their traces could
not be told apart otherwise)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

from netprobe.topology import Topology
from netprobe.topology._kernel.nftrace import TraceEvent, TraceSocket
from netprobe.traffic import new_nonce

from .batch import Barrier, Outcome, Probe, run_batch
from .probes import Built

_TABLE = "netprobe_trace_derive"
_V = TypeVar("_V")
_TH = 2  # NFT_PAYLOAD_TRANSPORT_HEADER


def send(topo: Topology, host: str, built: list[Built]) -> Sent:
    """Open the flows established and related probes need, then send every probe whose
    flow is open in traced batches: one, unless probes share ports (a rule fixing both),
    whose traces could not be told apart: each of those in a round of its own."""
    session = new_nonce()[:8]  # MAGIC and this process's session: every crafted probe
    marks = [("prerouting", (_TH, at, session)) for at in
             sorted({8, 20} | {b.mark_at for b in built if b.mark_at})]
    marks += [("output", (_TH, 8, session))]
    marks += [("output", (_TH, 0, b.key[1:3])) for b in built
              if b.probe.frame is None and b.proto == "tcp"]
    sent = Sent({}, {}, {}, {})
    sock = TraceSocket(topo.fd_of(host), buffer=256 << 20)
    try:
        sock.add_rules("inet", _TABLE, marks)
        for n, batch in enumerate(_rounds(built)):
            sending = batch if n == 0 else _fresh(batch)
            part = Sent({}, {}, {}, {})
            _round(topo, sock, sending, part)
            back = {id(b): mine for b, mine in zip(sending, batch, strict=True)}
            sent.outcomes.update(_back(part.outcomes, back))
            sent.traces.update(_back(part.traces, back))
            sent.blocked.update(_back(part.blocked, back))
            sent.unknown.update(_back(part.unknown, back))
        sock.delete_table("inet", _TABLE)
    finally:
        sock.close()
    return sent


def _round(topo: Topology, sock: TraceSocket, built: list[Built], sent: Sent) -> None:
    """One batch whose probes' flows are all distinct: openers first, then the probes."""
    blocked, unknown = _open_flows(topo, sock, [b for b in built if b.opener is not None])
    sent.blocked.update(blocked)
    sent.unknown.update(unknown)
    go = [b for b in built if b not in blocked and b not in unknown]
    found, traces = _phase(topo, sock, [(b.probe, None if _blind(b) else b.barrier, b.key)
                                        for b in go])
    for b, outcome in zip(go, found, strict=True):
        sent.outcomes[b] = Outcome(None, _UNSEEN) if _blind(b) else outcome
        if b.key in traces:
            sent.traces[b] = traces[b.key]


_UNSEEN = ("delivery not observable: a TCP SYN from the host's socket to itself carries "
           "no nonce")


def _back(found: dict[Built, _V], back: dict[int, Built]) -> dict[Built, _V]:
    """A round's findings by the probes as built (not their copies with fresh barriers)."""
    return {back[id(b)]: v for b, v in found.items()}


def _fresh(built: list[Built]) -> list[Built]:
    """The probes with barriers of new nonces: a barrier of an earlier round that came
    late must not close this one's paths."""
    made: dict[bytes, Barrier] = {}

    def renew(b: Barrier | None) -> Barrier | None:
        if b is None or b.nonce not in b.frame:
            return b
        if b.nonce not in made:
            nonce = new_nonce()[:len(b.nonce)]
            made[b.nonce] = replace(b, frame=b.frame.replace(b.nonce, nonce), nonce=nonce)
        return made[b.nonce]

    return [replace(b, barrier=renew(b.barrier) or b.barrier,
                    opener_barrier=renew(b.opener_barrier),
                    own_way=None if b.own_way is None else (
                        (b.own_way[0][0], renew(b.own_way[0][1]) or b.own_way[0][1]),
                        (b.own_way[1][0], renew(b.own_way[1][1]) or b.own_way[1][1])))
            for b in built]


def _rounds(built: list[Built]) -> list[list[Built]]:
    """The probes in rounds in which no two share a flow (their own or their opener's)."""
    rounds: list[tuple[list[Built], set[bytes]]] = []
    for b in built:
        flows = {_flow(b.key)} | ({_flow(b.opener_key)} if b.opener is not None else set())
        for batch, used in rounds:
            if not flows & used:
                batch.append(b)
                used |= flows
                break
        else:
            rounds.append(([b], flows))
    return [batch for batch, _ in rounds]


def _flow(key: bytes) -> bytes:
    """A trace key's flow, either way: protocol and both ports, or an ICMP identifier."""
    if len(key) == 5:
        return key[0:1] + min(key[1:3], key[3:5]) + max(key[1:3], key[3:5])
    return b"icmp" + key[1:3]


@dataclass(frozen=True)
class Sent:
    """What the rounds found: each probe's outcome and trace, and why a flow was not open."""

    outcomes: dict[Built, Outcome]
    traces: dict[Built, list[TraceEvent]]
    blocked: dict[Built, list[list[TraceEvent]]]  # probe → its openers' traces, none opened
    unknown: dict[Built, str]  # probe → why its flow is not known to be open


def _blind(built: Built) -> bool:
    """A TCP SYN from the host's socket to itself carries no nonce its stack shows."""
    return built.probe.frame is None and built.proto == "tcp" \
        and built.probe.observe.kind == "stack"


def _phase(topo: Topology, sock: TraceSocket,
           steps: list[tuple[Probe, Barrier | None, bytes]]
           ) -> tuple[list[Outcome], dict[bytes, list[TraceEvent]]]:
    if not steps:
        return [], {}
    before = len(sock.events())
    found = run_batch(topo, [p for p, _, _ in steps],
                      {p.path: b for p, b, _ in steps if b is not None})
    return found, _by_probe(sock.events()[before:], {k for _, _, k in steps})


def _open_flows(topo: Topology, sock: TraceSocket, built: list[Built]
                ) -> tuple[dict[Built, list[list[TraceEvent]]], dict[Built, str]]:
    """Send each opener the other way; where it is dropped, open the flow from the probe's
    own side (its first packet, then the reply). The probes whose flow neither opened,
    with the traces of the openers that were dropped; and those whose flow may or may not
    be open (an opener's delivery undecided), with why."""
    built = [b for b in built if b.opener and b.opener_barrier]
    found, traces = _phase(topo, sock, [(b.opener, b.opener_barrier, b.opener_key)
                                        for b in built if b.opener])
    unknown = {b: f"its first packet the other way: {o.how}"
               for b, o in zip(built, found, strict=True) if o.arrived is None}
    dropped = [b for b, o in zip(built, found, strict=True) if o.arrived is False]
    blocked = {b: [traces.get(b.opener_key, [])] for b in dropped}
    ways = [b for b in dropped if b.own_way is not None]
    found, traces = _phase(topo, sock, [(*b.own_way[0], b.key) for b in ways if b.own_way])
    firsts = []
    for b, o in zip(ways, found, strict=True):
        if o.arrived:
            firsts.append(b)
        elif o.arrived is False:
            blocked[b].append(traces.get(b.key, []))
        else:
            del blocked[b]
            unknown[b] = f"its first packet from the probe's own side: {o.how}"
    found, _ = _phase(topo, sock, [(*b.own_way[1], b.opener_key) for b in firsts
                                   if b.own_way])
    for b, o in zip(firsts, found, strict=True):
        if o.arrived is not False:
            del blocked[b]
        if o.arrived is None:
            unknown[b] = f"the reply from the probe's own side: {o.how}"
    return blocked, unknown


def _by_probe(events: list[TraceEvent], keys: set[bytes]) -> dict[bytes, list[TraceEvent]]:
    """Trace events by the probe they belong to: a trace id names a packet only until
    its buffer is reused, so each event with headers says whose the id is from there on."""
    owner: dict[str, bytes | None] = {}
    out: dict[bytes, list[TraceEvent]] = {}
    for event in events:
        if event.table.startswith("netprobe_trace"):
            continue
        if event.transport is not None:
            th = event.transport
            owner[event.trace_id] = next(
                (k for k in (b"\x06" + th[0:4], b"\x11" + th[0:4], th[0:1] + th[4:6])
                 if k in keys), None)
        key = owner.get(event.trace_id)
        if key is not None:
            out.setdefault(key, []).append(event)
    return out
