"""bridge: hosts on a Linux bridge reach each other.

Between every two host ports: an L2 unicast frame gets through, a broadcast floods to
every other host, an ARP request for the other host's address arrives and is answered,
and an ICMP echo is answered. Addresses, ports, peers and neighbours are read from the
kernel, so the check is as strong on namespaces it adopted as on those it built. When
something fails, the bridge's state is read back to name the fault: a port not enslaved
to the bridge (the forgotten `master br0`), a port or the bridge down, a port not
forwarding (its STP state), a host whose neighbour entry for its peer names a wrong MAC,
a host without an IPv4 address, or the bridge host's netfilter (bridged IPv4 traverses
its FORWARD hook while bridge-nf-call-iptables is 1).

The helpers below (`port_list`, `require_bridge`, `peer_port`, `ipv4_of`, `echo_reply`,
`port_faults`) are public: other checks (isolation) build on them. All but `port_faults`
are netprobe.check's port helpers (`parse_ports`, `peer_port`, `ipv4_of`, `require_bridge`,
`echo_and_reply`) in their older, text-valued form.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from ipaddress import IPv4Interface

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
    require_bridge,
)
from netprobe.check import peer_port as _peer
from netprobe.errors import SetupError
from netprobe.expect import Match, at, at_exactly
from netprobe.topology import LiveInterface, Topology
from netprobe.traffic import Template, arp, decode, ethernet, ports

__all__ = [
    "CHECK", "echo_reply", "ipv4_of", "peer_port", "port_faults", "port_list", "require_bridge",
    "run",
]

def port_list(topo: Topology, text: str, *, at_least: int = 2) -> list[str]:
    """ "h1:eth0,h2:eth0" → ["h1:eth0", "h2:eth0"] (a CLI parameter is one string), each
    checked to be an interface of `topo` (`netprobe.check.parse_ports`, as text)."""
    return [str(p) for p in parse_ports(topo, text, at_least=at_least)]


def peer_port(topo: Topology, port: str | Port) -> str | None:
    """The other end of the veth at `port`, as the kernel pairs them (None: not a veth,
    or its far end is in no host of the topology); `netprobe.check.peer_port`, as text."""
    found = _peer(topo, port)
    return None if found is None else str(found)


def echo_reply(topo: Topology, src: str | Port, dst: str | Port, src_ip: str, dst_ip: str
               ) -> tuple[Template, Match]:
    """An ICMP echo request from `src` to `dst`, and what its reply looks like at `src`
    (`netprobe.check.echo_and_reply` between the two ports' MACs)."""
    return echo_and_reply(topo.mac(src), topo.mac(dst), src_ip, dst_ip)


def port_faults(ctx: Context, bridge: str | Port, port: str | Port) -> list[str]:
    """What keeps host port `port` off `bridge` ("HOST:BRIDGE"), as the kernel has them
    now: either end of its veth missing or down, the bridge-side end not enslaved to the
    bridge, or not forwarding (its STP state)."""
    bridge, port = Port.parse(bridge), Port.parse(port)
    near = ctx.topo.live(port.host).interface(port.ifname)
    if near is None:
        return [f"{port} does not exist"]
    faults = [] if near.up else [f"{port} is down"]
    peer = _peer(ctx.topo, port)
    if peer is None and near.kind == "veth":
        return [*faults, f"the far end of {port} is in no host of this topology: its bridge "
                         f"port cannot be read (adopt that namespace as a host)"]
    if peer is None or peer.host != bridge.host:
        return faults  # not a veth into the bridge's host: nothing more to read here
    far = ctx.topo.live(peer.host).interface(peer.ifname)
    if far is None:
        return [*faults, f"{peer} does not exist"]
    return faults + _bridge_port_faults(ctx, bridge, peer, far)


def _bridge_port_faults(ctx: Context, bridge: Port, port: Port, iface: LiveInterface
                        ) -> list[str]:
    """What keeps `iface` (at `port`, in the bridge's host) from forwarding for `bridge`."""
    name, host = bridge.ifname, bridge.host
    if iface.master != name:
        why = "it has no master" if iface.master is None else f"its master is {iface.master}"
        return [f"{port} is not enslaved to {name}: {why} (`ip link set {port.ifname} "
                f"master {name}` in {host})"]
    if not iface.up:
        return [f"{port} is down"]
    state = iface.port_state
    if state in (None, "forwarding"):
        return []
    bridge_up = (found := ctx.topo.live(host).interface(name)) is not None and found.up
    if state == "disabled" and not (iface.carrier and bridge_up):
        return []  # what takes its carrier (a link down) is named on its own
    fix = (f"`bridge link set dev {port.ifname} state 3` in {host}"
           if not _stp_on(ctx, bridge) else
           f"STP on {name} keeps it {state}: a loop it breaks, or forward delay not yet over")
    return [f"{port} is in STP state {state}: it forwards nothing ({fix})"]


def _stp_on(ctx: Context, bridge: Port) -> bool:
    link = ctx.link(bridge) or {}
    return bool(link.get("linkinfo", {}).get("info_data", {}).get("stp_state", 0))


def body(ctx: Context, *, bridge: str = "switch:br0", hosts: str = "red:eth0,blue:eth0") -> None:
    """Probe every ordered pair of `hosts` across `bridge`, then name what broke."""
    names = parse_ports(ctx.topo, hosts, at_least=2)
    switch = require_bridge(ctx, bridge)
    unanswered: list[_Unanswered] = []
    for src in names:
        others = [p for p in names if p != src]
        mac = ctx.topo.mac(src)
        ctx.expect(f"broadcast from {src} floods to {', '.join(map(str, others))}",
                   ethernet(mac, "ff:ff:ff:ff:ff:ff"), src, at_exactly(others, among=names),
                   timeout=_TIMEOUT)
        for dst in others:
            unanswered += _pair(ctx, src, dst)
    if any(s.status in _BAD for s in ctx.steps):
        _diagnose(ctx, switch, names, unanswered)


_BAD = (Status.FAIL, Status.INCONCLUSIVE)
_TIMEOUT = 0.5  # seconds for what must arrive: a bridge delivers in well under 1 ms


@dataclass(frozen=True)
class _Unanswered:
    """ARP or ping from `src` (holding `src_ip`) to `dst` at `dst_ip` went unanswered;
    an address None: that port holds no IPv4 address at all."""

    src: Port
    dst: Port
    src_ip: str | None
    dst_ip: str | None


def _pair(ctx: Context, src: Port, dst: Port) -> list[_Unanswered]:
    """L2 unicast, ARP and ping from `src` to `dst`; what went unanswered, if anything."""
    src_mac, dst_mac = ctx.topo.mac(src), ctx.topo.mac(dst)
    l2 = ctx.expect(f"L2 unicast {src} → {dst}", ethernet(src_mac, dst_mac), src, at(dst),
                    timeout=_TIMEOUT)
    src_ip, dst_ip = _addresses_of(ctx, src, dst)
    if not l2.passed or (src_ip is None and dst_ip is None):
        why = "no L2 path" if not l2.passed else "neither holds an IPv4 address: L2 only"
        ctx.skip(f"ARP and ping {src} → {dst}", why)
        return []
    if src_ip is None or dst_ip is None:  # one host has IPv4, the other none: no IP path
        bare, other, ip = (src, dst, dst_ip) if src_ip is None else (dst, src, src_ip)
        ctx.record(f"ARP and ping {src} → {dst}", False,
                   f"{bare} holds no IPv4 address ({other} holds {ip}): ARP and ping "
                   "have nothing to ask for or answer from")
        return [_Unanswered(src, dst, src_ip, dst_ip)]
    answered = _arp_answered(ctx, src, dst, src_ip, dst_ip)
    request, reply = echo_and_reply(src_mac, dst_mac, src_ip, dst_ip)
    ping = ctx.expect(f"ping {src} → {dst} ({dst_ip}) answered", request, src, at(src),
                      match=reply, timeout=_TIMEOUT)
    return [] if answered and ping.passed else [_Unanswered(src, dst, src_ip, dst_ip)]


def _addresses_of(ctx: Context, src: Port, dst: Port) -> tuple[str | None, str | None]:
    """The two ports' IPv4 addresses now, a pair on one subnet when there is one."""
    mine, theirs = (_ipv4(ctx, p) for p in (src, dst))
    for a in mine:
        for b in theirs:
            if b.ip in a.network:
                return str(a.ip), str(b.ip)
    first = ipv4_of(ctx.topo, src), ipv4_of(ctx.topo, dst)
    return first


def _ipv4(ctx: Context, port: Port) -> tuple[IPv4Interface, ...]:
    iface = ctx.topo.live(port.host).interface(port.ifname)
    return iface.ipv4 if iface is not None else ()


def _arp_answered(ctx: Context, src: Port, dst: Port, src_ip: str, dst_ip: str) -> bool:
    """ARP who-has dst_ip from src reaches dst, and dst's reply reaches src. A reply
    carries no nonce, so it is found in a capture of ARP replies at src instead."""
    src_mac, dst_mac = ctx.topo.mac(src), ctx.topo.mac(dst)
    replies = ports(ctx.topo).capture(src, filter=f"arp and arp[6:2] = 2 and ether src {dst_mac}")
    replies.drain()
    ctx.expect(f"ARP who-has {dst_ip} from {src} reaches {dst}", arp(src_mac, src_ip, dst_ip),
               src, at(dst), timeout=_TIMEOUT)
    name = f"ARP reply {dst_ip} is-at {dst_mac} reaches {src}"
    deadline = time.perf_counter() + _TIMEOUT
    while time.perf_counter() < deadline:
        for frame in replies.read():
            fields = decode(frame.data)
            if (fields.get("arp.spa"), fields.get("arp.tpa")) == (dst_ip, src_ip):
                return ctx.record(name, True, f"is-at {fields['arp.sha']}")
        time.sleep(0.001)  # polling a non-blocking capture; the reply is ~0.1 ms away
    return ctx.record(name, False, f"no ARP reply from {dst_mac} for {dst_ip} within "
                                   f"{_TIMEOUT} s")


def _diagnose(ctx: Context, bridge: Port, names: list[Port],
              unanswered: list[_Unanswered]) -> None:
    link = ctx.topo.live(bridge.host).interface(bridge.ifname)
    faults = [f"{bridge} is down"] if link is None or not link.up else []
    faults += [fault for port in names for fault in port_faults(ctx, bridge, port)]
    faults = (faults or _neighbours(ctx, unanswered) or _netfilter(ctx, bridge.host)
              or _addresses(ctx, unanswered) or _silent(ctx, bridge, names))
    for fault in faults:
        ctx.diagnose(fault)


def _neighbours(ctx: Context, unanswered: list[_Unanswered]) -> list[str]:
    """A host whose neighbour entry for the asker names a MAC the asker does not have:
    it answers, but to that MAC (a permanent entry is never corrected by ARP)."""
    faults = []
    for miss in unanswered:
        if miss.src_ip is None or miss.dst_ip is None:
            continue
        entry = ctx.topo.live(miss.dst.host).neighbour(miss.src_ip)
        mac = ctx.topo.mac(miss.src)
        if (entry is None or entry.mac is None or entry.mac == mac
                or entry.state in ("failed", "incomplete")):
            continue
        faults.append(
            f"{miss.dst.host} has a {entry.state} neighbour entry {miss.src_ip} lladdr "
            f"{entry.mac} dev {entry.dev}, but {miss.src} ({miss.src_ip}) is {mac}: its "
            f"replies go to a MAC nobody on the bridge has (`ip neigh del {miss.src_ip} "
            f"dev {entry.dev}` in {miss.dst.host})"
        )
    return list(dict.fromkeys(faults))


def _netfilter(ctx: Context, host: str) -> list[str]:
    """Chains on the forward hook of the bridge host: the bridge family's see every
    bridged frame; with bridge-nf-call-iptables=1 the ip/inet ones see bridged IPv4."""
    try:
        result = ctx.topo.run(host, ["nft", "-j", "list", "ruleset"])
    except SetupError:  # no nft here: nothing to read, and no reason to SKIP a finding
        return []
    items = json.loads(result.stdout or "{}").get("nftables", []) if result.ok else []
    bridge_nf = ctx.topo.sysctl(host, "net.bridge.bridge-nf-call-iptables") == "1"
    chains = [c["chain"] for c in items if c.get("chain", {}).get("hook") == "forward"]
    seen = [c for c in chains if c["family"] == "bridge" or bridge_nf]
    if not seen:
        return []
    names = ", ".join(f"{c['family']} {c['table']} {c['name']} (policy {c.get('policy', 'accept')})"
                      for c in seen)
    why = "; bridge-nf-call-iptables=1 sends bridged IPv4 through it" if bridge_nf else ""
    return [f"{host} filters bridged frames on its forward hook: {names}{why}"]


def _addresses(ctx: Context, unanswered: list[_Unanswered]) -> list[str]:
    """A host that receives ARP and ping but does not answer: does it hold the address?"""
    faults = []
    for miss in unanswered:
        if miss.src_ip is None or miss.dst_ip is None:
            bare, other, ip = ((miss.src, miss.dst, miss.dst_ip) if miss.src_ip is None
                               else (miss.dst, miss.src, miss.src_ip))
            faults.append(f"{bare} holds no IPv4 address: nothing there answers ARP or ping "
                          f"from {other} ({ip}), nor asks (`ip addr add ADDRESS dev "
                          f"{bare.ifname}` in {bare.host})")
            continue
        iface = ctx.topo.live(miss.dst.host).interface(miss.dst.ifname)
        held = iface is not None and any(str(a.ip) == miss.dst_ip for a in iface.addresses)
        if not held:
            faults.append(f"{miss.dst} does not hold {miss.dst_ip}: nothing there answers ARP "
                          "or ping for it")
        else:
            faults.append(f"{miss.dst} holds {miss.dst_ip} and receives ARP and ping but does "
                          "not answer: look at its firewall and its arp_ignore/arp_filter "
                          "sysctls")
    return list(dict.fromkeys(faults))


def _silent(ctx: Context, bridge: Port, names: list[Port]) -> list[str]:
    """Nothing wrong was found in what could be read: say exactly what that was."""
    failed = [s for s in ctx.steps if s.status in _BAD]
    read = [p for p in names if (far := _peer(ctx.topo, p)) is not None
            and far.host == bridge.host]
    what = (f"the bridge ports behind {', '.join(map(str, read))} are enslaved to "
            f"{bridge.ifname}, up and forwarding" if read else
            f"no bridge port behind {', '.join(map(str, names))} could be read")
    return [f"{what}, yet {s.name} failed: {s.detail}" for s in failed[:1]]


CHECK = Check(
    name="bridge",
    summary="hosts on a Linux bridge reach each other (L2, broadcast, ARP, ping)",
    body=body,
    reference="redblue.yaml",
    requires=("veth", "bridge", "AF_PACKET", "ip", "tcpdump"),
    params={
        "bridge": Param("the bridge, HOST:BRIDGE", param.port()),
        "hosts": Param(
            "the hosts' ports on it, HOST:IFNAME,HOST:IFNAME,...",
            param.port_list(minimum=2),
        ),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
