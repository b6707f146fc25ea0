"""Derived mode: every rule of the host's ruleset probed, no policy needed.

The ruleset is read back from the kernel (`nft -j list ruleset`: iptables-restore files
loaded through iptables-nft come out as nft rules too). For each rule of each filter
chain reachable from the input, forward and output base chains, a packet is built that
should reach it and match it (`rules.want`, `probes.Builder`); all of them go through the
host in one traced batch (`batch.run_batch`), and the nf_tables trace of each names the
rule that decided it in that base chain. One step per rule (and base chain reaching it):
the rule, its probe, the deciding rule, the verdict.

A rule gets a probe for each way in and out of the host (and family) that fits its
matches: a probe decided early proves only that its own way is shadowed. A rule is

- *decisive* (PASS) when a probe matched it and it decided the packet (the ways on
  which it was shadowed are said);
- *shadowed* when every probe was decided by an earlier rule (named): FAIL when each of
  those rules' verdicts differs from its own (a shadowed accept, or a drop an earlier
  accept makes void) and each matches all it matches (`rules.covers`: one packet proves
  only that its rule catches that packet), else INCONCLUSIVE (a packet that reaches it
  may exist); PASS when they are the same (the rule is redundant) or mixed (a safety net
  behind rules that decide every way);
- *without effect* (PASS, listed) when its probe reached and matched it but its verdict
  decides nothing: no verdict (counter, log; not a `meta mark set` or `ct mark set` a later
  match may read: "reached; sets …"), a return that is the last rule of its chain (one in
  the middle changes which rule decides), a jump or goto to chains that decided no probe
  at all, or the last rule of the base chain doing what the chain's policy does anyway;
- SKIP when no probe could be built, with the reason ("not probed: matches meta mark",
  "has a verdict map"; the chains a verdict map leads to are listed, their rules "reached
  through a verdict map"),
  or when the flow its probe needs could not be opened: "not probed: the flow it needs
  cannot be opened: `<rule>` drops its first packet", the rule (or policy) named from the
  opener's own trace; said per rule, never guessed, and not held against the ruleset;
- INCONCLUSIVE when its probe did not match it (it was decided by a later rule: the
  model of the rule was wrong, and that is said), when no trace of the probe came, or
  when the flow it needs is not known to be open (an opener's delivery undecided).

A rule that names lo (`iifname "lo"` at INPUT, `oifname "lo"` at OUTPUT) is probed from
a socket of the host to its loopback or own address, out and back in by lo, traced like
the others (a TCP SYN to the host's own stack carries no nonce: its delivery is not
observable, said undecided). A probe of ct state established goes after its flow is
opened: first the other way (the reply is the probe); where that opener is dropped
(decided by a barrier), from the probe's own side (its first packet, the reply, then the
probe, its second). ICMP messages carry the state the host's conntrack gives them: an
echo reply is established (the echo request sent first the other way), an error
(destination unreachable, time exceeded, parameter problem, packet too big) related (it
quotes a datagram sent first the other way), neighbour and router discovery untracked
(hop limit 255); a rule whose state match excludes that state is not probed. The openers
are traced too, and only the batch of probes after them is judged. Probes that would
share a flow (a rule fixing both ports, the same ports in IPv4 and IPv6) go in rounds of
their own: their traces are never merged.

Whether each probe was then delivered (reached the host's stack, left by the interface
it was routed to) is the evidence of its step.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from netprobe.check import Context, Status, Step
from netprobe.topology._kernel.nftrace import TraceEvent

from ._covers import covers
from ._derive_send import Sent, send
from .batch import Outcome
from .net import Planner
from .probes import Builder, Built
from .rules import Rule, Unprobeable, Want, filter_rules, rule_texts, want

__all__ = ["derive"]

_FINAL = ("accept", "drop")


@dataclass(frozen=True)
class _Row:
    status: Status
    detail: str
    note: str = ""  # for the diagnosis: shadowed or without effect
    idle: bool = False  # reached, with a verdict that decided nothing for its probe
    kind: str = ""  # "reached", "shadowed", or "" (undecided, not probed)
    partly: str = ""  # shadowed: the note if another way reaches the rule
    by: str = ""  # shadowed: the rule that decided the probe, when it does not cover this one


def derive(ctx: Context, host: str, client: str, behind: str) -> None:
    """Probe every rule of `host`'s filter chains; one step per rule."""
    topo = ctx.topo
    planner = Planner(topo, host, client, behind)  # a SpecError for a host not there
    listing = json.loads(topo.run(host, ["nft", "-j", "list", "ruleset"], check=True).stdout)
    texts = rule_texts(topo.run(host, ["nft", "-a", "list", "ruleset"], check=True).stdout)
    rules = filter_rules(listing, texts)
    if not rules:
        ctx.inconclusive(f"rules of {host}", f"{host} has no filter chain at the input, "
                         "forward or output hook: nothing to probe")
        return
    builder = Builder(topo, planner)
    built: dict[Rule, list[Built]] = {}
    reasons: dict[Rule, str] = {}
    wants: dict[tuple[tuple[str, str, str, int], str], Want] = {}
    for rule in rules:
        try:
            wants[(rule.key, rule.base)] = found = want(rule)
            built[rule] = builder.variants(rule, found)
        except Unprobeable as exc:
            reasons[rule] = str(exc)
    sent = send(topo, host, [b for found in built.values() for b in found])
    index = _Index(rules, wants)
    deciding = _deciding_chains(sent.traces.values())
    notes = []
    for rule in rules:
        if rule in reasons:
            row = _Row(Status.SKIP, f"not probed: {reasons[rule]}")
        else:
            row = _combine([_row(rule, b, sent, index) for b in built[rule]])
            if row.idle and index.decides_below(rule, deciding):
                row = _Row(row.status, row.detail + " (the chain it leads to decides "
                           "other probes)")
        ctx.steps.append(Step(_name(rule), row.status, row.detail, key=_name(rule)))
        if row.note:
            notes.append(row.note)
    for note in notes:
        ctx.diagnose(note)


