"""isolation: two tenants with identical addressing each reach their own hosts and never
each other's; no frame of one ever appears in the other.

From every host of each tenant: a ping to the next host of its own tenant is answered,
and an ARP request for that host's address, a broadcast and a unicast addressed to the
other tenant's host (its MAC, and the address both tenants use) all stay inside the
tenant. Absence in the other tenant is proven by a barrier that the other tenant's own
bridge floods to every one of its hosts right behind the probe: a frame that leaked would
be ahead of it on each of those ports. On a leak, the bridges' ports are read back to
name what joins the tenants (a veth between the bridges, a host port on the wrong bridge).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from netprobe.check import (
    Check,
    Context,
    Param,
    Port,
    Status,
    echo_and_reply,
    ipv4_of,
    param,
    parse_ports,
    peer_port,
    require_bridge,
)
from netprobe.errors import SpecError
from netprobe.expect import Barrier, Outcome, Where, at_exactly, nowhere
from netprobe.topology import LiveInterface
from netprobe.traffic import Template, arp, ethernet, udp

from .bridge import port_faults

__all__ = ["CHECK", "run"]

_TIMEOUT = 0.5  # seconds for what must arrive; absence is decided by the barrier


@dataclass(frozen=True)
class _Tenant:
    name: str
    ports: tuple[Port, ...]  # the hosts' ports
    bridge: Port  # the bridge that floods to every one of them (the barrier's way in)
    barrier: Barrier


def body(
    ctx: Context,
    *,
    tenant_a: str = "a1:eth0,a2:eth0",
    tenant_b: str = "b1:eth0,b2:eth0",
    bridge_a: str = "",
    bridge_b: str = "",
) -> None:
    """Probe from every host of each tenant; name what joins them if anything leaks."""
    ports_a = tuple(parse_ports(ctx.topo, tenant_a, at_least=2))
    ports_b = tuple(parse_ports(ctx.topo, tenant_b, at_least=2))
    found_a, found_b = _bridges_of(ctx, ports_a, ports_b)
    a = _tenant(ctx, "A", ports_a, bridge_a or found_a)
    b = _tenant(ctx, "B", ports_b, bridge_b or found_b)
    if set(a.ports) & set(b.ports):
        shared = sorted(set(a.ports) & set(b.ports))
        raise SpecError(f"tenants A and B share ports: {', '.join(map(str, shared))}")
    leaked = unreached = False
    for own, other in ((a, b), (b, a)):
        for index, src in enumerate(own.ports):
            peer = own.ports[(index + 1) % len(own.ports)]
            outcomes = _probe(ctx, own, other, src, peer)
            leaked |= any(_reached(o, other) for o in outcomes)
            unreached |= not outcomes[0].passed and not _reached(outcomes[0], other)
    joins = _joins(ctx, a, b)
    if leaked:
        for text in joins or [_UNSEEN_PATH.format(a=a.bridge, b=b.bridge)]:
            ctx.diagnose(text)
    elif joins:  # nothing crossed, but a port nobody accounts for could carry traffic
        ctx.inconclusive("nothing else is attached to the tenants' bridges", "; ".join(joins))
        for text in joins:  # e.g. a router between them, which twin probes never reach
            ctx.diagnose(text)
    else:
        ctx.record("nothing else is attached to the tenants' bridges", True)
    if unreached:
        for text in _faults(ctx, a) + _faults(ctx, b):
            ctx.diagnose(text)
    failed = [s for s in ctx.steps if s.status in (Status.FAIL, Status.INCONCLUSIVE)]
    if failed and not ctx.diagnoses:
        ctx.diagnose(
            f"nothing leaked and every port is up and enslaved, yet {failed[0].name}: "
            f"{failed[0].detail}"
        )


def _tenant(ctx: Context, name: str, ports: tuple[Port, ...], bridge: str | Port | None
            ) -> _Tenant:
    """A tenant and its barrier: a broadcast the tenant's bridge itself transmits, which
    floods to every port of it. A probe that leaked toward this tenant reached the bridge
    before the barrier was sent (the kernel normally carries it veth → bridge → veth in
    the sender's own softirq, before send() returns; else in FIFO backlog order), so at
    each port it is queued ahead of the barrier."""
    if bridge is None:
        raise SpecError(f"cannot tell which bridge tenant {name} ({', '.join(map(str, ports))})"
                        " is on: name it with bridge_a/bridge_b (HOST:BRIDGE)")
    switch = require_bridge(ctx, bridge)
    flood = ethernet(ctx.topo.mac(switch), "ff:ff:ff:ff:ff:ff")
    return _Tenant(name, ports, switch, Barrier(flood, switch))


def _bridges_of(ctx: Context, a: tuple[Port, ...], b: tuple[Port, ...]
                ) -> tuple[Port | None, Port | None]:
    """The bridges the tenants' veths lead to, as the kernel has them: the pair of
    masters most of their ports' far ends agree with, two different ones on a tie (a
    port moved onto the other tenant's bridge must not make it this tenant's; tenants
    all on one bridge share it)."""
    votes_a, votes_b = _masters(ctx, a), _masters(ctx, b)

    def score(pair: tuple[Port | None, Port | None]) -> tuple[int, bool]:
        x, y = pair
        return (votes_a[x] if x else 0) + (votes_b[y] if y else 0), x != y

    return max(((x, y) for x in [*votes_a, None] for y in [*votes_b, None]), key=score)


def _masters(ctx: Context, ports: tuple[Port, ...]) -> Counter[Port]:
    """The bridges behind `ports` (their veth peers' masters), counted, in port order."""
    found: Counter[Port] = Counter()
    for port in ports:
        peer = peer_port(ctx.topo, port)
        iface = ctx.topo.live(peer.host).interface(peer.ifname) if peer else None
        if peer is not None and iface is not None and iface.master is not None:
            found[peer.on(iface.master)] += 1
    return found


def _probe(ctx: Context, own: _Tenant, other: _Tenant, src: Port, peer: Port) -> list[Outcome]:
    """The four probes from `src`; the first is the ping to `peer`, its own tenant's host."""
    src_ip, peer_ip = _ip(ctx, src), _ip(ctx, peer)
    twin = next((p for p in other.ports if _ip(ctx, p) == peer_ip), other.ports[0])
    twin_ip, twin_mac = _ip(ctx, twin), ctx.topo.mac(twin)
    src_mac = ctx.topo.mac(src)
    rest = [p for p in own.ports if p != src]
    floods = at_exactly(rest, among=[*rest, *other.ports])
    request, reply = echo_and_reply(src_mac, ctx.topo.mac(peer), src_ip, peer_ip)
    probes: list[tuple[str, Template, Where, dict[str, Any]]] = [
        (
            f"ping {src} → {peer} ({peer_ip}) answered, never seen in tenant {other.name}",
            request,
            at_exactly([src], among=[src, *other.ports]),
            {"match": reply},
        ),
        (
            f"ARP who-has {peer_ip} from {src} floods tenant {own.name} only",
            arp(src_mac, src_ip, peer_ip),
            floods,
            {},
        ),
        (
            f"broadcast from {src} floods tenant {own.name} only",
            ethernet(src_mac, "ff:ff:ff:ff:ff:ff"),
            floods,
            {},
        ),
        (
            f"unicast {src} → tenant {other.name}'s {twin} ({twin_mac}, {twin_ip}) never arrives",
            udp(src_mac, twin_mac, src_ip, twin_ip),
            nowhere(among=other.ports),
            {},
        ),
    ]
    return [
        ctx.expect(name, frame, src, where, barrier=other.barrier, timeout=_TIMEOUT, **extra)
        for name, frame, where, extra in probes
    ]


def _ip(ctx: Context, port: Port) -> str:
    found = ipv4_of(ctx.topo, port)
    if found is None:
        raise SpecError(f"{port} has no IPv4 address in the topology: isolation needs one")
    return found


def _reached(outcome: Outcome, tenant: _Tenant) -> bool:
    """Did a copy of the probe (or of its reply) appear at one of `tenant`'s ports?"""
    seen = outcome.reports  # keyed by the ports' text
    return any(seen[str(p)].copies for p in tenant.ports if str(p) in seen)


def _faults(ctx: Context, tenant: _Tenant) -> list[str]:
    return [f for port in tenant.ports for f in port_faults(ctx, tenant.bridge, port)]


def _bridge_ports(ctx: Context, bridge: Port) -> dict[str, tuple[LiveInterface, str | None]]:
    """The interfaces enslaved to `bridge` now, by name, each with its veth peer's name
    when that peer is in the same namespace."""
    host = ctx.topo.live(bridge.host)
    names = {i.index: i.name for i in host.interfaces}
    return {
        i.name: (i, names.get(i.link_index or -1) if i.link_nsid is None else None)
        for i in host.ports_of(bridge.ifname)
    }


def _joins(ctx: Context, a: _Tenant, b: _Tenant) -> list[str]:
    """What joins the tenants: a shared bridge, a host port on the other tenant's bridge,
    a veth between the two bridges, or any other bridge port that belongs to no host."""
    if a.bridge == b.bridge:
        return [f"tenants A and B share the bridge {a.bridge}: nothing separates them"]
    found: list[str] = []
    named: set[Port] = set()  # a veth pair is reported once, from its first end
    for own, other in ((a, b), (b, a)):
        host = own.bridge.host
        mine = {peer_port(ctx.topo, p) for p in own.ports}
        theirs = {peer_port(ctx.topo, p): p for p in other.ports}
        across = _bridge_ports(ctx, other.bridge) if other.bridge.host == host else {}
        for name, (iface, peer) in _bridge_ports(ctx, own.bridge).items():
            port = Port(host, name)
            if port in mine or port in named:
                continue
            if port in theirs:
                found.append(
                    f"{port}, the port of tenant {other.name}'s {theirs[port]}, is "
                    f"enslaved to {own.bridge}, tenant {own.name}'s bridge"
                )
            elif peer in across:
                named.add(Port(host, peer))
                found.append(
                    f"veth {port} on {own.bridge} and its peer {host}:{peer} on "
                    f"{other.bridge} join the tenants' bridges: a leak"
                )
            else:
                found.append(
                    f"{port} ({_describe(iface, peer)}) is a port of {own.bridge} but no "
                    f"host of tenant {own.name} is behind it: a likely leak"
                )
    return found


_UNSEEN_PATH = (
    "frames cross between the tenants, yet no port of {a} or {b} joins them: look for "
    "another path (a host forwarding or proxy-ARPing between them, a macvlan, tc mirred)"
)


def _describe(iface: LiveInterface, peer: str | None) -> str:
    if peer is not None:
        return f"{iface.kind}, peer {peer}"
    return f"{iface.kind}, peer in another namespace" if iface.link_nsid is not None else iface.kind


CHECK = Check(
    name="isolation",
    summary="two tenants with the same addressing reach their own hosts, never each other's",
    body=body,
    reference="tenants.yaml",
    requires=("veth", "bridge", "AF_PACKET", "ip"),
    params={
        "tenant_a": Param("tenant A's host ports, HOST:IFNAME,HOST:IFNAME,...", param.port_list()),
        "tenant_b": Param("tenant B's host ports, HOST:IFNAME,HOST:IFNAME,...", param.port_list()),
        "bridge_a": Param(
            "HOST:BRIDGE flooding to every tenant-A host (default: its ports' bridge)",
            param.optional(param.port()),
        ),
        "bridge_b": Param(
            "HOST:BRIDGE flooding to every tenant-B host (default: its ports' bridge)",
            param.optional(param.port()),
        ),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
