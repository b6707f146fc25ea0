"""The nftables rule that dropped a probe, from the kernel's nf_tables trace events.

A table of netprobe's own (`netprobe_trace_RUNID`, in each traced host) sets `meta
nftrace set 1` on the probe alone, matched by its 16-byte nonce, at prerouting with a
priority before every other chain. In a namespace netprobe did not create, the table's
removal is written to the run's record before the table is added, so `netprobe clean`
removes it after a kill. The table is added, its trace events read and the table deleted
over netlink, in-process (`topology._kernel.nftrace`; the table is owned by that socket,
so it goes with the process too): each chain and rule the probe went through with its
verdict, as `nft monitor trace` shows them, rule text from one `nft -a list ruleset` read
only when the probe met a rule outside netprobe's table. iptables-nft rulesets are nft
tables underneath, so their rules show up too. The table is deleted on every path.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import struct
from dataclasses import dataclass, field
from typing import Any

from ..topology import Topology
from ..topology._kernel import nfnl, nftrace
from ..traffic._craft import NONCE_LEN, Template

TABLE = "netprobe_trace"  # … followed by _RUNID: the name of netprobe's own trace tables
_EVENT = re.compile(r"^trace id (\S+) (\S+) (\S+) (\S+) (.*)$")
_RULE = re.compile(r"^rule (?P<rule>.*?)(?: # handle (?P<handle>\d+))? \(verdict (?P<v>[^)]*)\)")
_COUNTER = re.compile(r"\s*counter packets \d+ bytes \d+")
_FAMILIES = ("ip", "ip6", "inet", "bridge")
_PAYLOAD = re.compile(r"^@(?P<base>nh|th),(?P<offset>\d+),(?P<length>\d+) 0x(?P<value>[0-9a-f]+)$")
_TABLE_LINE = re.compile(r"^table (\S+) (\S+) \{")
_CHAIN_LINE = re.compile(r"^chain (\S+) \{")
_HANDLE = re.compile(r"\s*# handle (\d+)\b")


@dataclass(frozen=True)
class TraceStep:
    """One line of `nft monitor trace`: a packet seen, a rule's verdict, or a policy."""

    trace_id: str
    family: str
    table: str
    chain: str
    kind: str  # "packet", "rule", "policy" or "other"
    rule: str | None = None
    handle: int | None = None
    verdict: str | None = None

    def describe(self) -> str:
        """The rule or chain policy this step is, in one line."""
        where = f"{self.family} {self.table} {self.chain}"
        if self.kind == "policy":
            return f"the policy of chain {where} ({self.verdict})"
        handle = f", handle {self.handle}" if self.handle is not None else ""
        return f"rule `{self.rule}` (chain {where}{handle})"

    @property
    def action(self) -> str | None:
        """drop or reject for a final verdict; None otherwise."""
        if self.verdict != "drop":
            return None
        return "reject" if self.rule and re.search(r"\breject\b", self.rule) else "drop"


def parse_monitor(text: str) -> list[TraceStep]:
    """Every trace line of `nft [-a] monitor trace` output, in order."""
    steps = []
    for line in text.splitlines():
        match = _EVENT.match(line.strip())
        if not match:
            continue
        trace_id, family, table, chain, rest = match.groups()
        steps.append(_step(trace_id, family, table, chain, rest))
    return steps


def _step(trace_id: str, family: str, table: str, chain: str, rest: str) -> TraceStep:
    if rest.startswith("packet:"):
        return TraceStep(trace_id, family, table, chain, "packet")
    rule = _RULE.match(rest)
    if rule:
        text = _COUNTER.sub("", rule.group("rule")).strip()
        handle = int(rule.group("handle")) if rule.group("handle") else None
        verdict = rule.group("v").strip()
        return TraceStep(trace_id, family, table, chain, "rule", text, handle, verdict)
    if rest.startswith("policy "):
        return TraceStep(trace_id, family, table, chain, "policy", verdict=rest.split()[1])
    return TraceStep(trace_id, family, table, chain, "other", rule=rest.strip())


def own_table(name: str) -> bool:
    """Whether nft table `name` is one of netprobe's trace tables."""
    return name.startswith(TABLE)


def table_name(runid: str) -> str:
    """The trace table of run `runid` (an nft identifier: letters, digits, underscores)."""
    return TABLE + "_" + re.sub(r"\W", "_", runid)


def final_verdict(steps: list[TraceStep]) -> TraceStep | None:
    """The first drop (or reject) outside netprobe's own table."""
    return next((s for s in steps if not own_table(s.table) and s.action is not None), None)


