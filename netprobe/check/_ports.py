"""What check bodies ask about ports: the ports a parameter names, the far end of a veth,
a port's IPv4 address, a bridge that must be one, and an echo request with the reply it
must draw. Ports come back as `Port`s; each helper takes a Port or its text."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import SpecError
from ..expect import Match
from ..topology import Port, Topology
from ..traffic import Template, icmp_echo
from ._base import Context


def parse_ports(
    topo: Topology, value: str | Iterable[str | Port], *, at_least: int = 1, vm: bool = False
) -> list[Port]:
    """ "h1:eth0,h2:eth0" (a CLI parameter is one string) or a sequence of ports → Ports,
    each an interface of `topo`; with `vm`, a TAP's VM side (HOST:TAP@vm) may be one.
    Fewer than `at_least`, bad text or an unknown port is a SpecError."""
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        found = [Port.parse(p) for p in items if str(p).strip()]
    except SpecError:
        found = []
    if len(found) < at_least or (not vm and any(p.vm for p in found)):
        raise SpecError(f"expected at least {at_least} ports HOST:IFNAME, comma-separated, "
                        f"not {value!r}")
    for port in found:
        try:
            topo.tap(port) if port.vm else topo.mac(port)
        except KeyError as exc:  # NotFound is a KeyError too
            raise SpecError(f"unknown port {port}: {exc.args[0]}") from None
    return found


def peer_port(topo: Topology, port: str | Port) -> Port | None:
    """The other end of the veth at `port`, as the kernel pairs them (None: not a veth,
    or its far end is in no host of the topology)."""
    return topo.peer(port)


def ipv4_of(topo: Topology, port: str | Port) -> str | None:
    """The IPv4 address `port` is meant to have: the first the spec gives it (netprobe
    added it, and a check proves the kernel still holds it), else the first the kernel
    says it holds (an adopted interface). None: neither says one."""
    port = Port.parse(port)
    declared = topo.spec.host(port.host).interface(port.ifname)
    given = [a for a in (declared.addresses if declared else ()) if a.version == 4]
    if given:
        return str(given[0].ip)
    iface = topo.live(port.host).interface(port.ifname)
    return str(iface.ipv4[0].ip) if iface and iface.ipv4 else None


def require_bridge(ctx: Context, bridge: str | Port) -> Port:
    """`bridge` ("HOST:BRIDGE") as a Port, once the kernel says it is a bridge. A bridge
    named wrongly is bad input, not a finding: hosts that reach each other through
    something else must not PASS as a test of this bridge."""
    try:
        found: Port | None = Port.parse(bridge)
    except SpecError:
        found = None
    link = ctx.link(found) if found and found.host in ctx.topo.hosts and not found.vm else None
    kind = (link or {}).get("linkinfo", {}).get("info_kind")
    if found is None or kind != "bridge":
        what = "no such interface" if link is None else f"a {kind or 'plain'} link"
        raise SpecError(f"bridge must be HOST:BRIDGE of this topology; {str(bridge)!r} is {what}")
    return found


def echo_and_reply(
    src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, *, routed: bool = False
) -> tuple[Template, Match]:
    """An ICMP (or ICMPv6) echo request from `src_mac` to `dst_mac` (the host asked, or
    the router on the way to it), and the `Match` its reply must meet back at the sender.

    The reply swaps the MACs and the addresses and is an echo reply (type 0, or 129 for
    ICMPv6); it keeps the payload, and so the nonce. Masked: the IP id and the TTL (the
    replier's kernel picks its own), and with them the checksums. `routed`: the reply
    crossed routers, so its MACs are whatever the last hop's are, masked as well.
    """
    request = icmp_echo(src_mac, dst_mac, src_ip, dst_ip)
    reply_type = 129 if ":" in dst_ip else 0
    rewrites: dict[str, object] = {"src": dst_ip, "dst": src_ip, "icmp.type": reply_type}
    mask = {"ip.id", "ttl"}
    if routed:
        mask |= {"eth.src", "eth.dst"}
    else:
        rewrites |= {"eth.src": dst_mac, "eth.dst": src_mac}
    return request, Match(mask, rewrites)
