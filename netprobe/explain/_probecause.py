"""Causes a probe from a host's stack shows by itself: who should have answered the ARP
or ND request nobody answered, and why they could not hear it; an answer that died on
its way back, and the router it died at."""

from __future__ import annotations

from collections.abc import Iterator

from ..expect import Ending, ProbeResult
from ..topology import Port, Topology
from ._delivery import nat_rules
from ._facts import Cause
from ._route import OIF

SURE = 0.97  # the kernel's own state says it, with the probe's evidence beside it
_ANSWERS = ("echo-reply", "syn-ack", "udp-reply", "rst")


def probe_causes(topo: Topology, result: ProbeResult) -> list[Cause]:
    """Causes read off the probe's ending and the live state, most certain first."""
    causes: list[Cause] = []
    if result.ending in (Ending.NO_NEIGHBOUR, Ending.DROPPED):
        v6 = ":" in result.dst
        asked = [(p, t) for p, t in result.trace.unanswered if (":" in t) == v6]
        for port, target in asked[:1]:
            causes += _unheard(topo, Port.parse(port), target)
        holder = topo.holder(result.dst)
        if holder is not None:
            causes = [*_holder_down(topo, holder, result.dst), *causes]
    if result.ending is Ending.DROPPED:
        causes += _answer_lost(topo, result)
    return causes


def _answer_lost(topo: Topology, result: ProbeResult) -> Iterator[Cause]:
    """The probe was answered, and the answer died at a router with no route back to
    the probe's source: say so, and first a masquerade that should have rewritten it."""
    answers = [r for r in result.trace.replies if r.kind in _ANSWERS]
    routed = [r for r in answers if r.direction == "in" and not _bridged(topo, r.port)]
    if not routed:
        return
    last = routed[-1]  # where it came in to be routed, and was not
    back_to = str(last.fields.get("ip.dst", last.fields.get("ip6.dst")))
    if last.host == result.sender or topo.route_to(last.host, back_to) is not None:
        return
    crossed = [c for c in result.trace.copies if c.direction == "out"]
    for copy in crossed:
        if copy.host in (result.sender, last.host):
            continue
        yield from _masquerade_elsewhere(topo, copy.host, copy.port.partition(":")[2])
    yield Cause(
        f"{last.host} has no route back to {back_to}: the answer ({last.kind}) to the "
        f"probe dies there, at {last.port}",
        (f"the answer was last seen at {last.port} ({last.direction})",
         f"ip route get {back_to} in {last.host}: no route"), SURE - 0.02,
        fix=f"in {last.host}: a route to {back_to}'s network via the way the probe came",
    )  # fmt: skip


def _bridged(topo: Topology, port: str) -> bool:
    """Whether `port` is a bridge port: what comes in there is switched, not routed."""
    where = Port.parse(port)
    iface = topo.live(where.host, addresses=False).interface(where.ifname)
    return iface is not None and iface.master is not None


def _masquerade_elsewhere(topo: Topology, host: str, left_by: str) -> Iterator[Cause]:
    """A masquerade rule of `host` bound to an interface the probe did not leave by."""
    listed = topo.run(host, ["nft", "list", "ruleset"])
    for rule in nat_rules(listed.stdout) if listed.ok else ():
        oif = OIF.search(rule)
        if oif is None or "masquerade" not in rule:
            continue
        negated = "oifname !=" in rule  # dockerd's shape: all but the bridge
        if (oif.group(1) == left_by) == negated:
            yield Cause(
                f"masquerade on the wrong interface: {host}'s rule `{rule}` rewrites only "
                f"what leaves by {oif.group(1)}, but the probe left {host} by {left_by}, "
                "so its source was never rewritten and the answer finds no way back",
                (f"{host}: the probe went out {host}:{left_by} with its own source",), SURE,
                fix=f'in {host}: match oifname "{left_by}" in that rule',
            )  # fmt: skip


def _holder_down(topo: Topology, holder: Port, address: str) -> Iterator[Cause]:
    iface = topo.live(holder.host).interface(holder.ifname)
    if iface is not None and not iface.up:
        yield Cause(
            f"{holder} holds {address} but is down: nothing there answers or takes the probe",
            (f"{holder}: state down, mtu {iface.mtu}",), SURE + 0.01,
            fix=f"ip -n <{holder.host}'s namespace> link set {holder.ifname} up",
        )


def _unheard(topo: Topology, asking: Port, target: str) -> Iterator[Cause]:
    """Why `target`'s holder did not hear `asking`'s ARP/ND request: the segment between
    them, as the kernel has it (a veth to a bridge, the bridge's ports, the far veth)."""
    holder = topo.holder(target)
    first = topo.peer(asking)
    if holder is None or first is None:
        return
    far = topo.peer(holder)  # the end facing the holder: a bridge port, or `asking`
    if far is None or far == asking:
        return
    near_if = topo.live(first.host).interface(first.ifname)
    bridge = near_if.master if near_if is not None else None
    far_if = topo.live(far.host).interface(far.ifname)
    if bridge is None or far.host != first.host or far_if is None:
        return
    evidence = (f"{asking} asked who has {target}; {first} is a port of {bridge}",
                f"{target} is held by {holder}, whose far end is {far}")  # fmt: skip
    if far_if.master is None:
        yield Cause(
            f"{far} has no master: it is not a port of {bridge}, so {holder} never hears "
            f"the ARP/ND request for {target} that {asking} sends",
            evidence, SURE, fix=f"ip -n <{far.host}'s namespace> link set {far.ifname} "
            f"master {bridge}",
        )  # fmt: skip
    elif far_if.master != bridge:
        yield Cause(
            f"{far} is a port of {far_if.master}, not of {bridge}: {holder} never hears the "
            f"ARP/ND request for {target} that {asking} sends",
            evidence, SURE, fix=f"ip -n <{far.host}'s namespace> link set {far.ifname} "
            f"master {bridge}",
        )  # fmt: skip
    elif far_if.port_state not in (None, "forwarding") and far_if.carrier:
        yield Cause(
            f"{far}, the port of {bridge} towards {holder}, is {far_if.port_state}: the "
            "bridge passes it nothing", evidence, SURE,
        )  # fmt: skip
