"""Failures that are not drops: what the expectation saw, read against the state.

A probe can fail by arriving: where it must not (a leak, a flood), or altered (a NAT
rewrite missing or wrong), or by arriving at a host whose answer cannot come back.
Naming a drop for those would mislead; these causes say what happened, and the state
that made it so (the device joining two bridges, the missing FDB entry, the masquerade
rule that does not match, the route back that does not exist).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from ..expect._match import expected_fields
from ..expect._outcome import Outcome
from ..traffic._droptrace import RECEIVE, XMIT, Drop
from ..traffic._port import parse_port
from ._facts import (
    STRONG,
    Cause,
    Delivery,
    Findings,
    HostFacts,
    LinkFacts,
    dst_of,
    src_of,
    unenslaved,
    unicast_dst,
)
from ._nfttrace import own_table

DELIVERED = STRONG + 0.04  # the outcome itself saw it: above any reading of the state
_ADDR = {False: ("ip.src", "ip.dst"), True: ("ip6.src", "ip6.dst")}
_OIF = re.compile(r'oifname (?:!= )?"?([\w.@-]+)"?')
_COUNTER = re.compile(r"\s*counter packets \d+ bytes \d+")


def delivery_of(outcome: Outcome, ifname: Callable[[str, str], str]) -> Delivery:
    """The outcome's verdict per port, and what the expected frame asked to change."""
    reports = outcome.reports
    positive = [p for p, r in reports.items() if not r.negative]
    altered = {
        p: tuple(str(d) for d in reports[p].copies[0].diffs)
        for p in positive
        if reports[p].copies and all(c.diffs for c in reports[p].copies)
    }
    sent = outcome.sent[0] if outcome.sent else {}
    expected, _ = expected_fields(sent, outcome.match)
    v6 = "ip6.dst" in sent
    src, dst = _ADDR[v6]
    reply = bool(sent) and expected.get(dst) == sent.get(src) and expected.get(src) == sent.get(dst)
    keys = (src, dst, "l4.sport", "l4.dport")
    rewrites = {} if reply else {k: expected[k] for k in keys if expected.get(k) != sent.get(k)}
    devices = {p: (h, ifname(h, i)) for p in reports for h, i, _vm in [parse_port(p)]}
    return Delivery(
        tuple(positive),
        tuple(p for p in positive if not reports[p].copies),
        tuple(p for p, r in reports.items() if r.negative and r.copies),
        altered,
        reply,
        rewrites,
        tuple(devices[p] for p in positive),
        devices,
    )


def nat_rules(ruleset: str) -> tuple[str, ...]:
    """The NAT rules (masquerade, snat, dnat, redirect) of `nft list ruleset` output."""
    out = []
    for line in ruleset.splitlines():
        rule = _COUNTER.sub("", line.split(" # handle")[0]).strip()
        if re.search(r"\b(masquerade|snat|dnat|redirect)\b", rule) and "type nat" not in rule:
            out.append(rule)
    return tuple(out)


def delivered(found: Findings) -> list[Cause]:
    """Causes from what the expectation saw (empty when it saw nothing arrive)."""
    got = found.delivery
    if got is None:
        return []
    if got.leaked:
        return [_leak(found, got)]
    if got.altered:
        return [_altered(found, got)]
    out = []
    if got.rewrites and got.missing:
        out += _not_rewritten(found, got)
    if got.reply and got.missing:
        out += _no_way_back(found)
    return out


def _path_line(found: Findings) -> tuple[str, ...]:
    hops = ", ".join(h.describe() for h in found.drops.path)
    return (f"path: {hops}",) if hops else ()


def _leak(found: Findings, got: Delivery) -> Cause:
    why = [w for w in dict.fromkeys(_leak_culprits(found, got)) if w][:2]
    text = f"the probe was delivered, not dropped: it reached {', '.join(got.leaked)}"
    text += ", where it must not" + (f" ({'; '.join(why)})" if why else "")
    return Cause(text, _path_line(found), DELIVERED)


def _leak_culprits(found: Findings, got: Delivery) -> Iterator[str]:
    for port in got.leaked:
        device = got.devices.get(port)
        peer = found.peers.get(device) if device is not None else None
        link = _link(found, *peer) if peer is not None else None
        if peer is not None and link is not None and link.declared_master != link.master:
            yield unenslaved(peer[0], link) if link.declared_master else ""
    yield from _crossings(found)
    yield from _accepted(found)
    yield from _flooded(found, got)


def _link(found: Findings, host: str, dev: str) -> LinkFacts | None:
    facts = found.hosts.get(host)
    return facts.links.get(dev) if facts is not None else None


