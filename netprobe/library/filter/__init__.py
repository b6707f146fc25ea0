"""filter: a host's firewall accepts and drops exactly what its policy says.

The policy is a YAML list of expectations (the format in full: `filter_policy`):

    - {proto: tcp, port: 22, from: [10.0.0.0/8, "fd00::/8"], expect: accept}
    - {proto: tcp, port: 23, expect: drop}                      # chain: input by default
    - {proto: tcp, port: 443, chain: forward, to: 198.51.100.0/24, expect: accept}
    - {proto: tcp, port: 25, chain: output, expect: drop}
    - {proto: icmpv6, type: neighbour-solicitation, in: eth0, expect: accept}
    - {proto: tcp, port: 443, state: established, expect: accept}   # replies come back in
    - {proto: tcp, port: 80, chain: forward, from: eth0, snat: 192.0.2.1, expect: accept}

Every line is probed over IPv4 and IPv6 (those `from`/`to` name) with real traffic: one
step per line and family, expected verdict against observed.

- INPUT: a neighbour (on `in`'s link, if given) sends a crafted TCP SYN, UDP datagram,
  ICMP/ICMPv6 message (neighbour discovery with hop limit 255, a solicitation to the
  solicited-node group) or protocol-253 datagram (`any`) to the host. It counts as
  accepted when the host's stack receives it: raw IP sockets opened in the host's
  namespace get a copy of every packet of the protocol delivered locally, after the
  input hook (the host's own answers leave it: only the probe's nonce counts).
- state established: the flow is opened the other way first, from the host's socket (or
  for FORWARD the destination's), its far end kept silent so that conntrack holds it
  (a TCP SYN meets a listener whose queue is full); the probe is its reply.
  No listener and no reply are involved, so the OUTPUT chain and ICMP rate limits cannot
  blur the answer.
- FORWARD: the neighbour's frame goes through the host to a machine behind it and must
  (or must not) come out there: an expectation, `at` or `nowhere`, judged on delivery:
  a masqueraded, SNATed or DNATed copy counts, its rewrite shown in the step, unless the
  line states the rewrite (`snat`, `dnat`: then another one FAILs). A DNAT line's probe
  goes to the public address and must come out at the DNAT target.
- OUTPUT: a crafted frame put on the host's wire skips its OUTPUT hook, so the host's own
  kernel sends the probe, from a real socket opened in its namespace (TCP connect, UDP
  sendto), and it must (or must not) reach the neighbour.

The probes of INPUT and FORWARD lines of state new are sent in one burst (`batch`): INPUT
judged in the host's stack, FORWARD where it leaves the host. A probe that came out
otherwise than its line expects (or undecided) is probed again alone, for its evidence
and explanation; established, lo and OUTPUT lines are probed alone. `from: lo` over IPv4:
the host's own socket sends the probe to itself (a crafted frame with a local source is
refused there). A drop is proven by a barrier sent behind the probe along the same path:
a frame seen where it enters the host (a local ethertype from a neighbour, or sent into
lo; a datagram the routers forward from beyond), or a probe of an accept line seen to
get through; for OUTPUT a frame sent from the host's egress interface (it skips
netfilter, so it always goes). Where there is none, the step is INCONCLUSIVE, never a
drop on silence. Before the burst the host's next hop of every forward probe is resolved
(written in a namespace netprobe made; in an adopted one, the next hop asks for the
host's address and the host learns it): a probe held back resolving it would come after
its mark, so where that fails its drop is not proven. Each mismatch is explained with
an nft trace of the probe: the rule or chain policy that decided, and for an accept
shadowed by an earlier drop, both rules. `ruleset` (nft or iptables-restore files, comma
separated) replaces the host's ruleset before probing, in a namespace netprobe made;
an adopted host is probed with the ruleset it has.

Derived mode (a `ruleset` and no `policy`, or `derive` on a host's ruleset as found):
every rule of every filter chain reachable from the input, forward and output hooks is
probed, with a packet built from its matches, all in one traced batch; one step per rule
names the rule that decided its probe, shadowed rules (and what shadows them), rules
without effect, and rules no packet can be built for (see `derive`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from netprobe.check import Check, Context, Param, Status, Step, param, read_input, reference_path
from netprobe.errors import SpecError
from netprobe.traffic import ports

from . import _burst as burst
from . import derive as derived
from ._burst import Paths
from ._forward import forward
from .batch import pinned
from .net import Plan, Planner
from .observe import TIMEOUT, Stack, open_flow, send_from_host, watch
from .policy import Line, load_policy
from .trace import explain

Ruleset = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]  # file(s), or comma-joined

__all__ = ["CHECK", "run"]

_NAMES = {4: "IPv4", 6: "IPv6"}
_ALONE = "NETPROBE_FILTER_ONE_AT_A_TIME"  # "1": every line probed alone (to compare)


def body(ctx: Context, *, host: str = "fw", ruleset: Ruleset | None = None,
         policy: str | None = None, client: str = "client", behind: str = "outside",
         derive: bool = False) -> None:
    """Probe every policy line in each of its families; explain each mismatch. With a
    ruleset and no policy (or `derive`), probe every rule of the ruleset instead."""
    if derive or (ruleset and policy is None):
        if ruleset:
            _load_ruleset(ctx, host, ruleset)
        return derived.derive(ctx, host, client, behind)
    lines = load_policy(policy or reference_path("filter-policy.yml"))
    if ruleset:
        _load_ruleset(ctx, host, ruleset)
    planner = Planner(ctx.topo, host, client, behind)
    _interfaces(ctx, host, lines, os.fspath(policy or reference_path("filter-policy.yml")))
    names = {(id(line), family): _step(line, family) for line in lines
             for family in line.families}
    order = {names[(id(line), family)]: (line.number, family) for line in lines
             for family in line.families}
    ctx.plan(*order)
    planned = []  # accept lines first: those that get through become the barriers of the others
    for line in sorted(lines, key=lambda item: item.expect != "accept"):
        for family in line.families:
            plan, name = planner.plan(line, family), names[(id(line), family)]
            if isinstance(plan, str):  # a line that cannot be probed is not proven
                ctx.inconclusive(name, f"not probed: {plan}")
            else:
                planned.append((name, plan))
    paths, stack = Paths(planner), Stack(ctx.topo, host)
    mismatches: list[tuple[Plan, str]] = []
    try:
        alone = _batch(ctx, paths, planned) if os.environ.get(_ALONE) != "1" else planned
        for name, plan in alone:
            seen = _probe(ctx, plan, paths, stack, name)
            if seen is not None and seen != plan.line.expect:
                mismatches.append((plan, seen))
    finally:
        stack.close()
    ctx.steps.sort(key=lambda step: order.get(step.name, (0, 0)))
    for text in explain(ctx.topo, planner, mismatches):
        ctx.diagnose(text)


def _batch(ctx: Context, paths: Paths, planned: list[tuple[str, Plan]]
           ) -> list[tuple[str, Plan]]:
    """Decide every probe the batch engine can carry in one burst, and record those that
    came out as their lines expect; return the rest to be probed alone, with each
    mismatch (or undecided probe) of the burst again on a fresh flow: alone, it gets the
    evidence and the explanation a single probe gets."""
    batched = [item for item in planned if paths.batchable(item[1])]
    if not batched:
        return planned
    again = [(name, plan.with_sport(paths.planner.sport())) for (name, plan), found in
             zip(batched, burst.run(paths, [p for _, p in batched]), strict=True)
             if not _record(ctx, paths.planner, name, plan, found)]
    chosen = {id(plan) for _, plan in batched}
    rest = [item for item in planned if id(item[1]) not in chosen] + again
    return sorted(rest, key=lambda item: item[1].line.expect != "accept")


def _record(ctx: Context, planner: Planner, name: str, plan: Plan, found: burst.Found
            ) -> bool:
    """Record a batched probe that came out as its line expects; False for any other."""
    arrived, copy = found.outcome.arrived, found.outcome.frame
    if arrived is None or ("accept" if arrived else "drop") != plan.line.expect:
        return False
    if copy is not None and plan.line.chain == "forward" and not burst.as_stated(plan, copy):
        return False
    if arrived:
        planner.barriers.setdefault(plan.path, plan)
    verb = {"input": "reached", "forward": "came out of"}[plan.line.chain]
    shown = f"; rewritten on the way: {found.rewrite}" if found.rewrite else ""
    ctx.steps.append(Step(name, Status.PASS, (
        f"observed {plan.line.expect}: the probe {'' if arrived else 'never '}{verb} "
        f"{found.where} ({found.outcome.how}; all lines in one burst){shown}")))
    return True


def _interfaces(ctx: Context, host: str, lines: list[Line], path: str) -> None:
    """An interface a line names must be the filtered host's: else bad input."""
    have = {i.name for i in ctx.topo.live(host).interfaces}
    for line in lines:
        for name in line.interfaces:
            if name not in have:
                raise SpecError(f"{host} has no interface {name!r} (it has "
                                f"{', '.join(sorted(have))})", file=path, line=line.number)


