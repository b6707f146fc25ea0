"""Where did the frame die, and why: re-send a failed probe with everything armed.

`explain(topo, frame, port, outcome)` runs only when an expectation has failed, so it
adds nothing to passing checks. It sends the same probe once more (a fresh nonce) with
the kernel's drop trace, nft tracing and counter snapshots armed, reads the state of the
hosts involved, and ranks the causes. Without tracefs it says so and falls back to
counters and state. The nft tables and monitors it adds are removed on every path; the
trace instance is the topology's (`traffic._topotrace`, shared with late expectations):
idle between uses, removed at teardown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from ..errors import SetupError
from ..expect._outcome import Outcome
from ..topology import Topology
from ..traffic._craft import Template
from ..traffic._decode import decode
from ..traffic._droptrace import RECEIVE, DropReport, DropTrace, Wiring
from ..traffic._port import parse_port, ports
from ..traffic._topotrace import drop_trace
from . import _counters as counters
from . import _gather as gather
from ._cause import rank
from ._delivery import delivery_of, nat_rules
from ._facts import Cause, Delivery, Findings, HostFacts, PathFacts
from ._lookup import route_get
from ._nfttrace import NftReport, NftTrace, match_expression
from ._walk import devices as walk_devices


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
    """The device names of `topo` (as the kernel spells them, in every host, adopted ones
    too) and its veth pairs across namespaces, read from the kernel now."""
    return gather.wiring(gather.read_live(topo))


def explain(
    topo: Topology,
    frame: Template,
    port: str,
    outcome: Outcome | None = None,
    *,
    trace: bool = True,
    nft: bool = True,
    touch: bool | None = None,
) -> Explanation:
    """Re-send `frame` into `port` once with tracing armed and say why it failed.

    `trace=False` skips the kernel drop trace, `nft=False` the nft rule trace (counters
    and state are always read). `touch=False` changes nothing in namespaces netprobe did
    not create (no nft trace table there: the notes say what that costs); None takes the
    topology's `touch` setting (True unless set).
    """
    start = time.perf_counter()
    host, ifname, _vm = parse_port(port)
    data, nonce = frame.probe()
    armed = Armed.of(topo, (host, topo.ifname(host, ifname)), data, nft=nft, touch=touch)
    report, nft_reports = _send_traced(
        topo, armed.wiring, frame, port, (data, nonce), (armed.tracer, armed.traced), trace,
        armed.notes,
    )  # fmt: skip
    moved = armed.moved()
    found = _findings(topo, armed.live, port, (data, report, tuple(nft_reports), moved),
                      armed.wiring, armed.ruleset_hosts, outcome, armed.path)  # fmt: skip
    return Explanation(
        frame.summary,
        port,
        tuple(rank(found)),
        report,
        tuple(nft_reports),
        moved,
        tuple(dict.fromkeys([*report.notes, *armed.notes])),
        time.perf_counter() - start,
        outcome.reason if outcome is not None else None,
    )


@dataclass
class Armed:
    """What an explanation reads before its probe goes again: the live state, the
    probe's way by the tables, the hosts on it, whose rulesets it traces, and counters."""

    topo: Topology
    live: gather.Live
    wiring: Wiring
    path: PathFacts
    on_way: list[str]
    tracer: NftTrace
    ruleset_hosts: list[str]
    traced: list[str]
    notes: list[str]
    before: counters.Snapshot

    @classmethod
    def of(
        cls,
        topo: Topology,
        sender: tuple[str, str],
        data: bytes,
        *,
        nft: bool,
        touch: bool | None,
    ) -> Armed:
        """Read it all for a probe `data` leaving `sender` (host, kernel device name)."""
        touch = getattr(topo, "touch", True) if touch is None else touch
        live = gather.read_live(topo)
        path = gather.path_facts(topo, live, sender, decode(data), data)
        on_way = gather.relevant(live, path.steps + path.back, [sender[0]])
        notes: list[str] = []
        tracer = NftTrace(topo, _traceable(live, on_way), foreign=live.foreign)
        ruleset_hosts = tracer.ruleset_hosts() if nft else []
        traced = _trace_hosts(live, ruleset_hosts, touch, notes, tracer.table)
        before = counters.snapshot(topo, on_way, nft_hosts=ruleset_hosts)
        return cls(topo, live, gather.wiring(live), path, on_way, tracer, ruleset_hosts,
                   traced, notes, before)  # fmt: skip

    def moved(self) -> tuple[counters.Delta, ...]:
        """The counter deltas since `of`, of what bears on the probe's way."""
        after = counters.snapshot(
            self.topo, self.on_way, nft_hosts=self.ruleset_hosts, since=self.before,
            listings=self.tracer.listings,
        )  # fmt: skip
        return tuple(_on_way(self.live, self.path, counters.deltas(self.before, after)))