def match_expression(frame: Template, nonce: bytes) -> str | None:
    """An nft expression matching exactly this probe, by its nonce; None for frames
    netfilter's IP hooks never see (not IPv4 or IPv6)."""
    data = frame.data
    at, ethertype = 12, struct.unpack_from("!H", data, 12)[0]
    while ethertype in (0x8100, 0x88A8) and at + 6 <= len(data):
        at += 4
        ethertype = struct.unpack_from("!H", data, at)[0]
    if ethertype not in (0x0800, 0x86DD):
        return None
    value = "0x" + nonce.hex()
    if frame.csum_at is not None and frame.csum_from:
        return f"@th,{(frame.nonce_at - frame.csum_from) * 8},{NONCE_LEN * 8} {value}"
    return f"@nh,{(frame.nonce_at - at - 2) * 8},{NONCE_LEN * 8} {value}"


def trace_table(families: list[str], expression: str, name: str = TABLE) -> str:
    """The nft script of netprobe's trace tables (an inet one, and a bridge one if the
    host filters bridged frames)."""
    out = []
    for family in families:
        out.append(
            f"table {family} {name} {{\n"
            f"  chain pre {{\n    type filter hook prerouting priority -500;\n"
            f"    {expression} meta nftrace set 1\n  }}\n}}\n"
        )
    return "".join(out)


@dataclass(frozen=True)
class NftReport:
    """The trace of one probe in one host."""

    host: str
    steps: tuple[TraceStep, ...] = ()
    notes: tuple[str, ...] = ()
    chain_types: tuple[tuple[str, str], ...] = ()  # ("family table chain", type) base chains

    def filtering(self) -> list[TraceStep]:
        """The steps that filter: all but those of nat chains (and the regular chains they
        jump to), whose accept means "no translation", not "let through"."""
        types, under, out = dict(self.chain_types), "", []
        for step in self.steps:
            under = types.get(f"{step.family} {step.table} {step.chain}", under)
            if under != "nat":
                out.append(step)
        return out

    @property
    def verdict(self) -> TraceStep | None:
        """The step that decided the packet's fate (None when no verdict was traced)."""
        return final_verdict(list(self.steps))

    def to_dict(self) -> dict[str, Any]:
        """The report as the results document holds it."""
        final = self.verdict
        return {
            "host": self.host,
            "verdict": final.describe() if final else None,
            "steps": [s.describe() for s in self.steps if s.kind in ("rule", "policy")],
            "notes": list(self.notes),
        }


