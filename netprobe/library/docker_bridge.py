"""docker-bridge: a Docker host as dockerd sets it up. Containers reach the outside through
masquerade and get their replies back; a published port is reachable from outside and
lands on its container's port; a neighbour that routes the container subnet via the host
cannot reach a container's port directly, bypassing the published port (Docker 28's
raw-table rule per container; Docker 27 and earlier, and DOCKER_INSECURE_NO_IPTABLES_RAW,
leave this open; a neighbour whose route to the container goes elsewhere proves nothing:
the step is INCONCLUSIVE); two user-defined networks are isolated from each other by Docker's
DOCKER-ISOLATION chains.

Built from the nat check's steps (`endpoint`, `masquerade`, `port_forward`); what is
Docker's own, direct access and the isolation between networks, is proven absent with a
barrier, and the rule that stopped (or let through) the probe is named from an nft trace.
"""

from __future__ import annotations

from netprobe.check import Check, Context, Param, Status, Step, param
from netprobe.errors import SpecError
from netprobe.expect import Barrier, Outcome, nowhere
from netprobe.traffic import Template, arp, ethernet, parse_port, ports, tcp, udp

from ._docker_rules import direct_drop, saved, traced_verdict
from .nat import (
    FORWARD,
    Endpoint,
    endpoint,
    forward_step,
    masquerade,
    masquerade_steps,
    parse_forward,
    port_forward,
)

__all__ = [
    "CHECK", "DIRECT", "direct_step", "isolated", "isolated_step", "parse_direct", "run",
    "unreachable_directly",
]


def isolated_step(src: str, dst: str) -> str:
    """The key of `isolated`'s step (for `ctx.plan`)."""
    return f"{src} isolated from {dst}"


def isolated(ctx: Context, src: Endpoint, dst: Endpoint) -> bool:
    """A probe from `src` to `dst` (on another network of the same host) never reaches it."""
    probe = udp(src.mac, src.gw_mac, src.ip, dst.ip, sport=42000)
    outcome = _never_reaches(
        ctx, f"{src.port} → {dst.ip}: {src.gw_if} and {dst.gw_if} are isolated", probe,
        src.port, dst, isolated_step(src.port, dst.port))
    if not outcome.passed:
        ctx.diagnose(_isolation_fault(ctx, src.gw_host, src.gw_if, dst.gw_if))
    return outcome.passed


def _never_reaches(
    ctx: Context, name: str, probe: Template, port: str, dst: Endpoint, key: str
) -> Outcome:
    """`probe`, sent into `port`, comes out nowhere on `dst`'s link.

    The barrier is a frame the host's bridge of `dst` sends to `dst` right after the probe:
    the probe, routed and filtered within the send that carried it, had its chance by then.
    `dst` first announces itself (an ARP request to its gateway), so a probe let through
    is not held back waiting for the gateway to resolve it, which could outrun the barrier.
    """
    teach, _ = arp(dst.mac, dst.ip, dst.gw_ip).probe()
    ports(ctx.topo).sender(dst.port).send(teach)
    bridge = f"{dst.gw_host}:{dst.gw_if}"
    return ctx.expect(
        name, probe, port, nowhere(among=[dst.port]),
        barrier=Barrier(ethernet(dst.gw_mac, dst.mac), port=bridge), key=key)


DIRECT = "NEIGHBOUR:IFNAME->HOST:IFNAME:PORT, a TCP port 1 to 65535"


def parse_direct(spec: str) -> tuple[str, str, int]:
    """"outside:eth0->c1:eth0:80" → ("outside:eth0", "c1:eth0", 80)."""
    try:
        neighbour, right = spec.split("->")
        target, _, number = right.rpartition(":")
        if not 0 < int(number) < 65536:
            raise ValueError(spec)
        return param.port()(neighbour), param.port()(target), int(number)
    except ValueError:
        raise SpecError(f"direct is {DIRECT}, not {spec!r}") from None


def direct_step(neighbour: str, target: str, port: int) -> str:
    """The key of `unreachable_directly`'s step (for `ctx.plan`)."""
    return f"{target}:{port} unreachable directly from {neighbour}"


