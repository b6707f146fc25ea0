"""Why a policy line got the wrong verdict: an nft trace of its probe, read as a sentence.

A temporary table marks the probe (a fresh flow: same line, new source port) with
`meta nftrace set 1` at the first hook it meets; `nft monitor trace` then reports every
chain and rule it went through and each verdict. iptables-nft rulesets (ufw, docker)
are nft rules underneath, so their chains show up too.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import time
from dataclasses import dataclass

from netprobe.topology import Topology
from netprobe.traffic import ports

from .net import Plan, Planner
from .observe import TIMEOUT, open_flow, send_from_host

__all__ = ["explain"]

_TABLE = "netprobe_trace"
_NAMES = {4: "IPv4", 6: "IPv6"}
_EVENT = re.compile(r"trace id (\S+) (\S+) (\S+) (\S+) (.*)")
_RULE = re.compile(r"rule (.*?)(?: # handle (\d+))? \(verdict (\w+)")
_NOISE = re.compile(r"counter packets \d+ bytes \d+ | # handle \d+")


@dataclass(frozen=True)
class _Event:
    """One line of a trace: a rule (or chain policy) and its verdict."""

    chain: str  # "family table chain"
    rule: str | None  # None: the chain's policy
    handle: str | None
    verdict: str

    def describe(self) -> str:
        if self.rule is None:
            return f"the policy of {self.chain} ({self.verdict})"
        return f"`{self.rule}` ({self.chain})"


def explain(topo: Topology, planner: Planner, mismatches: list[tuple[Plan, str]]) -> list[str]:
    """One sentence per mismatching line (and per cause, if the families differ)."""
    found: dict[tuple[int, str, str], dict[str, str]] = {}  # → family: shadowed accept
    lines = {plan.line.number: plan.line for plan, _ in mismatches}
    for plan, seen in mismatches:
        verb, cause, accept = _why(topo, planner, plan, seen)
        found.setdefault((plan.line.number, verb, cause), {})[_NAMES[plan.family]] = accept
    out = []
    for (number, verb, cause), families in sorted(found.items()):
        line, over = lines[number], ", ".join(families)
        if verb == "is shadowed":
            accepts = " / ".join(f"`{a}`" for a in dict.fromkeys(families.values()))
            out.append(f"policy line {number} ({line}) is shadowed over {over}: {cause} "
                       f"drops it before {accepts}, which would accept it, is reached")
        else:
            out.append(f"policy line {number} ({line}) {verb} over {over} "
                       f"(expected {line.expect}): {cause}")
    return out


def _why(topo: Topology, planner: Planner, plan: Plan, seen: str) -> tuple[str, str, str]:
    """(what happened to the probe, why, the accept rule it never reached), from a trace."""
    verb = "is dropped" if seen == "drop" else "is accepted"
    events = _trace(topo, planner, plan)
    if events is None:
        return verb, ("nft trace reported nothing (rules outside nftables, such as "
                      "iptables-legacy, cannot be traced)"), ""
    hook = plan.line.chain
    if seen == "drop":
        drop = next((e for e, _ in events if e.verdict in ("drop", "reject")), None)
        if drop is None:
            return verb, ("no rule of the ruleset dropped it, so something outside "
                          "netfilter did (a route, rp_filter)"), ""
        shadow = _shadowing(topo, planner.host, drop, plan)
        if shadow:
            return "is shadowed", drop.describe(), shadow
        return verb, f"by {drop.describe()}{_rewritten(events, plan)}", ""
    accepts = [e for e, h in events if h == hook and e.verdict == "accept"]
    if not accepts:
        return verb, (f"no chain of {planner.host}'s ruleset filters "
                      f"{_NAMES[plan.family]} at the {hook} hook"), ""
    return verb, "by " + "; ".join(e.describe() for e in accepts), ""


def _rewritten(events: list[tuple[_Event, str]], plan: Plan) -> str:
    """What a NAT rule before the filtering hook did to the probe's destination."""
    if plan.line.chain != "forward":
        return ""
    nat = next((e for e, hook in events if hook == "prerouting" and e.rule
                and re.search(r"\b(dnat|redirect)\b", e.rule)), None)
    if nat is None:
        return ""
    return (f", after {nat.describe()} had rewritten its destination at prerouting, "
            f"before the forward hook (the forward rules see the rewritten address and port)")


