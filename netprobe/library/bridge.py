"""bridge: hosts on a Linux bridge reach each other.

Between every two host ports: an L2 unicast frame gets through, a broadcast floods to
every other host, an ARP request for the other host's address arrives and is answered,
and an ICMP echo is answered. When something fails, the bridge's state is read back to
name the fault: a port not enslaved to the bridge (the forgotten `master br0`), a port or
the bridge down, a port STP keeps blocked, or the bridge host's netfilter (bridged IPv4
traverses its FORWARD hook while bridge-nf-call-iptables is 1, the default here).

The helpers below (`port_list`, `require_bridge`, `peer_port`, `ipv4_of`, `echo_reply`,
`port_faults`) are public: other checks (isolation) build on them.
"""

from __future__ import annotations

import json
import time

from netprobe.check import Check, Context, Param, Status, param
from netprobe.errors import SetupError, SpecError
from netprobe.expect import Match, at, at_exactly
from netprobe.topology import Topology, Veth
from netprobe.traffic import Template, arp, decode, ethernet, icmp_echo, ports

__all__ = [
    "CHECK", "echo_reply", "ipv4_of", "peer_port", "port_faults", "port_list", "require_bridge",
    "run",
]


def port_list(topo: Topology, text: str, *, at_least: int = 2) -> list[str]:
    """ "h1:eth0,h2:eth0" → ["h1:eth0", "h2:eth0"] (a CLI parameter is one string), each
    checked to be an interface of `topo`."""
    found = [p.strip() for p in text.split(",") if p.strip()]
    if len(found) < at_least or any(":" not in p for p in found):
        raise SpecError(f"expected at least {at_least} ports HOST:IFNAME, comma-separated, "
                        f"not {text!r}")
    for port in found:
        try:
            topo.mac(*_split(port))
        except KeyError as exc:
            raise SpecError(f"unknown port {port}: {exc.args[0]}") from None
    return found


def _split(port: str) -> tuple[str, str]:
    host, _, ifname = port.partition(":")
    return host, ifname


def peer_port(topo: Topology, port: str) -> str | None:
    """The other end of the veth at `port`, from the topology's spec (None: not a veth)."""
    host, ifname = _split(port)
    iface = topo.spec.host(host).interface(ifname)
    if iface is not None and isinstance(iface.kind, Veth):
        return iface.kind.peer
    for other in topo.spec.hosts:  # the veth may be declared at its other end
        for item in other.interfaces:
            if isinstance(item.kind, Veth) and item.kind.peer == port:
                return f"{other.name}:{item.name}"
    return None


def ipv4_of(topo: Topology, port: str) -> str | None:
    """The first IPv4 address the spec gives `port`."""
    host, ifname = _split(port)
    iface = topo.spec.host(host).interface(ifname)
    found = [a for a in (iface.addresses if iface else ()) if a.version == 4]
    return str(found[0].ip) if found else None


def echo_reply(topo: Topology, src: str, dst: str, src_ip: str, dst_ip: str) -> tuple[
        Template, Match]:
    """An ICMP echo request from `src` to `dst`, and what its reply looks like at `src`:
    addresses swapped, type 0, the payload (and so the nonce) echoed."""
    src_mac, dst_mac = topo.mac(*_split(src)), topo.mac(*_split(dst))
    request = icmp_echo(src_mac, dst_mac, src_ip, dst_ip)
    reply = Match(("ip.id", "ip.ttl"), {"eth.src": dst_mac, "eth.dst": src_mac,
                                        "ip.src": dst_ip, "ip.dst": src_ip, "icmp.type": 0})
    return request, reply


def port_faults(ctx: Context, bridge: str, port: str) -> list[str]:
    """What keeps host port `port` off `bridge` ("HOST:BRIDGE"): either end of its veth
    missing or down, the bridge-side end not enslaved to the bridge, or blocked by STP."""
    near = ctx.link(*_split(port))
    if near is None:
        return [f"{port} does not exist"]
    faults = [f"{port} is down"] if "UP" not in near["flags"] else []
    peer = peer_port(ctx.topo, port)
    if peer is None or _split(peer)[0] != _split(bridge)[0]:
        return faults  # not a veth into the bridge's host: nothing more to read here
    far = ctx.link(*_split(peer))
    if far is None:
        return [*faults, f"{peer} does not exist"]
    name = _split(bridge)[1]
    master = far.get("master")
    if master != name:
        why = "it has no master" if master is None else f"its master is {master}"
        faults.append(f"{peer} is not enslaved to {name}: {why} (`ip link set "
                      f"{_split(peer)[1]} master {name}` in {_split(bridge)[0]})")
    if "UP" not in far["flags"]:
        faults.append(f"{peer} is down")
    else:
        state = far.get("linkinfo", {}).get("info_slave_data", {}).get("state")
        if master == name and state in ("blocking", "listening", "learning"):
            faults.append(f"{peer} is in STP state {state}: it forwards nothing")
    return faults


def body(ctx: Context, *, bridge: str = "switch:br0", hosts: str = "red:eth0,blue:eth0") -> None:
    """Probe every ordered pair of `hosts` across `bridge`, then name what broke."""
    names = port_list(ctx.topo, hosts)
    require_bridge(ctx, bridge)
    unanswered: list[tuple[str, str]] = []
    for src in names:
        others = [p for p in names if p != src]
        mac = ctx.topo.mac(*_split(src))
        ctx.expect(f"broadcast from {src} floods to {', '.join(others)}",
                   ethernet(mac, "ff:ff:ff:ff:ff:ff"), src, at_exactly(others, among=names),
                   timeout=_TIMEOUT)
        for dst in others:
            unanswered += _pair(ctx, src, dst)
    if any(s.status in _BAD for s in ctx.steps):
        _diagnose(ctx, bridge, names, unanswered)