def unreachable_directly(ctx: Context, neighbour: Endpoint, dst: Endpoint, port: int) -> bool:
    """A SYN from `neighbour`, which routes `dst`'s subnet via the Docker host, to
    `dst.ip:port` (the container's own address, not a published port) reaches `dst`
    nowhere. Passed, the step names the rule that dropped it, from an nft trace. A
    neighbour whose route to `dst` goes elsewhere proves nothing: INCONCLUSIVE."""
    astray = _astray(ctx, neighbour, dst)
    if astray:
        ctx.inconclusive(f"{neighbour.port} → {dst.ip}:{port}/tcp directly", astray,
                         key=direct_step(neighbour.port, dst.port, port))
        return False
    probe = tcp(neighbour.mac, neighbour.gw_mac, neighbour.ip, dst.ip, sport=43000, dport=port)
    outcome = _never_reaches(
        ctx, f"{neighbour.port} → {dst.ip}:{port}/tcp directly: never reaches {dst.port}",
        probe, neighbour.port, dst, direct_step(neighbour.port, dst.port, port))
    step = ctx.steps[-1]
    if outcome.passed:
        step.detail += "; " + _stopped_by(ctx, probe, neighbour.port, dst)
    else:
        ctx.diagnose(_direct_fault(ctx, step, neighbour, dst, port))
    return outcome.passed


def _astray(ctx: Context, neighbour: Endpoint, dst: Endpoint) -> str:
    """Why `neighbour`'s probe would not go to `dst` via the Docker host ("": it does)."""
    host = parse_port(neighbour.port)[0]
    route = ctx.topo.route_to(host, dst.ip)
    if route is not None and route.gateway is not None and neighbour.gw_host == dst.gw_host:
        return ""
    way = "none" if route is None else f"via {route.gateway} ({neighbour.gw_host})" \
        if route.gateway is not None else f"on-link by {route.dev}"
    return (f"not probed: {host}'s route to {dst.ip} is {way}, not via {dst.gw_host} "
            f"({dst.gw_host}'s address on {host}'s link): a probe that never reaches "
            f"{dst.port} that way proves nothing; route {dst.net} via {dst.gw_host} there")


def _stopped_by(ctx: Context, probe: Template, port: str, dst: Endpoint) -> str:
    """The rule that dropped `probe`, as an nft trace of it names it (the probe sent once
    more); else the raw rule the ruleset has for `dst`."""
    host = dst.gw_host
    traced = Step("direct access traced", Status.PASS)
    if ctx.explain(traced, probe, port) is not None:
        rule = traced_verdict(ctx, host, traced, "drop")
        if rule is not None:
            return f"dropped on {host} by {rule} (nft trace)"
    rule = direct_drop(ctx, host, dst.ip, dst.gw_if)
    return f"{host} has the raw PREROUTING rule \"{rule}\"" if rule else "no rule traced"


def _direct_fault(
    ctx: Context, step: Step, neighbour: Endpoint, dst: Endpoint, port: int
) -> str:
    host, bridge = dst.gw_host, dst.gw_if
    what = (f"{parse_port(dst.port)[0]}:{port} reachable directly from "
            f"{parse_port(neighbour.port)[0]}")
    rule = direct_drop(ctx, host, dst.ip, bridge, port)
    if rule is None:
        text = (f"{what}: no raw-table rule drops traffic to {dst.ip} entering by other than "
                f"{bridge} (Docker < 28 or DOCKER_INSECURE_NO_IPTABLES_RAW)")
    else:
        text = (f"{what}, although {host} has the raw PREROUTING rule \"{rule}\": a rule "
                "before it accepts the probe")
    accepted = traced_verdict(ctx, host, step, "accept")
    return text + (f"; {host} let it through with {accepted}" if accepted else "")


