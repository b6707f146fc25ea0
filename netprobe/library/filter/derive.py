"""Derived mode: every rule of the host's ruleset probed, no policy needed.

The ruleset is read back from the kernel (`nft -j list ruleset`: iptables-restore files
loaded through iptables-nft come out as nft rules too). For each rule of each filter
chain reachable from the input, forward and output base chains, a packet is built that
should reach it and match it (`rules.want`, `probes.Builder`); all of them go through the
host in one traced batch (`batch.run_batch`), and the nf_tables trace of each names the
rule that decided it in that base chain. One step per rule (and base chain reaching it):
the rule, its probe, the deciding rule, the verdict. A rule is

- *decisive* (PASS) when its probe matched it and it decided the packet;
- *shadowed* when its probe was decided by an earlier rule (named): FAIL when that rule's
  verdict differs from its own (a shadowed accept, or a drop an earlier accept makes
  void), PASS when the same (the rule is redundant);
- *without effect* (PASS, listed) when its probe reached and matched it but its verdict
  cannot decide anything: no verdict (counter, log), jump, goto or return (the packet was
  decided further on), or it is the last rule of the base chain and does what the chain's
  policy does anyway;
- INCONCLUSIVE when no probe could be built (the reason: "not probed: matches meta mark"),
  when its probe did not match it (it was decided by a later rule: the model of the rule
  was wrong, and that is said), or when no trace of the probe came.

Whether each probe was then delivered (reached the host's stack, left by the interface
it was routed to) is the evidence of its step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from netprobe.check import Context, Status, Step
from netprobe.topology import Topology
from netprobe.topology._kernel.nftrace import TraceEvent, TraceSocket
from netprobe.traffic import new_nonce

from .batch import Outcome, Probe, run_batch
from .net import Planner
from .probes import Builder, Built
from .rules import Rule, Unprobeable, filter_rules, rule_texts, want

__all__ = ["derive"]

_TABLE = "netprobe_trace_derive"
_TH = 2  # NFT_PAYLOAD_TRANSPORT_HEADER
_FINAL = ("accept", "drop")


@dataclass(frozen=True)
class _Row:
    status: Status
    detail: str
    note: str = ""  # for the diagnosis: shadowed or without effect


def derive(ctx: Context, host: str, client: str, behind: str) -> None:
    """Probe every rule of `host`'s filter chains; one step per rule."""
    topo = ctx.topo
    listing = json.loads(topo.run(host, ["nft", "-j", "list", "ruleset"], check=True).stdout)
    texts = rule_texts(topo.run(host, ["nft", "-a", "list", "ruleset"], check=True).stdout)
    rules = filter_rules(listing, texts)
    if not rules:
        ctx.inconclusive(f"rules of {host}", f"{host} has no filter chain at the input, "
                         "forward or output hook: nothing to probe")
        return
    builder = Builder(topo, Planner(topo, host, client, behind))
    built: dict[Rule, Built] = {}
    reasons: dict[Rule, str] = {}
    for rule in rules:
        try:
            built[rule] = builder.build(rule, want(rule))
        except Unprobeable as exc:
            reasons[rule] = str(exc)
    outcomes, traces = _send(topo, host, list(built.values()))
    index = _Index(rules)
    notes = []
    for rule in rules:
        if rule in reasons:
            row = _Row(Status.INCONCLUSIVE, f"not probed: {reasons[rule]}")
        else:
            row = _judge(rule, built[rule], index, outcomes.get(rule),
                         traces.get(built[rule].key))
        ctx.steps.append(Step(_name(rule), row.status, row.detail, key=_name(rule)))
        if row.note:
            notes.append(row.note)
    for note in notes:
        ctx.diagnose(note)


def _name(rule: Rule) -> str:
    via = "" if rule.chain == rule.base else f" (from {rule.base})"
    return (f"{rule.hook.upper()} rule {rule.handle} of {rule.family} {rule.table} "
            f"{rule.chain}{via}: {rule.text or rule.verdict}")


def _send(topo: Topology, host: str, built: list[Built]
          ) -> tuple[dict[Rule, Outcome], dict[bytes, list[TraceEvent]]]:
    """Open the flows established probes need, then send every probe in one traced batch."""
    openers = [b for b in built if b.opener is not None and b.opener_barrier is not None]
    if openers:
        run_batch(topo, [b.opener for b in openers if b.opener],
                  {b.opener_barrier.observe: b.opener_barrier for b in openers
                   if b.opener_barrier})
    probes: list[Probe] = [b.probe for b in built]
    barriers = {b.probe.path: b.barrier for b in built}
    session = new_nonce()[:8]  # MAGIC and this process's session: every crafted probe
    marks = [("prerouting", (_TH, 8, session)), ("prerouting", (_TH, 20, session)),
             ("output", (_TH, 8, session))]
    marks += [("output", (_TH, 0, b.key[1:3])) for b in built
              if b.probe.frame is None and b.proto == "tcp"]
    sock = TraceSocket(topo.fd_of(host), buffer=256 << 20)
    try:
        sock.add_rules("inet", _TABLE, marks)
        found = run_batch(topo, probes, barriers)
        events = sock.events()
        sock.delete_table("inet", _TABLE)
    finally:
        sock.close()
    return ({b.rule: o for b, o in zip(built, found, strict=True)},
            _by_probe(events, {b.key for b in built}))


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