def _traceable(live: gather.Live, on_way: list[str]) -> list[str]:
    """Hosts whose rulesets may be traced: never the machine's own namespace."""
    return [h for h in on_way if h not in live.root]


def _trace_hosts(
    live: gather.Live, ruleset_hosts: list[str], touch: bool, notes: list[str], table: str
) -> list[str]:
    """The ruleset hosts to add a trace table to, and notes on the others."""
    foreign = [h for h in ruleset_hosts if h in live.foreign]
    if foreign and touch:
        notes.append(
            f"nft trace: a temporary table {table} was added in {', '.join(foreign)} "
            "(a namespace netprobe did not create) for this probe, and removed"
        )
    elif foreign:
        notes.append(
            f"no nft trace in {', '.join(foreign)} (touch=False: nothing is added to "
            "namespaces netprobe did not create): no rule can be named there, only the "
            "kernel's drop reason and the rule counters"
        )
    return [h for h in ruleset_hosts if touch or h not in live.foreign]


def _on_way(
    live: gather.Live, path: PathFacts, moved: list[counters.Delta]
) -> Iterable[counters.Delta]:
    """Counter deltas, of devices on the probe's way only in hosts netprobe did not make."""
    devices = set(walk_devices(path.steps + path.back))
    for delta in moved:
        device = (delta.host, delta.name.split(" ")[0])
        if delta.kind != "link" or delta.host not in live.foreign or device in devices:
            yield delta


def _findings(
    topo: Topology,
    live: gather.Live,
    port: str,
    seen: tuple[bytes, DropReport, tuple[NftReport, ...], tuple[counters.Delta, ...]],
    wiring: Wiring,
    ruleset_hosts: list[str],
    outcome: Outcome | Delivery | None,
    path: PathFacts,
) -> Findings:
    """What ranking reads: the probe, what the traces and counters saw, the state
    (`outcome`: the failed expectation, or what it saw, as a Delivery)."""
    data, report, nft_reports, moved = seen
    probe = decode(data)
    delivery = (
        outcome if isinstance(outcome, Delivery) or outcome is None
        else delivery_of(outcome, topo.ifname)
    )  # fmt: skip
    want = _interesting(wiring, port, topo.ifname, report, moved)
    host, ifname, _vm = parse_port(port)
    sender = (host, topo.ifname(host, ifname))
    near = gather.relevant(live, path.steps + path.back, [host, *want.lookups])
    facts = _facts(topo, live, near, want, probe, ruleset_hosts, delivery)
    return Findings(
        probe,
        port,
        report,
        nft_reports,
        moved,
        facts,
        delivery,
        wiring.peers,
        sender,
        len(data),
        path,
    )


