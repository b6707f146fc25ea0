"""lxc: LXC's default network as lxc-net sets it up. The host's bridge lxcbr0 (10.0.3.1/24)
runs dnsmasq; a container asks for its address by DHCP, like a physical computer would, and
reaches the outside through the host's masquerade, its source rewritten to the host's uplink
address, and the reply comes back.

The steps: a real DHCP exchange played as the container (busybox udhcpc, once, changing
nothing), the address and default route the container holds now, then nat's `masquerade`
(new flow out, reply back, established flow) from the container to the outside host.
"""

from __future__ import annotations

import ipaddress

from netprobe.check import Check, Context, Param, param
from netprobe.errors import SpecError
from netprobe.topology import RunningDhcpServer
from netprobe.traffic import decode, parse_port

from ._lxc_dhcp import RETRIES, WAIT, exchange
from .nat import endpoint, masquerade, masquerade_steps

__all__ = ["CHECK", "dhcp_step", "holds_lease", "holds_step", "leases", "run"]

# lxc-net's rule, in both of its forms (nft, its default when nft works; else iptables)
LXC_NET_NFT = "ip saddr {net} ip daddr != {net} masquerade"
LXC_NET_IPTABLES = "-t nat -A POSTROUTING -s {net} ! -d {net} -j MASQUERADE"


def dhcp_step(container: str) -> str:
    """The key of `leases`'s step (for `ctx.plan`)."""
    return f"{container}: DHCP lease"


def holds_step(container: str) -> str:
    """The key of `holds_lease`'s step (for `ctx.plan`)."""
    return f"{container}: holds its DHCP address"


def _bridge_address(ctx: Context, bridge: str) -> ipaddress.IPv4Interface:
    host, ifname, _ = parse_port(bridge)
    iface = ctx.topo.live(host).interface(ifname)
    if iface is None or not iface.ipv4:
        raise SpecError(f"{bridge} has no IPv4 address (lxc-net gives lxcbr0 10.0.3.1/24)")
    return iface.ipv4[0]


def leases(ctx: Context, container: str, bridge: str) -> dict[str, str] | None:
    """A DHCP exchange run as `container` (udhcpc once, nothing changed): a lease from
    `bridge`'s address, within its subnet, with it as the router. The lease, or None."""
    host, ifname, _ = parse_port(container)
    gw = _bridge_address(ctx, bridge)
    got = exchange(ctx.topo, host, ctx.topo.ifname(host, ifname))
    name = f"{container}: DHCP lease from {gw.ip} on {bridge}"
    if not got.lease:
        ctx.record(name, False, f"no offer after {RETRIES} discovers ({WAIT} s each): "
                   + " / ".join(got.log.splitlines()[-3:]), key=dhcp_step(container))
        ctx.diagnose(_no_answer(ctx, bridge))
        return None
    lease = got.lease
    ip, router, server = lease.get("ip", ""), lease.get("router", ""), lease.get("serverid", "")
    wrong = [f"{what} {value or 'none'}, not {want}" for what, value, want in (
        ("server", server, gw.ip), ("router", router, gw.ip)) if value != str(want)]
    if ipaddress.ip_address(ip) not in gw.network:
        wrong.insert(0, f"address {ip} outside {gw.network}")
    detail = (f"{ip} (mask {lease.get('subnet')}) from server {server}, router {router or 'none'}"
              f", lease {lease.get('lease')} s")
    ctx.record(name, not wrong, detail + ("" if not wrong else ": " + "; ".join(wrong)),
               key=dhcp_step(container))
    if wrong:
        ctx.diagnose(f"the DHCP answer on {bridge} is not lxc-net's dnsmasq's: "
                     + "; ".join(wrong) + f" (another DHCP server answers {container}?)")
    return lease


