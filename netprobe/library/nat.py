"""nat: Proxmox NAT mode and docker0 style. A guest on the private side reaches the outside
host with its source rewritten to the gateway's public address; the outside host's reply
comes back rewritten to the guest's own address and port; the flow keeps its mapping once
established; a published port (DNAT) lands on the right inside host and port.

The steps (`endpoint`, `masquerade`, `port_forward`) are reusable: docker-bridge is built
from them.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from netprobe.check import Check, Context, Param, param
from netprobe.errors import SpecError
from netprobe.expect import ROUTED, Outcome, at
from netprobe.topology import LiveRoute
from netprobe.traffic import arp, decode, parse_port, ports, tcp, udp

__all__ = [
    "CHECK", "FORWARD", "Endpoint", "endpoint", "forward_step", "masquerade", "masquerade_steps",
    "nat_rules", "parse_forward", "port_forward", "run",
]


@dataclass(frozen=True)
class Endpoint:
    """A port playing a host: its address, and the next hop (gateway) it sends through."""

    port: str
    ip: str
    net: ipaddress.IPv4Network
    mac: str
    gw_host: str  # the topology host and interface that own the next hop's address
    gw_if: str
    gw_ip: str
    gw_mac: str


def endpoint(ctx: Context, port: str, toward: str, ip: str | None = None) -> Endpoint:
    """`port` as a sender of IPv4 to `toward`, as the kernel has it now. A VM side of a
    TAP ("pve:tap100i0@vm") has no kernel to ask: give its `ip`; its gateway is the TAP
    host's address on that subnet."""
    host, ifname, vm = parse_port(port)
    if vm:
        if ip is None:
            raise SpecError(f"{port} is a VM's side of a TAP: give its IPv4 address")
        gw_host, gw_if, gw = _owner(ctx, ip, host=host)
        net, mac = gw.network, "02:00:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
    else:
        iface = ctx.topo.live(host).interface(ifname)
        if iface is None or not iface.ipv4:
            raise SpecError(f"{port} has no IPv4 address")
        ip, mac, net = str(iface.ipv4[0].ip), iface.mac, iface.ipv4[0].network
        gw_host, gw_if, gw = _owner(ctx, _route(ctx, host, toward).gateway or toward)
    return Endpoint(port, ip, net, mac, gw_host, gw_if, str(gw.ip), ctx.topo.mac(gw_host, gw_if))


def _route(ctx: Context, host: str, dst: str) -> LiveRoute:
    route = ctx.topo.route_to(host, dst)
    if route is None:
        raise SpecError(f"{host} has no route to {dst}")
    return route


def _owner(
    ctx: Context, ip: str, host: str | None = None
) -> tuple[str, str, ipaddress.IPv4Interface]:
    """The host, interface and address that hold `ip` now (with `host`: that host's
    address on the subnet of `ip`), as the hosts' kernels have them."""
    address = ipaddress.ip_address(ip)
    for name in [host] if host else list(ctx.topo.hosts):
        for iface in ctx.topo.live(name).interfaces:
            for addr in iface.ipv4:
                if addr.ip == address if host is None else address in addr.network:
                    return name, iface.name, addr
    raise SpecError(f"no host of the topology has {'a subnet of' if host else 'the address'} {ip}")


_NO_FORWARDING = "ip_forward is 0 on {gw}: it routes nothing, so no NAT and no published port"


def masquerade_steps(port: str) -> list[str]:
    """The keys of `masquerade`'s three steps for the guest `port` (for `ctx.plan`)."""
    return [f"{port}: new flow out", f"{port}: reply back", f"{port}: established flow"]


def forward_step(proto: str, published: int) -> str:
    """The key of `port_forward`'s step (for `ctx.plan`)."""
    return f"published {proto}/{published}"