def _send_traced(
    topo: Topology,
    wiring: Wiring,
    frame: Template,
    port: str,
    probe: tuple[bytes, bytes],
    nft: tuple[NftTrace, list[str]],
    trace: bool,
    notes: list[str],
) -> tuple[DropReport, list[NftReport]]:
    """Send the probe once with the drop trace and the nft trace armed; disarm both on
    every path."""
    data, nonce = probe
    tracer, traced = nft
    with ExitStack() as stack:
        drops = _open_droptrace(stack, topo, wiring, notes) if trace else None
        if not trace:
            notes.append(
                "no kernel drop trace (not asked for): the causes rest on counters and state"
            )
        expression = match_expression(frame, nonce) if traced else None
        if expression is not None:
            stack.callback(tracer.disarm)
            tracer.arm(expression, traced)
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
        return report, tracer.collect() if expression is not None else []


def _open_droptrace(
    stack: ExitStack, topo: Topology, wiring: Wiring, notes: list[str]
) -> DropTrace | None:
    try:
        return stack.enter_context(drop_trace(topo, wiring))
    except (SetupError, OSError) as exc:
        notes.append(f"no kernel drop trace ({exc}): the causes rest on counters and state")
        return None


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
    live: gather.Live,
    near: list[str],
    want: _Want,
    probe: Mapping[str, Any],
    ruleset_hosts: list[str],
    delivery: Delivery | None,
) -> dict[str, HostFacts]:
    """Each relevant host's facts; lookups, FDB entries and NAT rules only where they bear."""
    out = {}
    dst = probe.get("ip.dst", probe.get("ip6.dst"))
    src = str(probe.get("ip.src", probe.get("ip6.src")))
    declared = gather.declared_masters(topo)
    for host in near:
        mine = gather.link_facts(topo, live, host, declared.get(host, {}))
        addresses = tuple(a for link in mine.values() for a in link.addresses + link.addresses6)
        routes: dict[str, str] = {}
        fdb: tuple[str, ...] = ()
        tracked: tuple[str, ...] = ()
        back = None
        if host in want.lookups and dst is not None:
            iif = want.lookups[host]
            iif = iif if iif is not None and iif in mine and mine[iif].master is None else None
            query = f"ip route get {dst}" + (f" from {src} iif {iif}" if iif else "")
            routes = {query: _route_get(topo, live, host, (str(dst), src, iif))}
            back = live.route(host, src, topo) if src != "None" else None
        if delivery is not None and delivery.reply and str(dst) in addresses:
            routes[f"ip route get {src}"] = _route_get(topo, live, host, (src, None, None))
        bridges = {link.master for link in mine.values() if link.master}
        if host in want.lookups and bridges:
            mac = str(probe.get("eth.dst", ""))
            fdb = tuple(e for b in sorted(bridges) for e in counters.fdb_entry(topo, host, b, mac))
        if host in ruleset_hosts and dst is not None:
            tracked = tuple(counters.conntrack(topo, host, str(dst)))
        nat = _nat(topo, host, delivery, host in want.lookups or str(dst) in addresses)
        sysctls = counters.sysctls(topo, host, mine)
        out[host] = HostFacts(host, sysctls, mine, addresses, routes, fdb, tracked, nat, back)
    return out


def _route_get(
    topo: Topology, live: gather.Live, host: str, query: tuple[str, str | None, str | None]
) -> str:
    """The kernel's answer to `ip route get DST [from SRC iif IIF]` in `host`, over its
    netlink socket (`ip` only for what is no address: it says what is wrong with it)."""
    dst, src, iif = query
    try:
        return route_get(topo.hosts[host].nl, live.names[host], dst, src, iif)
    except ValueError:
        return counters.route_lookup(topo, host, dst, src, iif)


def _nat(
    topo: Topology, host: str, delivery: Delivery | None, near: bool
) -> tuple[str, ...] | None:
    """The NAT rules of a host the probe reached, when the expectation wanted a rewrite."""
    if delivery is None or not delivery.rewrites or not near:
        return None
    result = topo.run(host, ["nft", "list", "ruleset"])
    return nat_rules(result.stdout) if result.ok else None
