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
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from ..errors import SetupError
from ..expect._outcome import Outcome
from ..topology import Topology
from ..topology._model.spec import Veth
from ..traffic._craft import Template
from ..traffic._decode import decode
from ..traffic._port import parse_port, ports
from . import _counters as counters
from ._cause import rank
from ._delivery import delivery_of, nat_rules
from ._droptrace import RECEIVE, DropReport, DropTrace, Wiring
from ._facts import Cause, Delivery, Findings, HostFacts, LinkFacts
from ._nfttrace import NftReport, NftTrace, match_expression


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
        """The most likely cause (None when none was found)."""
        return self.causes[0] if self.causes else None

    def to_dict(self) -> dict[str, Any]:
        """The explanation and the evidence behind it, as the results document holds it."""
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
        """The `limit` likeliest causes with evidence, the packet's path and notes, as text."""
        lines = [f"why: {self.probe} into {self.port}"]
        if self.failure:
            lines[0] += f" ({self.failure})"
        shown = self.causes[:limit]
        lines += [c.render() for c in shown]
        said = any(e.startswith("path: ") for c in shown for e in c.evidence)
        if self.drops.path and not said:
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


def _live_wiring(topo: Topology, links: Mapping[str, Mapping[str, LinkFacts]]) -> Wiring:
    """`wiring_of` plus devices made outside the spec (a veth added by hand), with their
    peers when both ends share a namespace."""
    base = wiring_of(topo)
    names = {k: list(v) for k, v in base.names.items()}
    peers = dict(base.peers)
    for host in (h.name for h in topo.spec.hosts if h.owned):
        for link in links.get(host, {}).values():
            if link.name == "lo" or host in names.get(link.name, []):
                continue
            names.setdefault(link.name, []).append(host)
            if link.peer is not None and (host, link.name) not in peers:
                peers[(host, link.name)] = (host, link.peer)
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
    owned = [h.name for h in topo.spec.hosts if h.owned]  # counters: unrelated traffic
    links = {host: _links(topo, host) for host in hosts}  # elsewhere would be blamed
    wiring = _live_wiring(topo, links)
    data, nonce = frame.probe()
    notes: list[str] = []
    tracer = NftTrace(topo, owned)
    ruleset_hosts = tracer.ruleset_hosts() if nft else []
    before = counters.snapshot(topo, owned, nft_hosts=ruleset_hosts)
    report, nft_reports = _send_traced(
        topo, wiring, frame, port, (data, nonce), tracer if ruleset_hosts else None, trace, notes
    )
    after = counters.snapshot(topo, owned, nft_hosts=ruleset_hosts)
    moved = tuple(counters.deltas(before, after))
    found = _findings(topo, port, (data, report, tuple(nft_reports), moved), links, wiring,
                      ruleset_hosts, outcome)  # fmt: skip
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


def _findings(
    topo: Topology,
    port: str,
    seen: tuple[bytes, DropReport, tuple[NftReport, ...], tuple[counters.Delta, ...]],
    links: Mapping[str, Mapping[str, LinkFacts]],
    wiring: Wiring,
    ruleset_hosts: list[str],
    outcome: Outcome | None,
) -> Findings:
    """What ranking reads: the probe, what the traces and counters saw, the state."""
    data, report, nft_reports, moved = seen
    probe = decode(data)
    delivery = delivery_of(outcome, topo.ifname) if outcome is not None else None
    want = _interesting(wiring, port, topo.ifname, report, moved)
    facts = _facts(topo, links, want, probe, ruleset_hosts, delivery)
    host, ifname, _vm = parse_port(port)
    sender = (host, topo.ifname(host, ifname))
    return Findings(
        probe, port, report, nft_reports, moved, facts, delivery, wiring.peers, sender, len(data)
    )