def _isolation_fault(ctx: Context, host: str, a: str, b: str) -> str:
    """Name the DOCKER-ISOLATION rules (as iptables-save prints them) that are missing."""
    lines = saved(ctx, host, "filter")
    # Docker 28 jumps to stage 1 from its DOCKER-FORWARD chain, Docker 27 from FORWARD
    start = "DOCKER-FORWARD" if any(s.startswith(":DOCKER-FORWARD ") for s in lines) else "FORWARD"
    needed = {  # the rule → (its chain, fragments its line must hold)
        f"-A {start} -j DOCKER-ISOLATION-STAGE-1": (start, ["-j DOCKER-ISOLATION-STAGE-1"]),
        f"-A DOCKER-ISOLATION-STAGE-1 -i {a} ! -o {a} -j DOCKER-ISOLATION-STAGE-2": (
            "DOCKER-ISOLATION-STAGE-1", [f"-i {a} ! -o {a}", "-j DOCKER-ISOLATION-STAGE-2"]),
        f"-A DOCKER-ISOLATION-STAGE-2 -o {b} -j DROP": (
            "DOCKER-ISOLATION-STAGE-2", [f"-o {b}", "-j DROP"]),
    }
    missing = [
        rule for rule, (chain, parts) in needed.items()
        if not any(line.startswith(f"-A {chain} ") and all(p in line for p in parts)
                   for line in lines)
    ]
    if missing:
        return (f"{a} and {b} are not isolated: {host} lacks Docker's isolation "
                f"rule{'s' if len(missing) > 1 else ''} " + "; ".join(f'"{r}"' for r in missing))
    return (f"{host} has Docker's isolation rules for {a} → {b}, yet the probe crossed: a rule "
            "before them in FORWARD (DOCKER-USER?) accepts it")


def _ports(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def body(
    ctx: Context, *, containers: str = "c1:eth0,c3:eth0,c4:eth0", outside: str = "outside:eth0",
    public_ip: str = "198.51.100.2", published: str = "8080->c1:eth0:80",
    direct: str = "outside:eth0->c1:eth0:80", networks: str = "c3:eth0,c4:eth0",
) -> None:
    """Masquerade for each container, the published port, no direct access from a
    routing neighbour, isolation both ways."""
    forward = parse_forward(published) if published else None
    bypass = parse_direct(direct) if direct else None
    pair = _ports(networks)
    if len(pair) != 2:
        raise SpecError(f"networks names two containers on different networks, not {networks!r}")
    ctx.plan(*(key for port in _ports(containers) for key in masquerade_steps(port)),
             *([forward_step(*forward[:2])] if forward else []),
             *([direct_step(*bypass)] if bypass else []),
             *(isolated_step(a, b) for a, b in (pair, pair[::-1])))
    out = endpoint(ctx, outside, public_ip)
    for index, port in enumerate(_ports(containers)):
        masquerade(ctx, endpoint(ctx, port, out.ip), out, public_ip, sport=40000 + index)
    if forward:
        proto, number, port, target = forward
        port_forward(ctx, out, public_ip, endpoint(ctx, port, out.ip), number, target, proto)
    if bypass:
        neighbour, container, number = bypass
        dst = endpoint(ctx, container, out.ip)
        unreachable_directly(ctx, endpoint(ctx, neighbour, dst.ip), dst, number)
    a, b = (endpoint(ctx, p, out.ip) for p in pair)
    isolated(ctx, endpoint(ctx, a.port, b.ip), endpoint(ctx, b.port, a.ip))
    isolated(ctx, endpoint(ctx, b.port, a.ip), endpoint(ctx, a.port, b.ip))


CHECK = Check(
    name="docker-bridge",
    summary=("containers masquerade out, a published port lands inside, no direct access "
             "from a routing neighbour, networks are isolated"),
    body=body,
    reference="docker-bridge.yaml",
    requires=("veth", "bridge", "iptables", "AF_PACKET", "nft"),
    params={
        "containers": Param(
            "containers that must reach the outside, HOST:IFNAME,…",
            param.port_list(),
        ),
        "outside": Param("the outside host, HOST:IFNAME", param.port()),
        "public_ip": Param(
            "the Docker host's outside address (what masquerade rewrites to)",
            param.ip(4),
        ),
        "published": Param(
            'a published port, [tcp/]PORT->HOST:IFNAME:PORT ("" for none)',
            param.optional(param.checked_by(parse_forward, FORWARD)),
        ),
        "direct": Param(
            "a routing neighbour and a container port it must not reach directly (not "
            'through a published port), NEIGHBOUR:IFNAME->HOST:IFNAME:PORT ("" for none)',
            param.optional(param.checked_by(parse_direct, DIRECT)),
        ),
        "networks": Param(
            "two containers on different user-defined networks, HOST:IFNAME,HOST:IFNAME",
            param.port_list(minimum=2),
        ),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