def _no_answer(ctx: Context, bridge: str) -> str:
    host, ifname, _ = parse_port(bridge)
    running = ctx.topo.dhcp_servers(host)
    head = f"no DHCP server answered on {ifname}"
    if not running:
        return f"{head}: no dnsmasq runs in {host} (lxc-net starts one on {ifname})"
    address = str(_bridge_address(ctx, bridge).ip)
    serving = [d for d in running if _serves(d, ctx.topo.ifname(host, ifname), address)]
    if not serving:
        return f"{head}: {host}'s dnsmasq ({_pids(running)}) does not serve {ifname} " + \
            "(" + "; ".join(_served(d) for d in running) + ")"
    return (f"{head}, although {host}'s dnsmasq ({_pids(serving)}) serves it: a firewall "
            f"drops UDP 67/68 on {ifname}, or the container's link is not a port of {ifname}")


def _serves(server: RunningDhcpServer, ifname: str, address: str) -> bool:
    """Does `server` answer DHCP on `ifname`, whose address is `address` (it has a range,
    and the interface is its, by name or by a listen-address)?"""
    named = server.interfaces or server.listen_addresses
    listed = not named or ifname in server.interfaces or address in server.listen_addresses
    return bool(server.ranges) and listed and ifname not in server.except_interfaces


def _pids(found: list[RunningDhcpServer]) -> str:
    return ", ".join(f"pid {d.pid}" for d in found)


def _served(d: RunningDhcpServer) -> str:
    where = ", ".join((*d.interfaces, *d.listen_addresses)) or "every interface"
    ranges = ", ".join(f"{first}-{last}" for first, last in d.ranges) or "no dhcp-range: DNS only"
    return f"pid {d.pid}: {where}, {ranges}"


def holds_lease(
    ctx: Context, container: str, bridge: str, lease: dict[str, str] | None, toward: str
) -> bool:
    """`container` holds an address of `bridge`'s subnet that DHCP gave it (the one just
    offered, or one dnsmasq's lease file has for its MAC), and routes `toward` via
    `bridge`'s address (its default route), as its kernel has them now. False when it
    holds no such address (nothing to send from)."""
    host, ifname, _ = parse_port(container)
    gw = _bridge_address(ctx, bridge)
    iface = ctx.topo.live(host).interface(ifname)
    held = [a for a in (iface.ipv4 if iface else ()) if a.ip in gw.network]
    name, key = f"{container} holds a DHCP address of {gw.network}, default via {gw.ip}", \
        holds_step(container)
    if iface is None or not held:
        ctx.record(name, False, f"no address of {gw.network} on {ifname}", key=key)
        ctx.diagnose(f"{container} holds no address of {gw.network}: no DHCP client "
                     "configured it (none runs there, or it got no lease)")
        return False
    leased = _leased(ctx, parse_port(bridge)[0], container, iface.mac, lease)
    dhcp = [a for a in held if str(a.ip) in leased]
    route = ctx.topo.route_to(host, toward)
    shown = f"{(dhcp or held)[0]} on {ifname}, route to {toward}: {route or 'none'}"
    faults = [] if dhcp or not leased else [
        f"{', '.join(map(str, held))} is not what DHCP gave it ({', '.join(sorted(leased))})"]
    if route is None or route.gateway != str(gw.ip):
        faults.append(f"its route to {toward} is {route or 'none'}, not via {gw.ip}")
    if not faults and not leased:
        ctx.inconclusive(name, f"{shown}; whether DHCP gave it is unknown: no lease now, and "
                         "no dnsmasq lease file names its MAC", key=key)
        return True
    ctx.record(name, not faults, "; ".join([shown, *faults]), key=key)
    for fault in faults:
        ctx.diagnose(f"{container}: {fault}")
    return True