def masquerade(
    ctx: Context, inside: Endpoint, outside: Endpoint, public_ip: str, *, sport: int = 40000,
    no_forwarding: str | None = None,
) -> bool:
    """New flow out (3 probes, rewritten to `public_ip`), the reply back (3 probes, rewritten
    to the inside address and port), then the established flow keeps its mapping.
    `no_forwarding`: the diagnosis when the flow is lost and ip_forward is 0 on the gateway,
    in the caller's terms (None: nat's)."""
    if parse_port(inside.port)[2]:  # the VM answers no ARP: teach the gateway its MAC
        frame, _ = arp(inside.mac, inside.ip, inside.gw_ip).probe()
        ports(ctx.topo).sender(inside.port).send(frame)
    probe = udp(inside.mac, inside.gw_mac, inside.ip, outside.ip, sport=sport)
    keys = masquerade_steps(inside.port)
    out = ctx.expect(
        f"{inside.port} → {outside.ip}: new flow leaves with source {public_ip}", probe,
        inside.port, at(outside.port), match=ROUTED.rewriting(src=public_ip).masking("sport"),
        count=3, timeout=0.5, key=keys[0])
    if not out.passed:
        return _diagnose_out(ctx, inside, outside, public_ip, out, no_forwarding)
    seen = decode(out.reports[outside.port].copies[0].frame.data)
    nat_port = int(seen["l4.sport"])  # masquerade keeps the port unless it is taken
    reply = udp(outside.mac, seen["eth.src"], outside.ip, public_ip, sport=9, dport=nat_port)
    back = ctx.expect(
        f"reply {outside.ip} → {public_ip}:{nat_port}: back to {inside.ip}:{sport}", reply,
        outside.port, at(inside.port), match=ROUTED.rewriting(dst=inside.ip, dport=sport),
        count=3, timeout=0.5, key=keys[1])
    if not back.passed:
        return _diagnose_back(ctx, inside, public_ip, nat_port, back)
    again = ctx.expect(
        f"{inside.port} → {outside.ip}: established flow keeps {public_ip}:{nat_port}", probe,
        inside.port, at(outside.port), match=ROUTED.rewriting(src=public_ip, sport=nat_port),
        timeout=0.5, key=keys[2])
    if not again.passed:
        ctx.diagnose(f"{inside.gw_host} lost the mapping of {inside.ip}:{sport} once the flow "
                     f"was established (see the diff: source address or port changed)")
    return again.passed


def _diagnose_out(
    ctx: Context, inside: Endpoint, outside: Endpoint, public_ip: str, out: Outcome,
    no_forwarding: str | None,
) -> bool:
    gw = inside.gw_host
    copies = out.reports[outside.port].copies
    src = decode(copies[0].frame.data).get("ip.src") if copies else None
    egress = _route(ctx, gw, outside.ip).dev or "?"
    if ctx.topo.sysctl(gw, "net.ipv4.ip_forward") == "0":
        ctx.diagnose(no_forwarding or _NO_FORWARDING.format(gw=gw))
    elif src is None:
        ctx.diagnose(f"{gw} does not forward {inside.net} → {outside.ip} out of {egress} "
                     "(a FORWARD rule drops it, or a route is missing)")
    elif src not in (inside.ip, public_ip):
        ctx.diagnose(f"{gw} rewrites the source of {inside.net} to {src}, not {public_ip}")
    elif src == inside.ip:
        ctx.diagnose(_snat_fault(nat_rules(ctx, gw), inside.net, egress, outside.ip, gw))
    else:
        ctx.diagnose(f"{inside.ip} → {outside.ip} is rewritten to {public_ip}, but not every "
                     "probe of the flow arrived (see the evidence)")
    return False


def _snat_fault(
    rules: list[dict[str, Any]], net: ipaddress.IPv4Network, egress: str, dst: str, gw: str
) -> str:
    """Why traffic from `net` out of `egress` kept its source, read from the ruleset."""
    covering = [r for r in rules if _action(r) in ("masquerade", "snat") and _covers(r, net)]
    if not covering:
        return f"no masquerade/SNAT rule for {net} out of {egress} on {gw}"
    named = [(op, str(v)) for r in covering for w, op, v in _conds(r) if w == "oifname"]
    if len(named) == len(covering) and not any(_oifname_matches(*c, egress) for c in named):
        shown = ", ".join(f'oifname {"!= " if op == "!=" else ""}"{name}"' for op, name in named)
        return (f"the masquerade/SNAT rule for {net} on {gw} matches {shown}, but traffic to "
                f"{dst} leaves through {egress}: the rule never applies")
    return (f"a masquerade/SNAT rule for {net} out of {egress} exists on {gw}, yet the source "
            "was not rewritten (a conntrack entry older than the rule, or an unreached chain)")