def _crossings(found: Findings) -> Iterator[str]:
    """A veth the probe crossed from a port of one bridge to a port of another."""
    received = {(h.host, h.device) for h in found.drops.path if h.event == RECEIVE}
    for hop in found.drops.path:
        if hop.event != XMIT or hop.host is None:
            continue
        peer = found.peers.get((hop.host, hop.device))
        here, there = _link(found, hop.host, hop.device), peer and _link(found, *peer)
        if peer is None or here is None or there is None or peer not in received:
            continue
        if here.master and there.master and (hop.host, here.master) != (peer[0], there.master):
            yield (
                f"it crossed {hop.host}:{hop.device}, a port of {hop.host}:{here.master}, to "
                f"its veth peer {peer[0]}:{peer[1]}, a port of {peer[0]}:{there.master}"
            )


def _accepted(found: Findings) -> Iterator[str]:
    """The rule or policy that let the probe through, in each host that traced it."""
    for report in found.nft:
        passed = [
            s
            for s in report.filtering()
            if not own_table(s.table) and s.kind in ("rule", "policy") and s.verdict == "accept"
        ]
        if passed and report.verdict is None:
            yield f"{report.host}'s ruleset let it through: {passed[-1].describe()}"
        elif report.steps and all(own_table(s.table) for s in report.steps):
            yield f"nft trace: no chain of {report.host}'s ruleset saw it"


def _flooded(found: Findings, got: Delivery) -> Iterator[str]:
    """Unicast that went where the FDB does not send it: flooding, and why. Only the
    bridges the frame reached with its destination MAC are judged (see _switched)."""
    mac = unicast_dst(found.probe)
    if mac is None:
        return
    owned = any(
        (link.mac or "").lower() == mac for f in found.hosts.values() for link in f.links.values()
    )
    for host, bridges in _switched(found, mac).items():
        facts = found.hosts[host]
        for name in bridges:
            ageing = facts.links[name].ageing
            if ageing is not None and ageing == 0:
                yield f"{host}:{name} has ageing time 0: it forgets every MAC at once"
        if not facts.fdb:
            yield f"{host}:{'/'.join(bridges)} has no FDB entry for {mac}: it floods it"
        elif not owned:
            yield f"{host} forwards {mac} by its FDB entry `{facts.fdb[0]}`"
        for dest in got.dests:
            peer = found.peers.get(dest)
            link = _link(found, *peer) if peer and peer[0] == host else None
            if peer and link is not None and link.master in bridges and link.learning is False:
                yield f"{peer[0]}:{peer[1]} has learning off: {mac} is never learned there"


def _switched(found: Findings, mac: str) -> dict[str, list[str]]:
    """Each host's bridges that the frame reached with destination `mac`, along the
    path from the sender. A host owning `mac` takes the frame for itself: only the bridge
    that owns it sees it; what it routes on has a new destination MAC (whose FDB entries
    were not read), so the hosts it reaches after are not judged by `mac`."""
    start = found.sender[0] if found.sender else next((h.host for h in found.drops.path), None)
    switching = {start} if start else set()
    owners: dict[str, set[str]] = {}
    for hop in found.drops.path:
        if hop.host is None:
            continue
        peer = found.peers.get((hop.host, hop.device))
        if hop.event == RECEIVE and peer is not None and peer[0] in switching - owners.keys():
            switching.add(hop.host)
        if hop.host in switching and hop.host not in owners:
            facts = found.hosts.get(hop.host)
            owning = _owning_bridges(facts, mac) if facts is not None else None
            if owning is not None:
                owners[hop.host] = owning
            elif hop.event == XMIT and peer is not None:
                switching.add(peer[0])
    out = {}
    for host in sorted(switching & found.hosts.keys()):
        links = found.hosts[host].links
        bridges = [n for n, link in links.items() if link.kind == "bridge"]
        bridges = [b for b in bridges if b in owners.get(host, bridges)]
        if bridges:
            out[host] = bridges
    return out


def _owning_bridges(facts: HostFacts, mac: str) -> set[str] | None:
    """None if no device of the host has `mac`; else the bridges that do (a bridge, or the
    master of a port that has it: the bridge's own, it delivers the frame up)."""
    owning = [link for link in facts.links.values() if (link.mac or "").lower() == mac]
    if not owning:
        return None
    return {
        b
        for link in owning
        for b in (link.master, link.name if link.kind == "bridge" else None)
        if b
    }


def _altered(found: Findings, got: Delivery) -> Cause:
    port, diffs = next(iter(got.altered.items()))
    text = f"the probe was delivered, not dropped: it reached {port} with " + "; ".join(diffs)
    end = got.devices.get(port, ("", ""))[0]
    notes = [n for h in _gateways(found, end) for n in _nat_notes(found, h, got.rewrites)]
    if notes:
        text += f" ({'; '.join(notes[:2])})"
    return Cause(text, _path_line(found) + _tracked(found), DELIVERED)


