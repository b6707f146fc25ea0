"""One frame like nmap's probe, from the neighbour to a port: what explains an intended
port that nmap found unreachable (the rule that dropped it, no socket, a link down)."""

from __future__ import annotations

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
    """The frame and the port it goes into, or None when the path cannot be worked out
    (routes and next hops as the kernels have them)."""
    route = topo.route_to(neighbour, target)
    if route is None:
        return None
    owner = topo.holder(route.gateway or target)
    if route.dev is None or route.src is None or owner is None:
        return None
    proto, port = service
    make = tcp if proto == "tcp" else udp
    frame = make(topo.mac(neighbour, route.dev), topo.mac(owner), route.src, target,
                 sport=47000, dport=port)
    return frame, f"{neighbour}:{route.dev}"