def _diagnose_back(ctx: Context, inside: Endpoint, public_ip: str, port: int, out: Outcome) -> bool:
    gw = inside.gw_host
    if out.reports[inside.port].copies:
        ctx.diagnose(f"replies to {public_ip}:{port} reach {inside.port} but are not translated "
                     f"back to {inside.ip} (see the diff)")
    else:
        ctx.diagnose(f"{gw} does not deliver replies to {public_ip}:{port} back to "
                     f"{inside.port} (a FORWARD rule drops them, or {gw} cannot resolve "
                     f"{inside.ip})")
    return False


def port_forward(
    ctx: Context, outside: Endpoint, public_ip: str, inside: Endpoint, published: int,
    target: int, proto: str = "tcp",
) -> bool:
    """A probe to `public_ip:published` from outside lands on `inside` at port `target`."""
    build = tcp if proto == "tcp" else udp
    probe = build(outside.mac, outside.gw_mac, outside.ip, public_ip, sport=41000, dport=published)
    out = ctx.expect(
        f"{outside.ip} → {public_ip}:{published}/{proto}: forwarded to {inside.ip}:{target}",
        probe, outside.port, at(inside.port), match=ROUTED.rewriting(dst=inside.ip, dport=target),
        timeout=0.5, key=forward_step(proto, published))
    if not out.passed:
        ctx.diagnose(_dnat_fault(ctx, outside.gw_host, public_ip, inside, published, target, proto))
    return out.passed


def _dnat_fault(
    ctx: Context, gw: str, public_ip: str, inside: Endpoint, published: int, target: int,
    proto: str,
) -> str:
    where, want = f"{proto} dport {published}", f"{inside.ip}:{target}"
    rules = nat_rules(ctx, gw)
    dnat = [r for r in rules if _action(r) == "dnat" and _dport(r) in (published, None)]
    targets = sorted(t for t in (_dnat_target(r, published) for r in dnat) if t is not None)
    if ctx.topo.sysctl(gw, "net.ipv4.ip_forward") == "0":
        return _NO_FORWARDING.format(gw=gw)
    if not dnat:
        return f"no DNAT rule for {where} on {gw}: nothing sends {public_ip}:{published} to {want}"
    if targets and (inside.ip, target) not in targets:
        shown = ", ".join(f"{a}:{p}" for a, p in targets)
        return f"the DNAT rule for {where} on {gw} sends it to {shown}, not {want}"
    return (f"{gw} translates {where} but never delivers it to {inside.port}: its FORWARD "
            f"chain drops it (it must accept {inside.ip} {proto}/{target})")


# -- reading the ruleset (`nft -j list ruleset`: iptables-nft rules appear there too) --------


def nat_rules(ctx: Context, host: str) -> list[dict[str, Any]]:
    """Every rule of `host`'s nft ruleset, as `nft -j` gives it (none when nft fails)."""
    out = ctx.topo.run(host, ["nft", "-j", "list", "ruleset"])
    items = json.loads(out.stdout).get("nftables", []) if out.ok and out.stdout else []
    return [item["rule"] for item in items if "rule" in item]


def _action(rule: dict[str, Any]) -> str | None:
    """masquerade, snat or dnat: native, or iptables-nft's xt target (whose arguments the
    JSON does not show)."""
    for expr in rule.get("expr", []):
        found = [key for key in ("masquerade", "snat", "dnat") if key in expr]
        if found:
            return found[0]
        if expr.get("xt", {}).get("type") == "target":
            return str(expr["xt"].get("name", "")).lower()
    return None


