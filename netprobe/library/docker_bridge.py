"""docker-bridge: a Docker host as dockerd sets it up. Containers reach the outside through
masquerade and get their replies back; a published port is reachable from outside and
lands on its container's port; two user-defined networks are isolated from each other by
Docker's DOCKER-ISOLATION chains.

Built from the nat check's steps (`endpoint`, `masquerade`, `port_forward`); what is
Docker's own is the isolation between networks, proven absent with a barrier.
"""

from __future__ import annotations

from netprobe.check import Check, Context, Param, param
from netprobe.errors import SpecError
from netprobe.expect import Barrier, nowhere
from netprobe.traffic import arp, ethernet, ports, udp

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

__all__ = ["CHECK", "isolated", "isolated_step", "run"]


def isolated_step(src: str, dst: str) -> str:
    """The key of `isolated`'s step (for `ctx.plan`)."""
    return f"{src} isolated from {dst}"


def isolated(ctx: Context, src: Endpoint, dst: Endpoint) -> bool:
    """A probe from `src` to `dst` (on another network of the same host) never reaches it.

    The barrier is a frame the host's bridge of `dst` sends to `dst` right after the probe:
    the probe, routed and filtered within the send that carried it, had its chance by then.
    `dst` first announces itself (an ARP request to its gateway), so a probe let through
    is not held back waiting for the gateway to resolve it, which could outrun the barrier.
    """
    teach, _ = arp(dst.mac, dst.ip, dst.gw_ip).probe()
    ports(ctx.topo).sender(dst.port).send(teach)
    probe = udp(src.mac, src.gw_mac, src.ip, dst.ip, sport=42000)
    bridge = f"{dst.gw_host}:{dst.gw_if}"
    outcome = ctx.expect(
        f"{src.port} → {dst.ip}: {src.gw_if} and {dst.gw_if} are isolated", probe, src.port,
        nowhere(among=[dst.port]), barrier=Barrier(ethernet(dst.gw_mac, dst.mac), port=bridge),
        key=isolated_step(src.port, dst.port))
    if not outcome.passed:
        ctx.diagnose(_isolation_fault(ctx, src.gw_host, src.gw_if, dst.gw_if))
    return outcome.passed


def _isolation_fault(ctx: Context, host: str, a: str, b: str) -> str:
    """Name the DOCKER-ISOLATION rules (as iptables-save prints them) that are missing."""
    saved = ctx.topo.run(host, ["iptables-save", "-t", "filter"]).stdout.splitlines()
    needed = {  # the rule → (its chain, fragments its line must hold)
        "-A FORWARD -j DOCKER-ISOLATION-STAGE-1": ("FORWARD", ["-j DOCKER-ISOLATION-STAGE-1"]),
        f"-A DOCKER-ISOLATION-STAGE-1 -i {a} ! -o {a} -j DOCKER-ISOLATION-STAGE-2": (
            "DOCKER-ISOLATION-STAGE-1", [f"-i {a} ! -o {a}", "-j DOCKER-ISOLATION-STAGE-2"]),
        f"-A DOCKER-ISOLATION-STAGE-2 -o {b} -j DROP": (
            "DOCKER-ISOLATION-STAGE-2", [f"-o {b}", "-j DROP"]),
    }
    missing = [
        rule for rule, (chain, parts) in needed.items()
        if not any(line.startswith(f"-A {chain} ") and all(p in line for p in parts)
                   for line in saved)
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
    networks: str = "c3:eth0,c4:eth0",
) -> None:
    """Masquerade for each container, the published port, isolation both ways."""
    forward = parse_forward(published) if published else None
    pair = _ports(networks)
    if len(pair) != 2:
        raise SpecError(f"networks names two containers on different networks, not {networks!r}")
    ctx.plan(*(key for port in _ports(containers) for key in masquerade_steps(port)),
             *([forward_step(*forward[:2])] if forward else []),
             *(isolated_step(a, b) for a, b in (pair, pair[::-1])))
    out = endpoint(ctx, outside, public_ip)
    for index, port in enumerate(_ports(containers)):
        masquerade(ctx, endpoint(ctx, port, out.ip), out, public_ip, sport=40000 + index)
    if forward:
        proto, number, port, target = forward
        port_forward(ctx, out, public_ip, endpoint(ctx, port, out.ip), number, target, proto)
    a, b = (endpoint(ctx, p, out.ip) for p in pair)
    isolated(ctx, endpoint(ctx, a.port, b.ip), endpoint(ctx, b.port, a.ip))
    isolated(ctx, endpoint(ctx, b.port, a.ip), endpoint(ctx, a.port, b.ip))


CHECK = Check(
    name="docker-bridge",
    summary="containers masquerade out, a published port lands inside, networks are isolated",
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
        "networks": Param(
            "two containers on different user-defined networks, HOST:IFNAME,HOST:IFNAME",
            param.port_list(minimum=2),
        ),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