def _trace(topo: Topology, planner: Planner, plan: Plan) -> list[tuple[_Event, str]] | None:
    """The probe's trace: each verdict with the hook of the base chain it happened under."""
    host = planner.host
    retry = plan.with_sport(planner.sport())
    hook = "output" if plan.line.chain == "output" else "prerouting"
    topo.run(host, ["nft", "-f", "-"], check=True, input=(
        f"table inet {_TABLE} {{\n chain probe {{\n type filter hook {hook} priority -500\n"
        f" {_marked(retry)} meta nftrace set 1\n }}\n}}\n"))
    hooks = _hooks(topo, host)
    monitor = topo.spawn(host, ["nft", "-a", "monitor", "trace"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        text = _read_monitor(monitor, lambda: _resend(topo, retry))
    finally:
        monitor.terminate()
        monitor.wait()
        topo.run(host, ["nft", "delete", "table", "inet", _TABLE])
    return _events(text, hooks)


def _marked(plan: Plan) -> str:
    """The nft match that singles out the retried probe (of a fresh flow)."""
    line = plan.line
    if line.proto in ("tcp", "udp"):
        return f"{line.proto} {'dport' if plan.opener else 'sport'} {plan.sport}"
    ip = "ip" if plan.family == 4 else "ip6"
    ends = f"{ip} saddr {plan.src}" if plan.src else f"{ip} daddr {plan.dst}"
    if line.proto in ("icmp", "icmpv6") and line.icmp_number(plan.family) in (0, 8, 128, 129):
        return f"{ends} {line.proto} id {plan.sport & 0xFFFF}"
    number = {"icmp": 1, "icmpv6": 58}.get(line.proto, 253)
    return f"{ends} meta l4proto {number}"


def _resend(topo: Topology, plan: Plan) -> None:
    if plan.opener:  # an established probe's flow is opened afresh first
        open_flow(topo, plan, TIMEOUT)
    if plan.frame is None:
        send_from_host(topo, plan)
    else:
        ports(topo).sender(plan.port).send(plan.frame.probe()[0])


def _read_monitor(monitor: subprocess.Popen[bytes], resend: object) -> str:
    """Resend the probe until the monitor (which says nothing when it is ready) reports
    it; then read until 50 ms pass without a new line."""
    assert monitor.stdout is not None and callable(resend)
    fd, text = monitor.stdout.fileno(), b""
    deadline = time.perf_counter() + 1.5
    while time.perf_counter() < deadline:
        if not text:
            resend()
        if not select.select([fd], [], [], 0.05)[0]:
            if text:
                break
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        text += chunk
    return text.decode(errors="replace")


def _events(text: str, hooks: dict[str, str]) -> list[tuple[_Event, str]] | None:
    """The verdicts of the first complete trace, outside netprobe's own table."""
    parsed = [m.groups() for m in map(_EVENT.match, text.splitlines()) if m]
    if not parsed:
        return None
    first = parsed[0][0]
    events, hook = [], ""
    for trace_id, family, table, chain, rest in parsed:
        name = f"{family} {table} {chain}"
        if trace_id != first or table == _TABLE:
            continue
        hook = hooks.get(name, hook)  # a regular chain runs under the last base chain's hook
        rule = _RULE.match(rest)
        if rule:
            text_, handle, verdict = rule.groups()
            events.append((_Event(name, _NOISE.sub("", text_).strip(), handle, verdict), hook))
        elif rest.startswith("policy "):
            events.append((_Event(name, None, None, rest.split()[1]), hook))
    return events


def _hooks(topo: Topology, host: str) -> dict[str, str]:
    """Base chains of the host's ruleset → their hook."""
    listing = json.loads(topo.run(host, ["nft", "-j", "list", "chains"]).stdout or "{}")
    chains = [item["chain"] for item in listing.get("nftables", []) if "chain" in item]
    return {f"{c['family']} {c['table']} {c['name']}": c["hook"] for c in chains if "hook" in c}


def _shadowing(topo: Topology, host: str, drop: _Event, plan: Plan) -> str | None:
    """An accept rule for the line's port later in the dropping rule's chain, if any."""
    if drop.handle is None:
        return None
    listing = topo.run(host, ["nft", "-a", "list", "chain", *drop.chain.split()]).stdout
    rules = [r.strip() for r in listing.splitlines()]
    after = next((i for i, r in enumerate(rules) if r.endswith(f"# handle {drop.handle}")),
                 len(rules))
    port = re.compile(rf"dport (\{{[^}}]*\b{plan.line.port}\b[^}}]*\}}|{plan.line.port}\b)")
    other = "ip6 " if plan.family == 4 else "ip "  # a rule for the other family only
    for rule in rules[after + 1:]:
        if re.search(r"\baccept\b", rule) and port.search(rule) and other not in rule:
            return _NOISE.sub("", rule).strip()
    return None