def _conds(rule: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(what, op, value) of each match; what: oifname, iifname, saddr, daddr, dport…"""
    out = []
    for expr in rule.get("expr", []):
        left = expr.get("match", {}).get("left")
        if isinstance(left, dict):
            what = left.get("meta", {}).get("key") or left.get("payload", {}).get("field")
            out.append((str(what), str(expr["match"].get("op", "==")), expr["match"]["right"]))
    return out


def _oifname_matches(op: str, name: str, ifname: str) -> bool:
    same = name == ifname or (name.endswith("*") and ifname.startswith(name[:-1]))
    return same if op == "==" else not same


def _covers(rule: dict[str, Any], net: ipaddress.IPv4Network) -> bool:
    """Does the rule's `ip saddr` condition (if any) take in all of `net`?"""
    for what, op, value in _conds(rule):
        if what == "saddr" and isinstance(value, (dict, str)):
            prefix = value.get("prefix") if isinstance(value, dict) else {"addr": value, "len": 32}
            if prefix is None:
                continue  # a set or a range: assume it covers
            rule_net = ipaddress.ip_network(f"{prefix['addr']}/{prefix['len']}")
            inside = isinstance(rule_net, ipaddress.IPv4Network) and net.subnet_of(rule_net)
            if inside != (op == "=="):
                return False
    return True


def _dport(rule: dict[str, Any]) -> int | None:
    found = [v for what, op, v in _conds(rule) if what == "dport" and isinstance(v, int)]
    return found[0] if found else None


def _dnat_target(rule: dict[str, Any], dport: int) -> tuple[str, int] | None:
    """(address, port) a native dnat sends `dport` to; None for iptables' DNAT (opaque)."""
    for expr in rule.get("expr", []):
        if isinstance(expr.get("dnat"), dict) and "addr" in expr["dnat"]:
            return str(expr["dnat"]["addr"]), int(expr["dnat"].get("port", dport))
    return None


FORWARD = "[tcp/|udp/]PORT->HOST:IFNAME:PORT, ports 1 to 65535"


def parse_forward(spec: str) -> tuple[str, int, str, int]:
    """"[tcp/]8080->c1:eth0:80" → ("tcp", 8080, "c1:eth0", 80)."""
    try:
        left, right = spec.split("->")
        proto, _, published = left.rpartition("/")
        port, _, target = right.rpartition(":")
        numbers = int(published), int(target)
        if proto not in ("", "tcp", "udp") or not all(0 < n < 65536 for n in numbers):
            raise ValueError(spec)
        param.port()(port)
        return proto or "tcp", numbers[0], port, numbers[1]
    except ValueError:
        raise SpecError(f"forward is {FORWARD}, not {spec!r}") from None


def body(
    ctx: Context, *, inside: str = "vm1:eth0", vm: str | None = "pve:tap100i0@vm",
    vm_ip: str = "10.10.10.100", outside: str = "internet:eth0",
    public_ip: str = "203.0.113.10", forward: str | None = "tcp/2222->vm1:eth0:22",
) -> None:
    """Masquerade (out, reply, established) for `inside` and the TAP VM `vm`, and the
    published port `forward` names (give forward="" when there is none)."""
    published = parse_forward(forward) if forward else None
    ctx.plan(*masquerade_steps(inside), *(masquerade_steps(vm) if vm else []),
             *([forward_step(*published[:2])] if published else []))
    out = endpoint(ctx, outside, public_ip)
    masquerade(ctx, endpoint(ctx, inside, out.ip), out, public_ip)
    if vm:
        masquerade(ctx, endpoint(ctx, vm, out.ip, ip=vm_ip), out, public_ip, sport=40001)
    if published:
        proto, number, port, target = published
        port_forward(ctx, out, public_ip, endpoint(ctx, port, out.ip), number, target, proto)


CHECK = Check(
    name="nat",
    summary="masquerade out and back for guests, an established flow, and a published port",
    body=body,
    reference="nat-gateway.yaml",
    requires=("veth", "bridge", "tap", "nftables", "AF_PACKET", "nft"),
    params={
        "inside": Param("a guest on the private side, HOST:IFNAME", param.port()),
        "vm": Param(
            'the VM side of a TAP, HOST:TAP@vm ("" for none)',
            param.optional(param.port(vm=True)),
        ),
        "vm_ip": Param("the IPv4 address the TAP VM uses", param.ip(4)),
        "outside": Param("the outside host, HOST:IFNAME", param.port()),
        "public_ip": Param(
            "the gateway's public address (what masquerade must rewrite to)",
            param.ip(4),
        ),
        "forward": Param(
            "a published port to test, [tcp/]PORT->HOST:IFNAME:PORT (\"\": none)",
            param.optional(param.checked_by(parse_forward, FORWARD)),
        ),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
