"""Why a probe from a host's own stack failed: send it again with everything armed.

As `explain` does for a crafted frame, with two differences: the probe is sent again
from the host's socket (its routes, neighbours and OUTPUT rules take part again), and the
nft trace is armed for it once its mark is known (the nonce of an ICMP or UDP probe, the
chosen source port of a TCP SYN), just before it leaves. The frame the causes reason
about is the probe as it left the sender, captured; when it never left (no route, no
neighbour), one made to its measure.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

from ..expect import ROUTED, Match, ProbeResult, Where, compare, expected_fields
from ..expect import probe as send_probe
from ..topology import Topology
from ..traffic._craft import NONCE_LEN
from ..traffic._decode import Fields, decode, summary
from ..traffic._droptrace import DropReport
from ..traffic._stack import StackProbe
from ._cause import rank
from ._explanation import Armed, Explanation, _findings, _open_droptrace
from ._facts import Cause, Delivery
from ._nfttrace import NftReport
from ._probecause import probe_causes

_L4_HEADER = {"icmp": 8, "udp": 8}  # bytes before the nonce, from the transport header


def explain_probe(
    topo: Topology,
    result: ProbeResult,
    *,
    where: Where | None = None,
    match: Match | None = None,
    trace: bool = True,
    nft: bool = True,
    touch: bool | None = None,
) -> Explanation:
    """Send the probe of `result` once more from its host's stack with the drop trace,
    the nft trace and counters armed, and rank the causes of its failure. `where` and
    `match`, those `expect_from_host` was given, say what was expected of it (a rewrite
    missing at the port where it arrived ranks first). `touch=False` adds nothing to
    namespaces netprobe did not create (None: the topology's setting)."""
    start = time.perf_counter()
    port, data = _first_frame(topo, result)
    host, _, ifname = port.partition(":")
    armed = Armed.of(topo, (host, ifname), data, nft=nft, touch=touch)
    notes = armed.notes
    with ExitStack() as stack:
        drops = _open_droptrace(stack, topo, armed.wiring, notes) if trace else None
        marker = drops.mark(result.target) if drops is not None else ""

        def arm(probe: StackProbe) -> None:
            if armed.traced:
                stack.callback(armed.tracer.disarm)
                armed.tracer.arm(_expression(probe), armed.traced)

        again = send_probe(
            topo, result.sender, result.dst, result.proto, result.port,
            hosts=result.watched or None, before_send=arm, size=result.size,
        )  # fmt: skip
        if drops is not None and again.socket is not None and again.socket.at_send:
            # Refused by the sender's own kernel: no buffer went anywhere, and a frame of
            # the probe's length on a device of the same name is someone else's.
            drops.collect(marker, frame_len=len(data), first_host=host, first_dev=ifname)
            report = DropReport(True, notes=("the probe never left its socket: no buffer "
                                             "to follow",))  # fmt: skip
        elif drops is not None:
            report = drops.collect(marker, frame_len=len(data), first_host=host, first_dev=ifname)
        else:
            notes.append("no kernel drop trace (not asked for): the causes rest on counters")
            report = DropReport(False, notes=tuple(notes))
        nft_reports: list[NftReport] = armed.tracer.collect() if armed.traced else []
    moved = armed.moved()
    if again.ending is not result.ending:
        notes.append(f"sent again, the probe ended otherwise: {again.ending.value}")
    expected = _delivery(topo, result, where, match)
    found = _findings(topo, armed.live, port, (data, report, tuple(nft_reports), moved),
                      armed.wiring, armed.ruleset_hosts, expected, armed.path)  # fmt: skip
    return Explanation(
        f"{result.proto} from {result.sender}'s stack to {result.target}: {summary(decode(data))}",
        port,
        tuple(_merged(probe_causes(topo, result), rank(found))),
        report,
        tuple(nft_reports),
        moved,
        tuple(dict.fromkeys([*report.notes, *notes])),
        time.perf_counter() - start,
        result.words,
    )


def _delivery(
    topo: Topology, result: ProbeResult, where: Where | None, match: Match | None
) -> Delivery | None:
    """What the expectation saw of the probe's copies, as ranking reads it of a crafted
    frame's outcome: the ports missed, the ports it arrived at altered, the leaks."""
    copies = result.trace.copies
    if where is None or not copies:
        return None
    sent = decode(copies[0].frame.data)
    wanted = Match(ROUTED.mask | match.mask, match.rewrites) if match else ROUTED
    expected, ignored = expected_fields(sent, wanted)
    first: dict[str, Fields] = {}
    for copy in copies:
        first.setdefault(copy.port, copy.fields)
    altered = {
        p: tuple(str(d) for d in diffs)
        for p in where.ports
        if p in first and match is not None
        and (diffs := compare(expected, ignored | {"ip.id", "payload"}, first[p]))
    }  # fmt: skip
    among = where.among or () if where.kind in ("at_exactly", "nowhere") else ()
    src, dst = ("ip6.src", "ip6.dst") if "ip6.dst" in sent else ("ip.src", "ip.dst")
    keys = (src, dst, "l4.sport", "l4.dport")
    devices = {p: (h, topo.ifname(h, i)) for p in (*where.ports, *among)
               for h, _, i in [p.partition(":")]}  # fmt: skip
    return Delivery(
        tuple(where.ports),
        tuple(p for p in where.ports if p not in first),
        tuple(p for p in among if p not in where.ports and p in first),
        altered,
        False,
        {k: expected[k] for k in keys if expected.get(k) != sent.get(k)},
        tuple(devices[p] for p in where.ports),
        devices,
    )


def _merged(first: list[Cause], ranked: list[Cause]) -> list[Cause]:
    """The probe's own causes and the traces', by score (the probe's first on a tie)."""
    seen = {c.text for c in first}
    return sorted(first + [c for c in ranked if c.text not in seen], key=lambda c: -c.score)


def _expression(probe: StackProbe) -> str:
    """An nft expression that matches this probe wherever NAT has taken it: by its nonce
    after the transport header (ICMP, UDP), by its source port and SYN alone (TCP)."""
    if probe.proto == "tcp":
        return f"tcp sport {probe.sport} tcp flags & (syn | ack) == syn"
    at = _L4_HEADER[probe.proto] * 8
    return f"@th,{at},{NONCE_LEN * 8} 0x{probe.nonce.hex()}"


def _first_frame(topo: Topology, result: ProbeResult) -> tuple[str, bytes]:
    """The sender's port and the probe as it left it; made to measure if it never did."""
    for copy in result.trace.copies:
        if copy.port.partition(":")[0] == result.sender:
            return copy.port, copy.frame.data
    return _made_to_measure(topo, result)


def _made_to_measure(topo: Topology, result: ProbeResult) -> tuple[str, bytes]:
    """The probe as it would have left: by the sender's route if it has one (to the
    gateway's MAC when known), else by its first interface."""
    from ..traffic import icmp_echo, tcp, udp

    state = topo.live(result.sender)
    route = topo.route_to(result.sender, result.dst)
    dev = route.dev if route and route.dev else next(
        (i.name for i in state.interfaces if i.kind != "loopback"), "lo"
    )
    iface = state.interface(dev)
    src = result.src or (route.src if route and route.src else None)
    if src is None and iface is not None and iface.addresses:
        src = str(iface.addresses[0].ip)
    hop = route.gateway if route and route.gateway else result.dst
    known = state.neighbour(hop)
    dst_mac = known.mac if known and known.mac else "ff:ff:ff:ff:ff:ff"
    src_mac = iface.mac if iface is not None and iface.mac else "02:00:00:00:00:01"
    src = src or ("::" if ":" in result.dst else "0.0.0.0")
    if result.proto == "tcp":
        frame = tcp(src_mac, dst_mac, src, result.dst, dport=result.port or 80)
    elif result.proto == "udp":
        frame = udp(src_mac, dst_mac, src, result.dst, dport=result.port or 9)
    else:
        frame = icmp_echo(src_mac, dst_mac, src, result.dst)
    return f"{result.sender}:{dev}", frame.data