def _step(line: Line, family: int) -> str:
    return f"line {line.number}: {_row(line, family)}"


def _row(line: Line, family: int) -> str:
    where = "".join(f" {word} {net}" for word, net in
                    (("from", line.source(family)), ("to", line.dest(family))) if net)
    return (f"{line.chain.upper()} {line.service}{where}{line.qualifiers()} {_NAMES[family]}: "
            f"expect {line.expect}")


def _probe(ctx: Context, plan: Plan, paths: Paths, stack: Stack, name: str) -> str | None:
    """Send the probe alone, record the step, return what was observed (None: undecided)."""
    planner = paths.planner
    if plan.line.chain == "forward":
        return forward(ctx, plan, paths, name)
    if plan.socket:
        seen, how = burst.loopback(paths, plan, stack)
        where = f"{planner.host}'s stack"
    elif plan.line.chain == "input":
        seen, how = _input(ctx, plan, paths, stack)
        where = f"{planner.host}'s stack"
    else:
        seen, how = _output(ctx, plan, planner)
        where = plan.observe
    if seen is None:
        ctx.steps.append(Step(name, Status.INCONCLUSIVE, how))
        return None
    observed = "accept" if seen else "drop"
    status = Status.PASS if observed == plan.line.expect else Status.FAIL
    verb = "reached" if seen else "never reached"
    step = Step(name, status, f"observed {observed}: the probe {verb} {where} ({how})")
    ctx.steps.append(step)
    if status is Status.FAIL and not seen and plan.frame is not None:
        ctx.explain(step, plan.frame, plan.port)  # which rule dropped it
    if seen and plan.line.chain == "input" and not plan.opener:
        planner.barriers.setdefault(plan.path, plan)
    return observed