_BAD = (Status.FAIL, Status.INCONCLUSIVE)
_TIMEOUT = 0.5  # seconds for what must arrive: a bridge delivers in well under 1 ms


def _pair(ctx: Context, src: str, dst: str) -> list[tuple[str, str]]:
    """L2 unicast, ARP and ping from `src` to `dst`; returns [(dst, its IP)] if unanswered."""
    src_mac, dst_mac = ctx.topo.mac(*_split(src)), ctx.topo.mac(*_split(dst))
    l2 = ctx.expect(f"L2 unicast {src} → {dst}", ethernet(src_mac, dst_mac), src, at(dst),
                    timeout=_TIMEOUT)
    src_ip, dst_ip = ipv4_of(ctx.topo, src), ipv4_of(ctx.topo, dst)
    if not l2.passed or src_ip is None or dst_ip is None:
        why = "no L2 path" if not l2.passed else f"{src if src_ip is None else dst} has no IPv4"
        ctx.skip(f"ARP and ping {src} → {dst}", why)
        return []
    answered = _arp_answered(ctx, src, dst, src_ip, dst_ip)
    request, reply = echo_reply(ctx.topo, src, dst, src_ip, dst_ip)
    ping = ctx.expect(f"ping {src} → {dst} ({dst_ip}) answered", request, src, at(src),
                      match=reply, timeout=_TIMEOUT)
    return [] if answered and ping.passed else [(dst, dst_ip)]


def _arp_answered(ctx: Context, src: str, dst: str, src_ip: str, dst_ip: str) -> bool:
    """ARP who-has dst_ip from src reaches dst, and dst's reply reaches src. A reply
    carries no nonce, so it is found in a capture of ARP replies at src instead."""
    src_mac, dst_mac = ctx.topo.mac(*_split(src)), ctx.topo.mac(*_split(dst))
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


def _diagnose(ctx: Context, bridge: str, names: list[str],
              unanswered: list[tuple[str, str]]) -> None:
    link = ctx.link(*_split(bridge))
    faults = [f"{bridge} is down"] if link is None or "UP" not in link["flags"] else []
    faults += [fault for port in names for fault in port_faults(ctx, bridge, port)]
    host = _split(bridge)[0]
    faults = faults or _netfilter(ctx, host) or _addresses(ctx, unanswered) or _silent(ctx)
    for fault in faults:
        ctx.diagnose(fault)


def require_bridge(ctx: Context, bridge: str) -> None:
    """A bridge named wrongly is bad input, not a finding: hosts that reach each other
    through something else must not PASS as a test of this bridge."""
    host, _, name = bridge.partition(":")
    link = ctx.link(host, name) if host in ctx.topo.hosts else None
    kind = (link or {}).get("linkinfo", {}).get("info_kind")
    if kind != "bridge":
        what = "no such interface" if link is None else f"a {kind or 'plain'} link"
        raise SpecError(f"bridge must be HOST:BRIDGE of this topology; {bridge!r} is {what}")


def _netfilter(ctx: Context, host: str) -> list[str]:
    """Chains on the forward hook of the bridge host: the bridge family's see every
    bridged frame; with bridge-nf-call-iptables=1 the ip/inet ones see bridged IPv4."""
    try:
        result = ctx.topo.run(host, ["nft", "-j", "list", "ruleset"])
    except SetupError:  # no nft here: nothing to read, and no reason to SKIP a finding
        return []
    items = json.loads(result.stdout or "{}").get("nftables", []) if result.ok else []
    bridge_nf = ctx.sysctl(host, "net.bridge.bridge-nf-call-iptables") == "1"
    chains = [c["chain"] for c in items if c.get("chain", {}).get("hook") == "forward"]
    seen = [c for c in chains if c["family"] == "bridge" or bridge_nf]
    if not seen:
        return []
    names = ", ".join(f"{c['family']} {c['table']} {c['name']} (policy {c.get('policy', 'accept')})"
                      for c in seen)
    why = "; bridge-nf-call-iptables=1 sends bridged IPv4 through it" if bridge_nf else ""
    return [f"{host} filters bridged frames on its forward hook: {names}{why}"]


def _addresses(ctx: Context, unanswered: list[tuple[str, str]]) -> list[str]:
    """A host that receives ARP and ping but does not answer: does it hold the address?"""
    faults = []
    for port, ip in dict.fromkeys(unanswered):
        host, ifname = _split(port)
        shown = ctx.topo.run(host, ["ip", "-4", "-o", "addr", "show", "dev", ifname]).stdout
        if f" {ip}/" not in shown:
            faults.append(f"{port} does not hold {ip}: nothing there answers ARP or ping for it")
        else:
            faults.append(f"{port} holds {ip} and receives ARP and ping but does not answer: "
                          "look at its firewall and its arp_ignore/arp_filter sysctls")
    return faults


def _silent(ctx: Context) -> list[str]:
    failed = [s for s in ctx.steps if s.status in _BAD]
    return [f"the bridge's ports are all enslaved and up, yet {s.name} failed: {s.detail}"
            for s in failed[:1]]


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