def _row(rule: Rule, built: Built, sent: Sent, index: _Index) -> _Row:
    if built in sent.unknown:
        return _Row(Status.INCONCLUSIVE, "not probed: the flow it needs is not known to be "
                    f"open ({sent.unknown[built]}) (probe: {built.summary})")
    if built in sent.blocked:
        return _blocked(built, sent.blocked[built], index)
    return _judge(rule, built, index, sent.outcomes.get(built), sent.traces.get(built))


def _name(rule: Rule) -> str:
    via = "" if rule.chain == rule.base else f" (from {rule.base})"
    return (f"{rule.hook.upper()} rule {rule.handle} of {rule.family} {rule.table} "
            f"{rule.chain}{via}: {rule.text or rule.verdict}")


def _combine(rows: list[_Row]) -> _Row:
    """One row of a rule from its probes' (one per way in and out): the first that reached
    it, else the undecided, else shadowed on every way: a FAIL only if every way was
    decided by a rule of another verdict (a safety net behind rules that decide every
    way, some as it would, is no fault)."""
    reached = [r for r in rows if r.kind == "reached"]
    if reached:
        others = [r for r in rows if r.kind == "shadowed"]
        if not others:
            return reached[0]
        notes = [n for n in (reached[0].note, *dict.fromkeys(r.partly for r in others)) if n]
        return _Row(reached[0].status, reached[0].detail + "; on another way in or out "
                    + "; ".join(r.detail for r in others), "; ".join(notes), reached[0].idle,
                    "reached")
    undecided = [r for r in rows if r.kind == ""]
    if undecided:
        return undecided[0]
    uncovered = list(dict.fromkeys(r.by for r in rows if r.by))
    if uncovered and all(r.status is Status.FAIL for r in rows):  # one packet is no proof
        return _Row(Status.INCONCLUSIVE, "; ".join(r.detail for r in rows) + ": its probes "
                    f"were all decided by {' and '.join(uncovered)}, which does not match "
                    "all it matches: a packet that reaches it may exist",
                    "; ".join(dict.fromkeys(r.partly for r in rows)), kind="shadowed")
    if len(rows) == 1 or all(r.status is Status.FAIL for r in rows) \
            or all(r.status is Status.PASS for r in rows):
        return _Row(rows[0].status, "; ".join(r.detail for r in rows),
                    "; ".join(dict.fromkeys(r.note for r in rows)), kind="shadowed")
    return _Row(Status.PASS, "; ".join(r.detail for r in rows) + ": never reached, the "
                "rules before it decide every way in", kind="shadowed")