def _leased(
    ctx: Context, host: str, container: str, mac: str, lease: dict[str, str] | None
) -> set[str]:
    """The addresses DHCP gave `mac`: the lease just got, what `host`'s dnsmasqs hold for
    it, and the lease netprobe's client on `container` holds (`dhcp: true`)."""
    found = {got.ip for d in ctx.topo.dhcp_servers(host) for got in d.leases()
             if got.mac == mac.lower()}
    held = ctx.topo.dhcp_lease(*parse_port(container)[:2])
    return found | ({lease["ip"]} if lease else set()) | ({held.ip} if held else set())


def _public_ip(ctx: Context, bridge: str, outside: str) -> str:
    """The address the bridge's host leaves by toward the outside host."""
    host, (far_host, far_if, _) = parse_port(bridge)[0], parse_port(outside)
    far = ctx.topo.live(far_host).interface(far_if)
    if far is None or not far.ipv4:
        raise SpecError(f"{outside} has no IPv4 address")
    route = ctx.topo.route_to(host, str(far.ipv4[0].ip))
    iface = ctx.topo.live(host).interface(route.dev) if route and route.dev else None
    if route is None or iface is None or not iface.ipv4:
        raise SpecError(f"{host} has no route toward {outside}: give public_ip")
    return route.src or str(iface.ipv4[0].ip)


def _lxc_net_fault(ctx: Context, container: str, outside: str, public_ip: str,
                   net: ipaddress.IPv4Network, gw: str) -> None:
    """What of lxc-net's masquerade the failed flow lacks, in lxc-net's own terms."""
    step = next((s for s in ctx.steps if s.id == masquerade_steps(container)[0]), None)
    copies = step.outcome.reports[outside].copies if step and step.outcome else []
    src = decode(copies[0].frame.data).get("ip.src") if copies else None
    if src is not None and ipaddress.ip_address(src) in net:
        ctx.diagnose(f"source not rewritten: {container}'s flow arrived at {outside} as {src}, "
                     f"not {public_ip}: no masquerade for {net} in {gw}'s nat POSTROUTING "
                     f"(lxc-net adds \"{LXC_NET_NFT.format(net=net)}\", or with iptables "
                     f"\"{LXC_NET_IPTABLES.format(net=net)}\")")


def body(
    ctx: Context, *, bridge: str = "lxchost:lxcbr0", container: str = "c1:eth0",
    outside: str = "outside:eth0", public_ip: str = "",
) -> None:
    """The container's DHCP exchange, the address it holds, then masquerade out and back."""
    ctx.plan(dhcp_step(container), holds_step(container), *masquerade_steps(container))
    public = public_ip or _public_ip(ctx, bridge, outside)
    out = endpoint(ctx, outside, public)
    lease = leases(ctx, container, bridge)
    if not holds_lease(ctx, container, bridge, lease, out.ip):
        return  # no address to send from: the masquerade steps are not run
    inside = endpoint(ctx, container, out.ip)
    no_forwarding = (f"ip_forward is 0 on {inside.gw_host}: it routes nothing, so no container "
                     f"of {inside.net} reaches beyond {parse_port(bridge)[1]} (lxc-net sets "
                     "net.ipv4.ip_forward = 1)")
    if not masquerade(ctx, inside, out, public, no_forwarding=no_forwarding):
        _lxc_net_fault(ctx, container, outside, public, inside.net, inside.gw_host)


CHECK = Check(
    name="lxc",
    summary=("a container on lxcbr0 gets its address by DHCP from the host's dnsmasq and "
             "reaches the outside through masquerade, and back"),
    body=body,
    reference="lxc.yaml",
    requires=("veth", "bridge", "nftables", "AF_PACKET", "nft", "dnsmasq", "busybox"),
    params={
        "bridge": Param("the LXC bridge, HOST:BRIDGE (lxc-net's lxcbr0)", param.port()),
        "container": Param("the container's interface on the bridge, HOST:IFNAME",
                           param.port()),
        "outside": Param("the outside host, HOST:IFNAME", param.port()),
        "public_ip": Param(
            "the address masquerade must rewrite to (\"\": the bridge host's address "
            "toward the outside host)", param.optional(param.ip(4))),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