def _input(ctx: Context, plan: Plan, paths: Paths, stack: Stack) -> tuple[bool | None, str]:
    """The probe, then behind it a mark seen where it enters the host (or else a probe
    known to get through on its path); the host's raw socket says whether it came in."""
    source = stack.source(plan.family, plan.line.proto)
    sources: list[Any] = [source]
    mark = paths.mark(plan)
    known = paths.planner.barriers.get(plan.path) if mark is None else None
    if mark is not None:
        capture = ports(ctx.topo).capture(mark.observe.where)
        sources.append(burst.Marked(capture, mark.nonce))
        capture.drain()
    elif known is not None:
        sources.append(stack.source(known.family, known.line.proto))
    for each in sources:
        each.read()
    if plan.opener:
        failed = open_flow(ctx.topo, plan, TIMEOUT)
        if failed:
            return None, failed
    assert plan.frame is not None
    data, nonce = plan.frame.probe()
    behind, behind_nonce = (mark.frame, mark.nonce) if mark is not None else \
        known.frame.probe() if known is not None and known.frame is not None else (None, None)
    sender = ports(ctx.topo).sender(plan.port)
    with pinned():
        sender.send(data)
        if behind is not None:
            sender.send(behind)
    return watch(sources, lambda frame: nonce in frame, behind_nonce, TIMEOUT)