def _blocked(built: Built, traces: list[list[TraceEvent]], index: _Index) -> _Row:
    """The row of a probe whose flow could not be opened: who dropped each opener."""
    who = [_dropper(events, index) for events in traces]
    if len(who) == 2:
        said = (f"{who[0]} drops its first packet the other way, and {who[1]} its first "
                f"packet from the probe's own side")
    else:
        said = f"{who[0]} drops its first packet"
    return _Row(Status.SKIP, f"not probed: the flow it needs cannot be opened: {said} "
                f"(probe: {built.summary})")


def _dropper(events: list[TraceEvent], index: _Index) -> str:
    """The rule (or policy) that dropped a packet, by its trace."""
    event = next((e for e in events if e.verdict == "drop"
                  and e.kind in ("rule", "policy")), None)
    if event is None:
        return "something before the filter chains (no trace of a drop came)"
    if event.kind == "policy":
        return f"the policy of {event.family} {event.table} {event.chain} (drop)"
    found = index.rules.get((event.family, event.table, event.chain, event.handle or 0))
    return found.describe() if found is not None else \
        f"rule {event.handle} of {event.family} {event.table} {event.chain}"


def _deciding_chains(traces: Iterable[list[TraceEvent]]) -> set[tuple[str, str, str]]:
    """The chains in which a rule's verdict decided some probe (a policy is a base
    chain's, never a jump's target)."""
    return {(e.family, e.table, e.chain) for events in traces for e in events
            if e.kind == "rule" and e.verdict in _FINAL}


class _Index:
    """The rules by their place in the kernel, the chains each base chain reaches, and
    where each jump and goto leads."""

    def __init__(self, rules: list[Rule],
                 wants: dict[tuple[tuple[str, str, str, int], str], Want]) -> None:
        self.wants = wants  # by (rule key, base chain): what reaches and matches it
        self.by: dict[tuple[tuple[str, str, str, int], str], Rule] = {}
        self.rules = {r.key: r for r in rules}
        for r in rules:  # a chain reached by two jumps: the rule where a packet first meets it
            self.by.setdefault((r.key, r.base), r)
        self.chains: dict[tuple[str, str, str], set[tuple[str, str, str]]] = {}
        self.leads: dict[tuple[str, str, str], set[tuple[str, str, str]]] = {}
        for r in rules:
            self.chains.setdefault((r.family, r.table, r.base), {(r.family, r.table, r.base)}
                                   ).add((r.family, r.table, r.chain))
            for target in r.targets:
                self.leads.setdefault((r.family, r.table, r.chain), set()).add(
                    (r.family, r.table, target))

    def covers(self, by: Rule, rule: Rule) -> bool:
        """Whether every packet that reaches and matches `rule` matches `by` too."""
        s, r = self.wants.get((by.key, by.base)), self.wants.get((rule.key, rule.base))
        return s is not None and r is not None and covers(s, r)

    def decides_below(self, rule: Rule, deciding: set[tuple[str, str, str]]) -> bool:
        """Whether a jump's or goto's chain, or one it leads to, decided some probe: its
        own probe, decided elsewhere, does not make it a rule without effect."""
        kind, _, target = rule.verdict.partition(" ")
        if kind not in ("jump", "goto"):
            return False
        todo, seen = [(rule.family, rule.table, target)], set()
        while todo:
            chain = todo.pop()
            if chain in deciding:
                return True
            if chain not in seen:
                seen.add(chain)
                todo.extend(self.leads.get(chain, ()))
        return False


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
        early = next((e for e in events if e.kind == "rule" and e.verdict == "drop"), None)
        where = "" if early is None else (f", dropped before by rule {early.handle} of "
                                          f"{early.family} {early.table} {early.chain}")
        return _Row(Status.INCONCLUSIVE, f"{text}: it never came to {rule.base}{where}")
    if found is not None and found.order < rule.order:
        return _shadowed(rule, found, text, index.covers(found, rule))
    left = next((e for e in seen if e.chain == rule.chain and e.kind == "rule"
                 and e.verdict is not None and e.verdict.split()[0] in ("return", "goto")
                 and (r := index.by.get(((rule.family, rule.table, e.chain, e.handle or 0),
                                         rule.base))) is not None and r.order < rule.order),
                None)
    if left is not None:  # the probe was built from this rule's matches, not the earlier's
        return _Row(Status.INCONCLUSIVE, f"{text}: never reached, rule {left.handle} of "
                    f"{rule.chain} ({left.verdict}) took its probe out of the chain first")
    return _Row(Status.INCONCLUSIVE, f"{text}: the probe did not match the rule")


