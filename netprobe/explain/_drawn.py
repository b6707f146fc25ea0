"""A probe's path as the topology's picture draws it (a DrawnPath): from what `probe`
followed (its hops and their rewrites, its ending), or from a failed expectation's
explanation (the drop trace's devices, the drop, the likeliest cause); and which hosts'
live rulesets NAT or filter."""

from __future__ import annotations

import re

from ..expect import ProbeResult
from ..topology import Topology
from ..topology._model.pathview import DrawnPath, PathHop
from ..traffic._droptrace import XMIT
from ._explanation import Explanation

SHOWN_HOPS = 40  # a loop repeats itself: the first ones say enough
CAUSE_CHARS = 200  # the picture's note is read at a glance; the report has the rest
_FILTERS = re.compile(r"\b(drop|reject)\b")


def rule_roles(topo: Topology) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(hosts whose live nft ruleset has a nat chain, hosts whose filter chains drop or
    reject something), read with `nft list ruleset` (iptables-nft rules show there too)."""
    nat, firewall = [], []
    for host in topo.hosts:
        listed = topo.run(host, ["nft", "list", "ruleset"], timeout=10)
        if not listed.ok:
            continue
        if "type nat hook" in listed.stdout:
            nat.append(host)
        if "type filter hook" in listed.stdout and _FILTERS.search(listed.stdout):
            firewall.append(host)
    return tuple(nat), tuple(firewall)


def _short(text: str) -> str:
    return text if len(text) <= CAUSE_CHARS else text[: CAUSE_CHARS - 1] + "…"


def probe_path(
    result: ProbeResult,
    explanation: Explanation | None,
    roles: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
) -> DrawnPath:
    """The path `probe` followed, its ending where it happened, and why: the ending's
    words, then the likeliest cause of a failure."""
    near = (result.where or "").split(":", 1)[0]
    why = _why(explanation, near) if explanation is not None else []
    cause = "\n".join([result.words, *why])
    hops = tuple(PathHop(h.port, h.direction, h.rewrites) for h in result.path[:SHOWN_HOPS])
    return DrawnPath(
        title=f"{result.sender} → {result.target}: {result.ending.value}",
        hops=hops, ok=result.ok, ending=result.ending.value, where=result.where,
        cause=cause, nat=roles[0], firewall=roles[1],
    )  # fmt: skip


def explanation_path(
    explanation: Explanation,
    topo: Topology,
    title: str,
    roles: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
) -> DrawnPath:
    """A failed expectation's path: the devices the drop trace saw the re-sent probe on
    (no rewrites: the trace sees devices, not fields), ending at the drop when the kernel
    reported one, else where it was last seen, with the likeliest cause."""
    names = _spec_names(topo)
    hops = [PathHop(explanation.port)] if not explanation.drops.path else []
    for hop in explanation.drops.path[:SHOWN_HOPS]:
        host = hop.host or "?"
        ifname = names.get((host, hop.device), hop.device)
        hops.append(PathHop(f"{host}:{ifname}", "out" if hop.event == XMIT else "in"))
    drop = explanation.drops.drops[0] if explanation.drops.drops else None
    if drop is not None and drop.host:
        device = names.get((drop.host, drop.device), drop.device) if drop.device else ""
        where: str | None = f"{drop.host}:{device}" if device else drop.host
        ending = f"dropped ({drop.reason})"
    else:
        where = hops[-1].port if hops else None
        ending = "did not arrive" if explanation.failure is None else explanation.failure
    cause = "\n".join(_why(explanation))
    return DrawnPath(
        title=title, hops=tuple(hops), ok=False, ending=ending, where=where, cause=cause,
        nat=roles[0], firewall=roles[1],
    )  # fmt: skip


def _why(explanation: Explanation, near: str = "") -> list[str]:
    """The likeliest cause, the nft rule that dropped or rejected it, the kernel's drop
    reason (on host `near`, where the probe ended, when given): each a line of the
    picture's note, when found."""
    lines = []
    if explanation.top is not None:
        lines.append(f"likeliest cause: {_short(explanation.top.text)}")
    for report in explanation.nft:
        verdict = report.verdict
        said = explanation.top is not None and verdict is not None and (
            verdict.describe() in explanation.top.text
        )
        if verdict is not None and verdict.action is not None and not said:
            lines.append(f"nft on {report.host}: {_short(verdict.describe())} {verdict.action}s it")
    drops = [d for d in explanation.drops.drops if not near or d.host == near]
    if drops:
        lines.append(f"kernel: {drops[0].describe()}")
    return lines


def _spec_names(topo: Topology) -> dict[tuple[str, str], str]:
    """(host, the kernel's device name) → the spec's interface name, where they differ."""
    return {
        (h.name, topo.ifname(h.name, i.name)): i.name
        for h in topo.spec.hosts
        for i in h.interfaces
    }
