"""Causes from the probe's way as the tables say (walk.py): routes, neighbours, MTU.

A wrong neighbour entry, a missing route (on the sender, a router, or the way back), a
source address the far side cannot answer, a router sending the probe back the way it
came, a link too small for a probe that may not be fragmented, a masquerade rule bound
to an interface the route does not use. Pure logic, like cause.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ._facts import (
    GOOD,
    STATE,
    STRONG,
    Cause,
    Findings,
    StaleNeighbour,
    dst_of,
    src_of,
)
from ._walk import Step

ETH_HLEN = 14
OIF = re.compile(r'oifname (?:!= )?"?([\w.@-]+)"?')


def from_path(found: Findings) -> list[Cause]:
    """Every cause the walk shows, scored against what the probe met."""
    if not found.path.walked:
        return []
    out = list(_stale(found))
    out += _sender_route(found)
    out += _turned(found)
    out += _pmtu(found)
    out += _way_back(found)
    return out


def _missing(found: Findings) -> bool:
    """The expectation wanted the probe (or its answer) somewhere and did not see it."""
    got = found.delivery
    return got is None or bool(got.missing)


def _stale(found: Findings) -> Iterator[Cause]:
    for entry in found.path.stale:
        sender = found.sender is not None and entry.host == found.sender[0]
        used = sender and str(found.probe.get("eth.dst", "")).lower() == (entry.mac or "")
        dropped = any(d.reason == "OTHERHOST" and d.host == entry.holder[0]
                      for d in found.drops.drops)  # fmt: skip
        score = STRONG + 0.03 if used or dropped else STATE + 0.2
        yield _stale_cause(entry, score)


def _stale_cause(entry: StaleNeighbour, score: float) -> Cause:
    holder = f"{entry.holder[0]}:{entry.holder[1]}"
    text = (
        f"{entry.host}'s neighbour entry for {entry.ip} on {entry.dev} says {entry.mac} "
        f"({entry.state}), but {entry.ip} is {holder}, whose MAC is {entry.holder_mac}: "
        f"{entry.host} sends its frames for {entry.ip} to a MAC nobody there has"
    )
    fix = (
        f"in {entry.host}: ip neigh replace {entry.ip} lladdr {entry.holder_mac} dev "
        f"{entry.dev} (or ip neigh del {entry.ip} dev {entry.dev}, and ARP learns it)"
    )
    evidence = (f"ip neigh on {entry.host}: {entry.ip} dev {entry.dev} lladdr {entry.mac} "
                f"{entry.state}",)  # fmt: skip
    return Cause(text, evidence, score, fix)


def _sender_route(found: Findings) -> list[Cause]:
    """The sender itself has no route to the destination: its own stack cannot send."""
    path = found.path
    if found.sender is None or path.sender_route is not None or not path.sender_addresses:
        return []
    host, dst = found.sender[0], dst_of(found.probe)
    first = path.steps[0] if path.steps else None
    gateway = _address_towards(found, first) if first is not None else None
    fix = f"in {host}: ip route add {dst} via {gateway}" if gateway else (
        f"give {host} a route to {dst} (or a default route)"
    )
    text = (
        f"{host} has no route to {dst}: its own stack cannot send this probe "
        "(a frame put on the wire by hand still goes)"
    )
    return [Cause(text, (f"ip route get {dst} on {host}: unreachable",), GOOD - 0.05, fix)]


def _address_towards(found: Findings, step: Step) -> str | None:
    """An address of the device the first hop took the probe in on (a gateway)."""
    facts = found.hosts.get(step.host)
    link = facts.links.get(step.iif or "") if facts is not None else None
    return link.addresses[0] if link is not None and link.addresses else None


def _turned(found: Findings) -> list[Cause]:
    """A router sends the probe back out the way it came (a bounce), or round (a loop)."""
    steps = found.path.steps
    last = steps[-1] if steps else None
    if last is None or last.action not in ("bounce", "loop") or last.route is None:
        return []
    before = next((s for s in reversed(steps[:-1]) if s.route is not None), None)
    own = found.path.sender_route
    if before is None and own is not None and found.sender is not None:
        before = Step(found.sender[0], None, "forward", own)  # the sender's own route
    routes = [f"{last.host}: {last.route}"]
    if before is not None:
        routes.insert(0, f"{before.host}: {before.route}")
    if last.action == "bounce":
        back_to = f" to {before.host}" if before is not None else ""
        text = (
            f"a routing loop: {last.host} sends the probe for {dst_of(found.probe)} back out "
            f"of {last.iif}, the way it came{back_to} (`{last.route}`)"
        )
        if before is not None:
            text += f", whose route `{before.route}` sent it to {last.host}"
    else:
        text = (
            f"a routing loop: the probe for {dst_of(found.probe)} comes round to "
            f"{last.host} again and leaves by {last.oif} once more (`{last.route}`)"
        )
    fix = (
        f"correct one of the routes to {dst_of(found.probe)}: "
        + " or ".join(routes)
        + " must point onward, towards the destination"
    )
    return [Cause(text, tuple(f"route on {r}" for r in routes), STRONG + 0.02, fix)]


def _pmtu(found: Findings) -> list[Cause]:
    """A router must send the probe out of a link smaller than it, and may not fragment it."""
    size = found.frame_len - ETH_HLEN - 4 * len(found.probe.get("vlan") or ())
    if not found.path.dont_fragment or size <= 0:
        return []
    out = []
    for step in found.path.steps:
        facts = found.hosts.get(step.host)
        link = facts.links.get(step.oif or "") if facts is not None else None
        if step.action != "forward" or link is None or link.mtu is None or size <= link.mtu:
            continue
        where = f"{step.host}:{link.name}"
        text = (
            f"path MTU: {step.host} routes the probe out of {where}, whose MTU is {link.mtu}; "
            f"the probe is {size} bytes with Don't Fragment set, so {step.host} drops it and "
            f"answers \"fragmentation needed (mtu {link.mtu})\""
        )
        fix = (
            f"give the link at {where} the MTU of the rest of the path (ip link set "
            f"{link.name} mtu {size} in {step.host}, and its peer), or make the sender "
            f"use {link.mtu} (MTU or TCP MSS)"
        )
        out.append(Cause(text, (f"ip link: {where} mtu {link.mtu}",), STRONG + 0.02, fix))
    return out


def _way_back(found: Findings) -> list[Cause]:
    """The answer from where the probe ends cannot return: no route back, or the sender
    picked a source the far side cannot reach."""
    back = found.path.back
    stop = next((s for s in back if s.action in ("no route", "bounce", "loop")), None)
    if stop is None or not back:
        return []
    far, src = back[0].host, src_of(found.probe)
    reply = found.delivery is not None and found.delivery.reply and _missing(found)
    if found.sender is not None and _own_source(found) and _other_source(found):
        return [_wrong_source(found, far, stop, reply)]
    if stop.host == far:
        text = (
            f"no route back: {far} has no route to {src}, so its answer to the probe "
            "cannot leave"
        )
    else:
        text = (
            f"no route back: {stop.host} has no route to {src}, so {far}'s answer to the "
            f"probe dies there"
        )
    fix = f"in {stop.host}: a route to {src} (or a default route towards it)"
    score = STRONG + 0.02 if reply else STATE
    return [Cause(text, (f"the way back from {far}: {_trail(back)}",), score, fix)]


def _own_source(found: Findings) -> bool:
    route = found.path.sender_route
    return route is not None and route.src == src_of(found.probe)


def _other_source(found: Findings) -> str | None:
    src = src_of(found.probe)
    others = [a for a in found.path.sender_addresses if a != src]
    return others[0] if others else None


def _wrong_source(found: Findings, far: str, stop: Step, reply: bool) -> Cause:
    assert found.sender is not None and found.path.sender_route is not None
    host, src, dst = found.sender[0], src_of(found.probe), dst_of(found.probe)
    route = found.path.sender_route
    text = (
        f"wrong source address: {host}'s route to {dst} (`{route}`) picks source {src}, "
        f"which {far} cannot answer: {stop.host} has no route to {src}"
    )
    fix = (
        f"in {host}: let the route pick an address the far side reaches (e.g. src "
        f"{_other_source(found)}), or route {src} back to {host} on {stop.host}"
    )
    score = STRONG + 0.03 if reply else STATE + 0.1
    return Cause(text, (f"the way back from {far}: {_trail(found.path.back)}",), score, fix)


def _trail(steps: tuple[Step, ...]) -> str:
    return ", ".join(s.describe() for s in steps)


def masquerade_oif(found: Findings) -> list[Cause]:
    """A masquerade rule on a router of the path matches an oifname the route to the
    destination does not leave by (its rewrite never happens)."""
    got = found.delivery
    source = got is not None and any(k.endswith(".src") for k in got.rewrites)
    if not source:
        return []
    out = []
    for step in found.path.steps:
        facts = found.hosts.get(step.host)
        if step.action != "forward" or facts is None or not facts.nat or step.oif is None:
            continue
        for rule in facts.nat:
            oif = OIF.search(rule)
            if "masquerade" not in rule or oif is None or oif.group(1) == step.oif:
                continue
            text = (
                f"masquerade on the wrong interface: {step.host}'s rule `{rule}` rewrites "
                f"only what leaves by {oif.group(1)}, but its route to "
                f"{dst_of(found.probe)} (`{step.route}`) leaves by {step.oif}"
            )
            fix = f'in {step.host}: match oifname "{step.oif}" in that rule'
            evidence = (f"route on {step.host}: {step.route}",)
            out.append(Cause(text, evidence, STRONG + 0.03, fix))  # after the delivery itself
    return out