def _reached(rule: Rule, decider: TraceEvent | None, text: str, who: str) -> _Row:
    verdict = rule.verdict
    sets = _sets(rule)
    if sets and verdict == "continue":  # a mark a later match reads: not without effect
        return _Row(Status.PASS, f"{text}: reached; sets {', '.join(sets)}", kind="reached")
    if verdict == "return" and not rule.ends_chain:  # which rule decides depends on it
        return _Row(Status.PASS, f"{text}: reached, verdict return", kind="reached")
    if verdict not in ("accept", "drop", "reject"):
        note = (f"{rule.describe()} has no effect: its verdict ({verdict}) decides nothing; "
                f"its probe was decided by {who}")
        return _Row(Status.PASS, f"{text}: reached, verdict {verdict}", note, True, "reached")
    policy = _policy(decider)
    if rule.last and policy is not None and policy == _final(verdict):
        note = (f"{rule.describe()} has no effect: it is the last rule of {rule.base} "
                f"and does what its policy ({policy}) does")
        return _Row(Status.PASS, f"{text}: reached, redundant with the policy", note,
                    kind="reached")
    return _Row(Status.PASS, f"{text}: reached, it decides ({verdict})", kind="reached")


def _shadowed(rule: Rule, by: Rule, text: str, covered: bool) -> _Row:
    same = _final(by.verdict) == _final(rule.verdict)
    status = Status.PASS if same or rule.verdict not in ("accept", "drop", "reject") \
        else Status.FAIL
    what = "redundant" if status is Status.PASS else f"its {rule.verdict} never happens"
    note = f"{rule.describe()} is shadowed by {by.describe()} ({what})"
    partly = (f"{rule.describe()} is shadowed by {by.describe()} for part of its traffic "
              f"({text.split(';')[0].removeprefix('probe: ')}); it decides the rest")
    return _Row(status, f"{text}: shadowed by rule {by.handle}", note, kind="shadowed",
                partly=partly, by="" if covered else by.describe())


def _sets(rule: Rule) -> list[str]:
    """The marks and the like its statements set (`meta mark set`, `ct mark set`)."""
    out = []
    for expr in rule.exprs:
        mangle = expr.get("mangle")
        if isinstance(mangle, dict) and isinstance(mangle.get("key"), dict):
            (kind, what), = mangle["key"].items()
            key = what.get("key", "") if isinstance(what, dict) else what
            out.append(f"{kind} {key}".strip())
    return out


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

