"""routing: a router host forwards between subnets, where its routing table says it will.

For each direction (left → right, right → left) and each address family both ends have:
the sender's own routing table must send the destination through the router; an ICMP
echo request crafted as the sender would send it must come out at the destination,
routed (MACs and TTL changed, nothing else); the interface the probe is seen leaving the
router by must be the one `ip route get <dst> from <src> iif <in>` predicts there; and
the destination's echo reply, sent by its own kernel along its own routes, must come
back to the sender (a missing return route shows up here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import ip_address

from netprobe.check import Check, Context, Param, Port, echo_and_reply, param
from netprobe.errors import NotFound, SpecError
from netprobe.expect import ROUTED, Match, at
from netprobe.traffic import Capture, Template, decode, find_nonce

__all__ = ["CHECK", "run"]

_FORWARDING = {4: "net.ipv4.ip_forward", 6: "net.ipv6.conf.all.forwarding"}


@dataclass(frozen=True)
class _End:
    """One end host: its port, its address in the family under test, and its MAC."""

    port: Port
    host: str
    ip: str
    mac: str
    family: int


def _end(ctx: Context, port: Port, family: int) -> _End | None:
    """`port` as an end host in IPv`family`: its first global address there, by the kernel
    (None: it has none in that family)."""
    iface = ctx.topo.live(port.host).interface(port.ifname)
    if iface is None:
        raise SpecError(f"routing: no interface {port}: {port.host} has no {port.ifname}")
    for address in iface.addresses:
        ip = address.ip
        if ip.version == family and not (ip.is_link_local or ip.is_loopback):
            return _End(port, port.host, str(ip), ctx.topo.mac(port), family)
    return None


def _route(ctx: Context, host: str, dst: str, src: str, iif: str) -> tuple[_Route | None, str]:
    """The route `host` takes for a packet from `src` to `dst` arriving on `iif`, as the
    kernel answers `ip -j route get`: (the route, "") or (None, the kernel's refusal).
    (`Topology.route_to` asks for the host's own traffic, which has no incoming interface.)"""
    argv = ["ip", "-j", "route", "get", dst, "from", src, "iif", ctx.topo.ifname(host, iif)]
    result = ctx.topo.run(host, argv)
    if not result.ok:
        return None, result.stderr.strip().removeprefix("RTNETLINK answers: ")
    found = json.loads(result.stdout)[0]
    return _Route(found.get("gateway"), found["dev"]), ""


def _own_route(ctx: Context, host: str, dst: str, src: str) -> _Route | None:
    """The route `host`'s kernel gives its own traffic from `src` to `dst` (None: none)."""
    route = ctx.topo.route_to(host, dst, src)
    return _Route(route.gateway, route.dev) if route is not None and route.dev else None


@dataclass(frozen=True)
class _Route:
    """A route the kernel picked: the gateway (None: on-link) and the outgoing interface."""

    gateway: str | None
    dev: str


class _Router:
    """The router: its addresses, and captures of what leaves each of its interfaces
    (a port's capture shows only what arrives), all as the kernel has them."""

    def __init__(self, ctx: Context, name: str) -> None:
        self.name = name
        live = ctx.topo.live(name)
        self.addresses = [(i.name, a) for i in live.interfaces for a in i.addresses]
        fd, ifname = ctx.topo.fd_of(name), ctx.topo.ifname
        self.caps = {
            i.name: Capture(str(Port(name, i.name)), fd, ifname(name, i.name), outgoing=True)
            for i in live.interfaces
            if i.master is None and i.kind != "loopback" and _ours(ctx, name, i.name)
        }

    def owner(self, ip: str | None) -> str | None:
        """The interface that has address `ip`."""
        return next((i for i, a in self.addresses if str(a.ip) == ip), None)

    def neighbour(self, ip: str) -> str | None:
        """The router's address on the subnet of `ip`."""
        return next((str(a.ip) for _, a in self.addresses if ip_address(ip) in a.network), None)

    def drain(self) -> None:
        for cap in self.caps.values():
            cap.drain()

    def left_by(self, nonce: bytes, dst: str) -> list[str]:
        """The interfaces the probe left by (ICMP errors quoting it do not count)."""
        out = []
        for name, cap in self.caps.items():
            for frame in cap.read():
                fields = decode(frame.data)
                to = fields.get("ip.dst", fields.get("ip6.dst"))
                if frame.outgoing and find_nonce(frame.data) == nonce and to == dst:
                    out.append(name)
                    break
        return out

    def close(self) -> None:
        for cap in self.caps.values():
            cap.close()


def _ours(ctx: Context, host: str, ifname: str) -> bool:
    """In an own or adopted namespace every interface is watched; in the machine's own
    only those the topology made (the machine's links are not the check's business)."""
    if ctx.topo.namespace(host) is not None:
        return True
    try:
        ctx.topo.mac(host, ifname)  # found by the run's prefixed name: one of ours
    except NotFound:
        return False
    return True


def body(
    ctx: Context, *, left: str = "left:eth0", right: str = "right:eth0", router: str = "router"
) -> None:
    """Probe both directions in each family both ends have, and the replies."""
    rtr = _Router(ctx, router)
    try:
        legs: list[tuple[_End, _End]] = []
        for family in (4, 6):
            a, b = _end(ctx, Port.parse(left), family), _end(ctx, Port.parse(right), family)
            if a is not None and b is not None:
                legs += [(a, b), (b, a)]
        ctx.plan(*(step for src, dst in legs for step in _leg_steps(rtr.name, src, dst)))
        for src, dst in legs:
            _leg(ctx, rtr, src, dst)
    finally:
        rtr.close()
    if not ctx.steps:
        raise SpecError(f"routing: {left} and {right} share no address family to route")


def _leg_steps(router: str, src: _End, dst: _End) -> list[str]:
    """The names of one direction's steps, in the order taken (for `ctx.plan`)."""
    leg = f"{src.host}→{dst.host} IPv{src.family}"
    return [
        f"{leg}: {src.host} sends {dst.ip} through {router}",
        f"{leg}: {router} forwards an echo request to {dst.port}",
        f"{leg}: `ip route get` on {router} agrees with the egress seen",
        f"{leg}: {dst.host}'s echo reply comes back to {src.port}",
    ]


def _leg(ctx: Context, rtr: _Router, src: _End, dst: _End) -> None:
    hop, forwards, agrees, replies = _leg_steps(rtr.name, src, dst)
    ingress = _first_hop(ctx, hop, rtr, src, dst)
    if ingress is None:
        return
    route, refusal = _route(ctx, rtr.name, dst.ip, src.ip, ingress)
    predicted = route.dev if route else None
    frame, back = echo_and_reply(src.mac, ctx.topo.mac(rtr.name, ingress), src.ip, dst.ip,
                                 routed=True)
    rtr.drain()
    forward = ctx.expect(
        forwards,
        frame,
        src.port,
        at(dst.port),
        match=ROUTED,
        timeout=0.5,
    )
    seen = rtr.left_by(forward.sent[0]["nonce"], dst.ip)
    said = f"via {predicted}" if predicted else f"not forwarded ({refusal})"
    ctx.record(
        agrees,
        seen == ([predicted] if predicted else []),
        f"{rtr.name} predicts {said}; the probe left by {', '.join(seen) or 'none'}",
    )
    if not forward.passed:
        _diagnose_forward(ctx, rtr, ingress, src, dst, seen)
    else:
        _round_trip(ctx, rtr, replies, frame, back, src, dst)


def _round_trip(
    ctx: Context, rtr: _Router, name: str, frame: Template, back: Match, src: _End, dst: _End
) -> None:
    """The same request again (the step `name`): `dst`'s kernel answers along its own
    routes, and its reply meets `back`."""
    reply = ctx.expect(
        name,
        frame,
        src.port,
        at(src.port),
        match=back,
        timeout=0.5,
    )
    if not reply.passed:
        _diagnose_return(ctx, rtr, dst, src)


def _first_hop(ctx: Context, name: str, rtr: _Router, src: _End, dst: _End) -> str | None:
    """The router interface `src` sends `dst`'s traffic to, recorded as the step `name`
    (None: a failure)."""
    route = _own_route(ctx, src.host, dst.ip, src.ip)
    gateway = route.gateway if route else None
    owner = rtr.owner(gateway)
    if route is None:
        detail = f"{src.host} has no route to {dst.ip}"
        _diagnose_missing_route(ctx, rtr, src, dst)
    elif gateway is None:
        detail = f"{src.host} reaches {dst.ip} on its own link, not through a router"
    else:
        detail = f"{src.host} routes {dst.ip} via {gateway}"
        detail += "" if owner else f", which is not an address of {rtr.name}"
    if route is not None and owner is None:
        ctx.diagnose(detail)
    ctx.record(name, bool(owner), detail)
    return owner


def _diagnose_missing_route(ctx: Context, rtr: _Router, host: _End, to: _End) -> None:
    gateway = rtr.neighbour(host.ip)
    fix = f" (add a default route via {gateway})" if gateway else ""
    ctx.diagnose(
        f"{host.host} has no route to {to.ip} ({to.host}): its replies and its own "
        f"traffic to {to.host} have nowhere to go{fix}"
    )


def _diagnose_forward(
    ctx: Context, rtr: _Router, ingress: str, src: _End, dst: _End, seen: list[str]
) -> None:
    """Why the request did not get through: forwarding off, no route, or a drop."""
    key, per_if = _FORWARDING[src.family], f"net.ipv{src.family}.conf.{ingress}.forwarding"
    route, refusal = _route(ctx, rtr.name, dst.ip, src.ip, ingress)
    if ctx.topo.sysctl(rtr.name, key) == "0":
        short = "ip_forward" if src.family == 4 else key
        ctx.diagnose(
            f"{short} is 0 on {rtr.name}: it forwards no IPv{src.family} between its interfaces"
        )
    elif ctx.topo.sysctl(rtr.name, per_if) == "0":
        ctx.diagnose(f"{per_if} is 0 on {rtr.name}: it forwards nothing arriving on {ingress}")
    elif route is None:
        ctx.diagnose(f"{rtr.name} has no route to {dst.ip}: {refusal}")
    elif not seen:
        rules = ctx.topo.run(rtr.name, ["nft", "list", "ruleset"]).stdout.strip()
        suspect = "its firewall's forward hook" if rules else "rp_filter or a missing neighbour"
        ctx.diagnose(
            f"{rtr.name} routes {dst.ip} out of {route.dev} but the probe never "
            f"left it: {suspect} dropped it"
        )
    else:
        ctx.diagnose(
            f"the probe left {rtr.name} by {', '.join(seen)} but never reached "
            f"{dst.port}: something past {rtr.name} drops it"
        )


def _diagnose_return(ctx: Context, rtr: _Router, replier: _End, asker: _End) -> None:
    """The request got there; say where the reply stops: at the replier or at the router."""
    route = _own_route(ctx, replier.host, asker.ip, replier.ip)
    ingress = rtr.owner(route.gateway) if route else None
    if route is None:
        _diagnose_missing_route(ctx, rtr, replier, asker)
    elif ingress is None:
        ctx.diagnose(
            f"{replier.host} sends replies to {asker.ip} via "
            f"{route.gateway or route.dev}, not through {rtr.name}"
        )
    else:
        back, refusal = _route(ctx, rtr.name, asker.ip, replier.ip, ingress)
        ctx.diagnose(
            f"{rtr.name} has no route to {asker.ip}: {refusal}"
            if back is None
            else f"{rtr.name} routes replies to {asker.ip} out of {back.dev}, and they "
            f"never reach {asker.port} (see the evidence)"
        )


CHECK = Check(
    name="routing",
    summary="a router forwards between subnets as its routing table predicts, both ways",
    body=body,
    reference="router.yaml",
    requires=("veth", "AF_PACKET", "ip"),
    params={
        "left": Param("an end host's port on one subnet, HOST:IFNAME", param.port()),
        "right": Param("an end host's port on another subnet, HOST:IFNAME", param.port()),
        "router": Param("the host that routes between them", param.host()),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