def _send_traced(
    topo: Topology,
    wiring: Wiring,
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
        drops = _open_droptrace(stack, wiring, topo.runid, notes) if trace else None
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
            host, ifname, _vm = parse_port(port)
            report = drops.collect(
                marker, frame_len=len(data), first_host=host, first_dev=topo.ifname(host, ifname)
            )
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
    wiring: Wiring,
    port: str,
    kname: Callable[[str, str], str],
    report: DropReport,
    moved: tuple[counters.Delta, ...],
) -> _Want:
    """Hosts where the probe arrived (from the trace, else the port's peer) or that
    counted something, with the device it arrived on."""
    want = _Want()
    for hop in report.path:
        if hop.event == RECEIVE and hop.host and hop.host not in want.lookups:
            want.lookups[hop.host] = hop.device
    host, ifname, _ = parse_port(port)
    first = wiring.peers.get((host, kname(host, ifname)))  # wiring speaks kernel names
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
    links: Mapping[str, Mapping[str, LinkFacts]],
    want: _Want,
    probe: Mapping[str, Any],
    ruleset_hosts: list[str],
    delivery: Delivery | None,
) -> dict[str, HostFacts]:
    """Each host's facts; lookups, FDB entries and NAT rules only where they bear."""
    out = {}
    dst = probe.get("ip.dst", probe.get("ip6.dst"))
    src = str(probe.get("ip.src", probe.get("ip6.src")))
    for spec_host in topo.spec.hosts:
        host = spec_host.name
        mine = links[host]
        addresses = tuple(a for link in mine.values() for a in link.addresses + link.addresses6)
        routes: dict[str, str] = {}
        fdb: tuple[str, ...] = ()
        tracked: tuple[str, ...] = ()
        if host in want.lookups and dst is not None:
            iif = want.lookups[host]
            iif = iif if iif is not None and iif in mine and mine[iif].master is None else None
            query = f"ip route get {dst}" + (f" from {src} iif {iif}" if iif else "")
            routes = {query: counters.route_lookup(topo, host, str(dst), src, iif)}
        if delivery is not None and delivery.reply and str(dst) in addresses:
            routes[f"ip route get {src}"] = counters.route_lookup(topo, host, src, None, None)
        bridges = {link.master for link in mine.values() if link.master}
        if host in want.lookups and bridges:
            mac = str(probe.get("eth.dst", ""))
            fdb = tuple(e for b in sorted(bridges) for e in counters.fdb_entry(topo, host, b, mac))
        if host in ruleset_hosts and dst is not None:
            tracked = tuple(counters.conntrack(topo, host, str(dst)))
        nat = _nat(topo, host, delivery, host in want.lookups or str(dst) in addresses)
        sysctls = counters.sysctls(topo, host, mine)
        out[host] = HostFacts(host, sysctls, mine, addresses, routes, fdb, tracked, nat)
    return out


def _nat(
    topo: Topology, host: str, delivery: Delivery | None, near: bool
) -> tuple[str, ...] | None:
    """The NAT rules of a host the probe reached, when the expectation wanted a rewrite."""
    if delivery is None or not delivery.rewrites or not near:
        return None
    result = topo.run(host, ["nft", "list", "ruleset"])
    return nat_rules(result.stdout) if result.ok else None


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
        port = info.get("info_slave_data", {}) if info.get("info_slave_kind") == "bridge" else {}
        ageing = info.get("info_data", {}).get("ageing_time")
        addrs = by_index.get(item.get("ifindex", -1), [])
        out[name] = LinkFacts(
            name,
            item.get("address"),
            item.get("master"),
            declared.get(name),
            port.get("state"),
            "UP" in item.get("flags", []),
            info.get("info_kind") or ("loopback" if name == "lo" else None),
            tuple(a for a in addrs if ":" not in a),
            item.get("mtu"),
            port.get("learning"),
            port.get("flood"),
            ageing / 100
            if isinstance(ageing, int | float) and info.get("info_kind") == "bridge"
            else None,
            item.get("link") if info.get("info_kind") == "veth" else None,
            tuple(a for a in addrs if ":" in a and not a.lower().startswith("fe80")),
        )
    return out
