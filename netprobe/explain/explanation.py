"""Where did the frame die, and why: re-send a failed probe with everything armed.

`explain(topo, frame, port, outcome)` runs only when an expectation has failed, so it
adds nothing to passing checks. It sends the same probe once more (a fresh nonce) with
the kernel's drop trace, nft tracing and counter snapshots armed, reads the state of the
hosts involved, and ranks the causes. Without tracefs it says so and falls back to
counters and state. Everything it adds (trace instance, nft tables, monitors) is
removed on every path.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from ..errors import SetupError
from ..expect.outcome import Outcome
from ..topology import Topology
from ..topology.spec import Veth
from ..traffic.craft import Template
from ..traffic.decode import decode
from ..traffic.port import parse_port, ports
from . import counters
from .cause import Cause, Findings, HostFacts, LinkFacts, rank
from .droptrace import RECEIVE, DropReport, DropTrace, Wiring
from .nfttrace import NftReport, NftTrace, match_expression

__all__ = ["Explanation", "explain", "wiring_of"]


@dataclass(frozen=True)
class Explanation:
    """Ranked causes of a failed expectation, with the findings behind them."""

    probe: str
    port: str
    causes: tuple[Cause, ...]
    drops: DropReport
    nft: tuple[NftReport, ...] = ()
    deltas: tuple[counters.Delta, ...] = ()
    notes: tuple[str, ...] = ()
    elapsed: float = 0.0
    failure: str | None = None  # the outcome's reason

    @property
    def top(self) -> Cause | None:
        return self.causes[0] if self.causes else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "port": self.port,
            "failure": self.failure,
            "causes": [c.to_dict() for c in self.causes],
            "drop_trace": self.drops.to_dict(),
            "nft_trace": [r.to_dict() for r in self.nft],
            "counters": [d.to_dict() for d in self.deltas],
            "notes": list(self.notes),
            "elapsed": round(self.elapsed, 4),
        }

    def render(self, limit: int = 5) -> str:
        lines = [f"why: {self.probe} into {self.port}"]
        if self.failure:
            lines[0] += f" ({self.failure})"
        lines += [c.render() for c in self.causes[:limit]]
        if self.drops.path:
            lines.append("  path: " + ", ".join(h.describe() for h in self.drops.path))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


def wiring_of(topo: Topology) -> Wiring:
    """The device names of `topo` (as the kernel spells them) and its veth pairs."""
    names: dict[str, list[str]] = {}
    peers: dict[tuple[str, str], tuple[str, str]] = {}
    for host in topo.spec.hosts:
        for iface in host.interfaces:
            kname = topo.ifname(host.name, iface.name)
            names.setdefault(kname, []).append(host.name)
            if isinstance(iface.kind, Veth):
                peer_host, _, peer_if = iface.kind.peer.partition(":")
                there = (peer_host, topo.ifname(peer_host, peer_if))
                peers[(host.name, kname)] = there
                peers[there] = (host.name, kname)
    return Wiring({k: tuple(v) for k, v in names.items()}, peers)


def explain(
    topo: Topology,
    frame: Template,
    port: str,
    outcome: Outcome | None = None,
    *,
    trace: bool = True,
    nft: bool = True,
) -> Explanation:
    """Re-send `frame` into `port` once with tracing armed and say why it failed.

    `trace=False` skips the kernel drop trace, `nft=False` the nft rule trace (counters
    and state are always read).
    """
    start = time.perf_counter()
    hosts = [h.name for h in topo.spec.hosts]
    owned = [h.name for h in topo.spec.hosts if h.owned]
    wiring = wiring_of(topo)
    data, nonce = frame.probe()
    notes: list[str] = []
    tracer = NftTrace(topo, owned)
    ruleset_hosts = tracer.ruleset_hosts() if nft else []
    before = counters.snapshot(topo, hosts, nft_hosts=ruleset_hosts)
    report, nft_reports = _send_traced(
        topo, frame, port, (data, nonce), tracer if ruleset_hosts else None, trace, notes
    )
    after = counters.snapshot(topo, hosts, nft_hosts=ruleset_hosts)
    moved = tuple(counters.deltas(before, after))
    probe = decode(data)
    facts = _facts(topo, wiring, port, probe, report, moved, ruleset_hosts)
    found = Findings(probe, port, report, tuple(nft_reports), moved, facts)
    return Explanation(
        frame.summary,
        port,
        tuple(rank(found)),
        report,
        tuple(nft_reports),
        moved,
        tuple(dict.fromkeys([*report.notes, *notes])),
        time.perf_counter() - start,
        outcome.reason if outcome is not None else None,
    )


def _send_traced(
    topo: Topology,
    frame: Template,
    port: str,
    probe: tuple[bytes, bytes],
    tracer: NftTrace | None,
    trace: bool,
    notes: list[str],
) -> tuple[DropReport, list[NftReport]]:
    """Send the probe once with the drop trace and the nft trace armed; disarm both on
    every path."""
    data, nonce = probe
    with ExitStack() as stack:
        drops = _open_droptrace(stack, wiring_of(topo), topo.runid, notes) if trace else None
        if not trace:
            notes.append(
                "no kernel drop trace (not asked for): the causes rest on counters and state"
            )
        expression = match_expression(frame, nonce) if tracer is not None else None
        if tracer is not None and expression is not None:
            stack.callback(tracer.disarm)
            tracer.arm(expression, tracer.ruleset_hosts())
        marker = drops.mark(frame.summary) if drops is not None else ""
        ports(topo).sender(port).send(data)
        if drops is not None:
            report = drops.collect(marker, frame_len=len(data), first_host=parse_port(port)[0])
        else:
            time.sleep(0.03)  # let the probe's path finish before counting
            report = DropReport(False, notes=tuple(notes))
        armed = tracer is not None and expression is not None
        return report, tracer.collect() if tracer is not None and armed else []


def _open_droptrace(
    stack: ExitStack, wiring: Wiring, runid: str, notes: list[str]
) -> DropTrace | None:
    tracer = DropTrace(wiring, runid=runid)
    try:
        tracer.open()
    except (SetupError, OSError) as exc:
        notes.append(f"no kernel drop trace ({exc}): the causes rest on counters and state")
        return None
    stack.callback(tracer.close)
    return tracer


@dataclass
class _Want:
    """Which hosts the state is read from, and what to ask each."""

    lookups: dict[str, str | None] = field(default_factory=dict)  # host → iif (None: any)


def _interesting(
    wiring: Wiring, port: str, report: DropReport, moved: tuple[counters.Delta, ...]
) -> _Want:
    """Hosts where the probe arrived (from the trace, else the port's peer) or that
    counted something, with the device it arrived on."""
    want = _Want()
    for hop in report.path:
        if hop.event == RECEIVE and hop.host and hop.host not in want.lookups:
            want.lookups[hop.host] = hop.device
    host, ifname, _ = parse_port(port)
    first = wiring.peers.get((host, ifname))
    if first is not None:
        want.lookups.setdefault(first[0], first[1])
    for delta in moved:
        if delta.kind == "snmp":
            want.lookups.setdefault(delta.host, None)
    for drop in report.drops:
        if drop.host:
            want.lookups[drop.host] = drop.device
    return want


def _facts(
    topo: Topology,
    wiring: Wiring,
    port: str,
    probe: Mapping[str, Any],
    report: DropReport,
    moved: tuple[counters.Delta, ...],
    ruleset_hosts: list[str],
) -> dict[str, HostFacts]:
    want = _interesting(wiring, port, report, moved)
    out = {}
    for spec_host in topo.spec.hosts:
        host = spec_host.name
        links = _links(topo, host)
        sysctls = counters.sysctls(topo, host, links)
        addresses = tuple(a for link in links.values() for a in link.addresses)
        routes: dict[str, str] = {}
        fdb: tuple[str, ...] = ()
        tracked: tuple[str, ...] = ()
        dst = probe.get("ip.dst", probe.get("ip6.dst"))
        if host in want.lookups and dst is not None:
            iif = want.lookups[host]
            iif = iif if iif in links and links[iif].master is None else None
            src = str(probe.get("ip.src", probe.get("ip6.src")))
            query = f"ip route get {dst}" + (f" from {src} iif {iif}" if iif else "")
            routes = {query: counters.route_lookup(topo, host, str(dst), src, iif)}
        bridges = {link.master for link in links.values() if link.master}
        if host in want.lookups and bridges:
            mac = str(probe.get("eth.dst", ""))
            fdb = tuple(e for b in sorted(bridges) for e in counters.fdb_entry(topo, host, b, mac))
        if host in ruleset_hosts and dst is not None:
            tracked = tuple(counters.conntrack(topo, host, str(dst)))
        out[host] = HostFacts(host, sysctls, links, addresses, routes, fdb, tracked)
    return out


def _links(topo: Topology, host: str) -> dict[str, LinkFacts]:
    """The kernel's view of `host`'s links, with the masters its spec declares."""
    spec = topo.spec.host(host)
    declared = {
        topo.ifname(host, i.name): topo.ifname(host, i.master) for i in spec.interfaces if i.master
    }
    by_index: dict[int, list[str]] = {}
    for addr in topo.hosts[host].nl.addr_states():
        by_index.setdefault(addr.index, []).append(addr.address)
    out = {}
    for name, item in counters.links(topo, host).items():
        info = item.get("linkinfo", {})
        state = None
        if info.get("info_slave_kind") == "bridge":
            state = info.get("info_slave_data", {}).get("state")
        out[name] = LinkFacts(
            name,
            item.get("address"),
            item.get("master"),
            declared.get(name),
            state,
            "UP" in item.get("flags", []),
            info.get("info_kind"),
            tuple(a for a in by_index.get(item.get("ifindex", -1), []) if ":" not in a),
        )
    return out