def _output(ctx: Context, plan: Plan, planner: Planner) -> tuple[bool | None, str]:
    capture = ports(ctx.topo).capture(plan.observe)
    capture.drain()
    error = send_from_host(ctx.topo, plan)
    assert plan.barrier is not None
    data, nonce = plan.barrier.probe()
    ports(ctx.topo).sender(plan.port).send(data)  # AF_PACKET: no netfilter hook on the way
    seen, how = watch([capture], plan.matches, nonce, TIMEOUT)
    if seen is False and not planner.primed(plan.port, plan.dst):
        return None, (f"{how}, but {planner.host} held no neighbour entry for the next hop: "
                      "the probe may have waited for it and come after the barrier")
    return seen, how + (f"; the socket said: {error}" if error else "")


def _load_ruleset(ctx: Context, host: str, ruleset: Ruleset) -> None:
    """Replace the host's ruleset: flush it, then load each file with its own tool. Only
    in a namespace netprobe made: an adopted host's ruleset is what is checked, as found."""
    if host in ctx.topo.hosts and not ctx.topo.spec.host(host).owned:
        raise SpecError(f"{host} is not netprobe's: filter does not replace its ruleset "
                        "(load the ruleset there yourself, then run without `ruleset`)")
    if isinstance(ruleset, (str, os.PathLike)):
        paths = os.fspath(ruleset).split(",")
    else:
        paths = [os.fspath(p) for p in ruleset]
    ctx.topo.run(host, ["nft", "flush", "ruleset"], check=True)
    loaded = []
    for path in (os.path.abspath(p.strip()) for p in paths):
        kind = _kind(path)
        argv = {"nft": ["nft", "-f", path], "iptables": ["iptables-restore", path],
                "ip6tables": ["ip6tables-restore", path]}[kind]
        result = ctx.topo.run(host, argv)
        if not result.ok:
            raise SpecError(f"{argv[0]} could not load it into {host}: "
                            f"{result.stderr.strip()}", file=path)
        loaded.append(f"{os.path.basename(path)} ({argv[0]})")
    ctx.record(f"ruleset of {host} replaced", True, "loaded " + ", ".join(loaded))


def _kind(path: str) -> str:
    """nft, or iptables-restore input for IPv4 or IPv6 (by its contents or its name)."""
    text = read_input(path, "ruleset")
    if not re.search(r"^\*\w+\s*$", text, re.M) or "COMMIT" not in text:
        return "nft"
    six = re.search(r"ipv6-icmp|icmpv6|[0-9a-f]*::[0-9a-f]*/\d", text, re.I)
    named = re.search(r"(6\.rules|\.v6|ip6tables[^/]*)$", path)
    return "ip6tables" if six or named else "iptables"


CHECK = Check(
    name="filter",
    summary="a host's firewall accepts and drops what its policy says, over IPv4 and IPv6",
    body=body,
    reference="filter.yaml",
    requires=("veth", "nftables", "AF_PACKET", "nft"),
    params={
        "host": Param("the filtered host", param.host()),
        "ruleset": "nft or iptables-restore file(s), comma separated, loaded into host "
                   "in place of its ruleset (default: keep the topology's)",
        "policy": Param("the policy file (default: filter-policy.yml; none with a "
                        "ruleset: every rule is probed)", param.text),
        "client": Param(
            "the neighbour probes come from (and OUTPUT probes go to) by default",
            param.host(),
        ),
        "behind": Param("the host FORWARD probes go to by default", param.host()),
        "derive": Param("probe every rule of the host's ruleset (the default when a "
                        "ruleset is given without a policy)", param.boolean),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
