"""One frame like nmap's probe, from the neighbour to a port: what explains an intended
port that nmap found unreachable (the rule that dropped it, no socket, a link down)."""

from __future__ import annotations

import json

from netprobe.check import Context, Step
from netprobe.topology import Topology
from netprobe.traffic import Template, tcp, udp

__all__ = ["explain_unreachable"]


def explain_unreachable(
    ctx: Context, step: Step, neighbour: str, target: str, service: tuple[str, int]
) -> None:
    """Send `service`'s probe from `neighbour` to `target` with explaining armed."""
    made = _probe(ctx.topo, neighbour, target, service)
    if made is not None:
        ctx.explain(step, *made)


def _probe(
    topo: Topology, neighbour: str, target: str, service: tuple[str, int]
) -> tuple[Template, str] | None:
    """The frame and the port it goes into, or None when the path cannot be worked out."""
    route = topo.run(neighbour, ["ip", "-j", "route", "get", target])
    if not route.ok:
        return None
    hop = json.loads(route.stdout)[0]
    dev, src, next_ip = hop.get("dev"), hop.get("prefsrc"), hop.get("gateway", target)
    owner = _owner(topo, next_ip)
    if dev is None or src is None or owner is None:
        return None
    proto, port = service
    make = tcp if proto == "tcp" else udp
    frame = make(topo.mac(neighbour, dev), topo.mac(*owner), src, target, sport=47000,
                 dport=port)
    return frame, f"{neighbour}:{dev}"


def _owner(topo: Topology, ip: str) -> tuple[str, str] | None:
    """(host, interface) holding `ip` in the topology's spec."""
    for host in topo.spec.hosts:
        for iface in host.interfaces:
            if any(str(a.ip) == ip for a in iface.addresses):
                return host.name, iface.name
    return None