def _gateways(found: Findings, end: str) -> list[str]:
    """Hosts the probe passed through (not where it started, nor `end`, where it
    arrived) that have NAT facts read."""
    start = found.sender[0] if found.sender else ""
    hosts = [h.host for h in found.drops.path if h.host] or list(found.hosts)
    return [
        h
        for h in dict.fromkeys(hosts)
        if h not in (start, end) and found.hosts.get(h, HostFacts(h)).nat is not None
    ]


def _nat_notes(found: Findings, host: str, rewrites: dict[str, Any] | Any) -> list[str]:
    nat = found.hosts[host].nat or ()
    source = any(k.endswith(".src") or k == "l4.sport" for k in rewrites)
    kind, words = ("masquerade", "snat") if source else ("dnat", "redirect")
    rules = [r for r in nat if any(re.search(rf"\b{w}\b", r) for w in (kind, *words))]
    label = "masquerade/SNAT" if source else "DNAT"
    dport = found.probe.get("l4.dport")
    if not source and dport is not None:
        label += f" rule for dport {dport}"
        rules = [r for r in rules if re.search(rf"\bdport {dport}\b", r)]
    else:
        label += " rule"
    if not rules:
        return [f"{host} has no {label}"]
    left = [h.device for h in found.drops.path if h.host == host and h.event == XMIT]
    left += [s.oif for s in found.path.steps if s.host == host and s.oif]  # by its route
    out = []
    for rule in rules:
        oif = _OIF.search(rule)
        if source and oif and left and oif.group(1) != left[0]:
            out.append(
                f'{host}\'s rule `{rule}` matches oifname "{oif.group(1)}", but the probe '
                f"left by {left[0]}"
            )
        else:
            out.append(f"{host}'s {label} is `{rule}`")
    return out


def _tracked(found: Findings) -> tuple[str, ...]:
    return tuple(
        f"conntrack on {f.host}: {entry}" for f in found.hosts.values() for entry in f.conntrack[:2]
    )


def _not_rewritten(found: Findings, got: Delivery) -> list[Cause]:
    """DNAT expected, the probe never arrived: did the gateway keep it for itself?"""
    dst = dst_of(found.probe)
    owners = [f.host for f in found.hosts.values() if dst in f.addresses]
    kept = [d for d in found.drops.drops if d.host in owners and _kept(d)]
    if not kept or any(k.endswith(".src") for k in got.rewrites):
        return []
    host, drop = kept[0].host or "?", kept[0]
    want = ":".join(str(got.rewrites.get(k, found.probe.get(k))) for k in _dnat_keys(found))
    text = (
        f"no DNAT on {host}: the probe to {dst}:{found.probe.get('l4.dport')} was not "
        f"rewritten to {want}; {host} took it for itself ({drop.reason})"
    )
    notes = _nat_notes(found, host, got.rewrites) if found.hosts[host].nat is not None else []
    if notes:
        text += f": {'; '.join(notes[:2])}"
    return [Cause(text, (drop.describe(), *_tracked(found)), STRONG + 0.03)]


_LOCAL = ("NO_SOCKET", "UNHANDLED_PROTO", "SOCKET_FILTER", "SOCKET_RCVBUFF", "PROTO_MEM")


def _kept(drop: Drop) -> bool:
    """A drop that shows the stack took the probe for itself (no socket, a full socket,
    TCP's own checks): what an unrewritten destination meets. A drop of the forwarding
    path (IP_INADDRERRORS at ip_error: routed onward, so rewritten) shows the opposite."""
    if drop.location.startswith(("ip_error", "ip_forward", "ip6_forward")):
        return False
    return drop.reason in _LOCAL or drop.reason.startswith("TCP_")


def _dnat_keys(found: Findings) -> tuple[str, str]:
    return ("ip6.dst" if "ip6.dst" in found.probe else "ip.dst", "l4.dport")


def _no_way_back(found: Findings) -> list[Cause]:
    """The probe reached the host that answers; can its answer be routed back?"""
    dst, src = dst_of(found.probe), src_of(found.probe)
    reached = {h.host for h in found.drops.path if h.host and h.event == RECEIVE}
    for facts in found.hosts.values():
        if dst not in facts.addresses or (reached and facts.host not in reached):
            continue
        answer = facts.routes.get(f"ip route get {src}")
        if answer is not None and ("unreachable" in answer or "RTNETLINK" in answer):
            return [
                Cause(
                    f"no route back: {facts.host} has no route to {src}, so its answer to "
                    "the probe cannot leave",
                    (f"ip route get {src} on {facts.host}: {answer}", *_path_line(found)),
                    STRONG + 0.02,
                )
            ]
    return []
