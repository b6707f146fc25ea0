"""A forward policy line probed alone: judged where the probe comes out, by an
expectation (for its evidence) behind a probe of its path known to get through, or else
by its path's mark, seen where it enters the filtered host; never by silence."""

from __future__ import annotations

from netprobe.check import Context, Status, Step
from netprobe.expect import ROUTED, Barrier, Match, Outcome, at, nowhere
from netprobe.traffic import decode

from . import _burst as burst
from ._burst import Paths
from .net import Plan
from .observe import TIMEOUT, open_flow
from .policy import Line


def forward(ctx: Context, plan: Plan, paths: Paths, name: str) -> str | None:
    """A forward probe alone: judged where it comes out (by `ctx.expect`, for its evidence)
    behind a probe of its path known to get through; else (or if it did not come out)
    decided by the mark of its path, seen where it enters the host."""
    planner = paths.planner
    assert plan.frame is not None
    if plan.opener:
        failed = open_flow(ctx.topo, plan, TIMEOUT)
        if failed:
            ctx.inconclusive(name, failed)
            return None
    known = planner.barriers.get(plan.path)
    match = _nat_match(plan.line)
    if plan.line.expect == "accept":
        outcome = ctx.expect(name, plan.frame, plan.port, at(plan.observe), match=match,
                             timeout=TIMEOUT)
    elif known is not None and known.frame is not None:
        outcome = ctx.expect(
            name, plan.frame, plan.port, nowhere(among=[plan.observe]), match=match,
            barrier=Barrier(known.frame), timeout=TIMEOUT)
    else:  # no probe known to get through: the mark decides; a copy is shown as evidence
        observed = _forward_marked(ctx, plan, paths, name)
        if observed != "accept":
            return observed
        marked = ctx.steps.pop()
        outcome = ctx.expect(name, plan.frame, plan.port, nowhere(among=[plan.observe]),
                             match=match, timeout=TIMEOUT, quiet=TIMEOUT)
        if _rewrite(outcome, plan.observe) is None:  # not seen again: the mark's answer
            ctx.steps[-1] = marked
            return observed
    if outcome.verdict.value == "INCONCLUSIVE":
        return None
    if _rewrite(outcome, plan.observe) is None and plan.line.expect == "accept":
        return _forward_marked(ctx, plan, paths, name, ctx.steps[-1])  # not seen: prove it
    return _judged(ctx, plan, paths, outcome, match)


def _judged(ctx: Context, plan: Plan, paths: Paths, outcome: Outcome, match: Match
            ) -> str | None:
    """Record what the expectation's step observed; None when the copy came out rewritten
    otherwise than the line states."""
    rewrite = _rewrite(outcome, plan.observe)
    seen = rewrite is not None
    if seen and not plan.opener:
        paths.planner.barriers.setdefault(plan.path, plan)
    observed = "accept" if seen else "drop"
    shown = f"; rewritten on the way: {rewrite}" if rewrite else ""
    if seen and plan.line.expect == "accept" and not outcome.passed:  # not the stated NAT
        ctx.steps[-1].detail = (f"observed accept, rewritten otherwise than the line states "
                                f"({match.describe()}): {outcome.reason}")
        ctx.diagnose(f"policy line {plan.line.number} ({plan.line}): the probe came out at "
                     f"{plan.observe} as {rewrite or 'sent'}, not as the line states")
        return None
    ctx.steps[-1].detail = f"observed {observed}: {outcome.reason} ({outcome.decided_by}){shown}"
    return observed


def _forward_marked(ctx: Context, plan: Plan, paths: Paths, name: str,
                    step: Step | None = None) -> str | None:
    """The probe, then its path's mark (netfilter never sees it) seen where it enters the
    host: did the probe leave the host toward its destination? No mark: not proven.
    `step`: the step of a probe that did not come out by the deadline, decided here."""
    step = step or Step(name, Status.INCONCLUSIVE)
    if not any(each is step for each in ctx.steps):
        ctx.steps.append(step)
    if paths.mark(plan) is None or paths.egress(plan) is None:
        step.status = Status.INCONCLUSIVE
        step.detail = (f"not decided: {paths.host}'s way in or out for this probe is not "
                       "known, so nothing can be sent behind it to prove a drop")
        return None
    found = burst.run(paths, [plan])[0]
    arrived, copy, how = found.outcome.arrived, found.outcome.frame, found.outcome.how
    step.status, step.detail = Status.INCONCLUSIVE, f"not decided: {how}"
    if arrived is None:
        return None
    if arrived and copy is not None and not burst.as_stated(plan, copy):
        step.detail = f"observed accept, rewritten otherwise than the line states: {found.rewrite}"
        ctx.diagnose(f"policy line {plan.line.number} ({plan.line}): the probe came out of "
                     f"{found.where} as {found.rewrite or 'sent'}, not as the line states")
        return None
    if arrived and not plan.opener:
        paths.planner.barriers.setdefault(plan.path, plan)
    observed = "accept" if arrived else "drop"
    step.status = Status.PASS if observed == plan.line.expect else Status.FAIL
    shown = f"; rewritten on the way: {found.rewrite}" if found.rewrite else ""
    marked = "" if arrived else f"; its path's mark seen entering {paths.host}"
    step.detail = (f"observed {observed}: the probe {'' if arrived else 'never '}came out of "
                   f"{found.where} ({how}{marked}){shown}")
    return observed


def _nat_match(line: Line) -> Match:
    """How a forwarded probe must come out: as routed, and rewritten as the line states;
    addresses and ports it does not state may have been rewritten (masquerade, NAT)."""
    match = ROUTED.masking("l4.chksum", "icmp.id")
    match = match.rewriting(src=line.snat).masking("sport") if line.snat else \
        match.masking("src", "sport")
    if not line.dnat:
        return match.masking("dst", "dport")
    return match.rewriting(dst=line.dnat, **({"dport": line.dnat_port} if line.dnat_port
                                             else {}))


def _rewrite(outcome: Outcome, port: str) -> str | None:
    """How the probe's copy at `port` differs from what was sent ("" unchanged), or None
    when no copy came out there."""
    report = outcome.reports.get(port)
    if report is None or not report.copies or not outcome.sent:
        return None
    return burst.changes(outcome.sent[0], decode(report.copies[0].frame.data))