@dataclass
class _Monitor:
    host: str
    families: list[str]
    undo: dict[str, dict[str, Any]] = field(default_factory=dict)  # family → record entry
    sock: nftrace.TraceSocket | None = None
    events: list[nftrace.TraceEvent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class NftTrace:
    """Trace tables and trace subscriptions in every host that has an nftables ruleset."""

    def __init__(
        self, topo: Topology, hosts: list[str] | None = None, *, foreign: set[str] | None = None
    ) -> None:
        self.topo = topo
        self.hosts = hosts if hosts is not None else list(topo.hosts)
        self.foreign = foreign or set()  # hosts netprobe did not make: tables go on record
        self.table = table_name(topo.runid)
        self.monitors: list[_Monitor] = []
        self.listings: dict[str, str] = {}  # host → `nft -a list ruleset`, where one was read
        self._families: dict[str, list[str]] | None = None
        self._expression = ""

    def ruleset_hosts(self) -> list[str]:
        """The hosts that have an nftables ruleset (iptables-nft included) to trace."""
        if self._families is None:
            found = [self._families_of(h) for h in self.hosts]
            self._families = {h: f for h, f in zip(self.hosts, found, strict=True) if f}
        return list(self._families)

    def arm(self, expression: str, hosts: list[str] | None = None) -> None:
        """Join each host's trace events and add its trace tables; return once the
        kernel has both (a nonce match goes over netlink, any other `nft` expression
        through one `nft -f`)."""
        chosen = self.ruleset_hosts() if hosts is None else hosts
        self._expression = expression
        match = payload_match(expression)
        try:
            for host in chosen:
                mon = _Monitor(host, list((self._families or {}).get(host, ["inet"])))
                self.monitors.append(mon)
                self._note_undo(mon)
                mon.sock = nftrace.TraceSocket(self.topo.fd_of(host))
                if match is None:
                    script = trace_table(mon.families, expression, self.table)
                    self.topo.run(host, ["nft", "-f", "-"], input=script, check=True)
                    continue
                for family in mon.families:
                    mon.sock.add_table(family, self.table, match)
        except BaseException:
            self.disarm()
            raise

    def collect(self) -> list[NftReport]:
        """What each host traced, then disarm. Called once the probe is done with: the
        kernel queues a trace event as the packet meets each rule, so all are in."""
        try:
            for mon in self.monitors:
                if mon.sock is not None:
                    mon.events = mon.sock.events()
        finally:
            self.disarm()
        return [NftReport(m.host, tuple(self._steps(m)), tuple(m.notes), self._types(m))
                for m in self.monitors]

    def _types(self, mon: _Monitor) -> tuple[tuple[str, str], ...]:
        """The host's base chains and their types, read only when it traced something."""
        if not mon.events:
            return ()
        return tuple(nfnl.chain_types(self.topo.fd_of(mon.host)).items())

    def disarm(self) -> None:
        """Delete every trace table and leave the trace group, whatever fails on the way
        (safe to call twice)."""
        for mon in self.monitors:
            try:
                for family in list(mon.families):
                    if mon.sock is not None:
                        with contextlib.suppress(OSError):
                            mon.sock.delete_table(family, self.table)
                    mon.families.remove(family)
                    entry = mon.undo.pop(family, None)
                    if entry is not None:
                        self.topo.forget_undo(entry)
            finally:
                if mon.sock is not None:
                    mon.sock.close()  # a table left owned by it goes with it
                    mon.sock = None

    def _steps(self, mon: _Monitor) -> list[TraceStep]:
        """The events as `nft -a monitor trace` would have shown them, rule text from one
        listing of the host's ruleset (read only when a rule of its own was met)."""
        foreign = any(e.kind == "rule" and not own_table(e.table) for e in mon.events)
        if foreign and mon.host not in self.listings:
            result = self.topo.run(mon.host, ["nft", "-a", "list", "ruleset"])
            self.listings[mon.host] = result.stdout if result.ok else ""
        texts = rule_texts(self.listings.get(mon.host, ""))
        own = f"{self._expression} meta nftrace set 1"
        return [s for e in mon.events for s in _as_steps(e, texts, own)]

    def _note_undo(self, mon: _Monitor) -> None:
        """Put each table to add in a namespace netprobe did not make on the run's record
        first, so that a run killed before `disarm` still has it removed."""
        if mon.host not in self.foreign:
            return
        ns = self.topo.namespace(mon.host) or ""
        for family in mon.families:
            entry = {"ns": ns, "nft_table": [family, self.table]}
            self.topo.note_undo(entry)
            mon.undo[family] = entry

    def _families_of(self, host: str) -> list[str] | None:
        """The trace tables `host` needs; None when it has no ruleset to trace (its
        tables read over netlink: no process)."""
        if shutil.which("nft") is None:
            return None
        try:
            found = nfnl.tables(self.topo.fd_of(host))
        except OSError:
            return None
        tables = [family for family, name in found if not own_table(name)]
        if not tables:
            return None
        return ["inet", "bridge"] if "bridge" in tables else ["inet"]


def payload_match(expression: str) -> tuple[int, int, bytes] | None:
    """(payload base, byte offset, value) of an `@nh|@th,OFFSET,LENGTH 0xVALUE` match on
    whole bytes (at most 16: one register), else None."""
    found = _PAYLOAD.match(expression)
    if found is None:
        return None
    offset, length, value = int(found["offset"]), int(found["length"]), found["value"]
    if offset % 8 or length % 8 or not 0 < length <= 128 or len(value) > length // 4:
        return None
    return nftrace.BASES[found["base"]], offset // 8, bytes.fromhex(value.rjust(length // 4, "0"))


def rule_texts(listing: str) -> dict[str, str]:
    """`nft -a list ruleset` → {"family table chain #handle": rule text (no counter
    values, no handle)}."""
    out: dict[str, str] = {}
    table = chain = ""
    for raw in listing.splitlines():
        line = raw.strip()
        if (match := _TABLE_LINE.match(line)) is not None:
            table, chain = f"{match.group(1)} {match.group(2)}", ""
        elif (match := _CHAIN_LINE.match(line)) is not None:
            chain = match.group(1)
        elif (
            (match := _HANDLE.search(line)) is not None
            and chain
            and not line.startswith(("type ", "policy "))
        ):
            text = _COUNTER.sub("", line[: match.start()]).strip()
            out[f"{table} {chain} #{match.group(1)}"] = text
    return out


def _as_steps(event: nftrace.TraceEvent, texts: dict[str, str], own: str) -> list[TraceStep]:
    """The lines `nft monitor trace` prints for one event: a packet line with a rule
    event that carries the headers, the rule (when it has a handle), a policy, a return."""
    head = (event.trace_id, event.family, event.table, event.chain)
    if event.kind == "rule":
        out = [TraceStep(*head, "packet")] if event.headers else []
        if event.handle is not None:
            key = f"{event.family} {event.table} {event.chain} #{event.handle}"
            text = texts.get(key, own if own_table(event.table) else "")
            out.append(TraceStep(*head, "rule", text, event.handle, event.verdict))
        return out
    if event.kind == "policy":
        return [TraceStep(*head, "policy", verdict=event.verdict)]
    if event.verdict is not None:
        return [TraceStep(*head, "other", rule=f"verdict {event.verdict}")]
    return []