class _Index:
    """The rules by their place in the kernel, and the chains each base chain reaches."""

    def __init__(self, rules: list[Rule]) -> None:
        self.by = {(r.key, r.base): r for r in rules}
        self.chains: dict[tuple[str, str, str], set[tuple[str, str, str]]] = {}
        for r in rules:
            self.chains.setdefault((r.family, r.table, r.base), {(r.family, r.table, r.base)}
                                   ).add((r.family, r.table, r.chain))


def _judge(rule: Rule, built: Built, index: _Index, outcome: Outcome | None,
           events: list[TraceEvent] | None) -> _Row:
    delivered = _delivery(rule, outcome)
    head = f"probe: {built.summary}"
    if not events:
        return _Row(Status.INCONCLUSIVE, f"{head}; no trace of it came from the host; "
                                         f"{delivered}")
    mine = index.chains[(rule.family, rule.table, rule.base)]
    seen = [e for e in events if (e.family, e.table, e.chain) in mine]
    decider = next((e for e in seen if e.kind == "policy"
                    or (e.kind == "rule" and e.verdict in _FINAL)), None)
    matched = any(e.kind == "rule" and e.handle == rule.handle and e.chain == rule.chain
                  for e in seen)
    found = None if decider is None else index.by.get(
        ((rule.family, rule.table, decider.chain, decider.handle or 0), rule.base))
    who = _describe(decider, found, rule)
    text = f"{head}; decided by {who}; {delivered}"
    if matched:
        return _reached(rule, decider, text, who)
    if decider is None:
        return _Row(Status.INCONCLUSIVE, f"{text}: it never came to {rule.base}")
    if found is not None and found.order < rule.order:
        return _shadowed(rule, found, text)
    return _Row(Status.INCONCLUSIVE, f"{text}: the probe did not match the rule")


def _reached(rule: Rule, decider: TraceEvent | None, text: str, who: str) -> _Row:
    verdict = rule.verdict
    if verdict not in ("accept", "drop", "reject"):
        note = (f"{rule.describe()} has no effect: its verdict ({verdict}) decides nothing; "
                f"its probe was decided by {who}")
        return _Row(Status.PASS, f"{text}: reached, verdict {verdict}", note)
    policy = _policy(decider)
    if rule.last and policy is not None and policy == _final(verdict):
        note = (f"{rule.describe()} has no effect: it is the last rule of {rule.base} "
                f"and does what its policy ({policy}) does")
        return _Row(Status.PASS, f"{text}: reached, redundant with the policy", note)
    return _Row(Status.PASS, f"{text}: reached, it decides ({verdict})")


def _shadowed(rule: Rule, by: Rule, text: str) -> _Row:
    same = _final(by.verdict) == _final(rule.verdict)
    status = Status.PASS if same or rule.verdict not in ("accept", "drop", "reject") \
        else Status.FAIL
    what = "redundant" if status is Status.PASS else f"its {rule.verdict} never happens"
    note = f"{rule.describe()} is shadowed by {by.describe()} ({what})"
    return _Row(status, f"{text}: shadowed by rule {by.handle}", note)


def _final(verdict: str) -> str:
    return "drop" if verdict == "reject" else verdict


def _policy(decider: TraceEvent | None) -> str | None:
    return None if decider is None or decider.kind != "policy" else decider.verdict


def _describe(event: TraceEvent | None, found: Rule | None, rule: Rule) -> str:
    if event is None:
        return f"nothing in {rule.family} {rule.table} {rule.base}"
    if event.kind == "policy":
        return f"the policy of {event.family} {event.table} {event.chain} ({event.verdict})"
    if found is not None:
        return found.describe()
    return f"rule {event.handle} of {event.family} {event.table} {event.chain}"


def _delivery(rule: Rule, outcome: Outcome | None) -> str:
    if outcome is None or outcome.arrived is None:
        return f"delivery undecided ({outcome.how if outcome else 'not sent'})"
    where = "the host's stack" if rule.hook == "input" else "the host's egress"
    return f"{'reached' if outcome.arrived else 'never reached'} {where} ({outcome.how})"

