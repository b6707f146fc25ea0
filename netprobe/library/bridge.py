"""bridge: hosts on a Linux bridge reach each other.

Between every two host ports: an L2 unicast frame gets through, a broadcast floods to
every other host, an ARP request for the other host's address arrives and is answered,
and an ICMP echo is answered. When something fails, the bridge's state is read back to
name the fault: a port not enslaved to the bridge (the forgotten `master br0`), a port or
the bridge down, a port STP keeps blocked, or the bridge host's netfilter (bridged IPv4
traverses its FORWARD hook while bridge-nf-call-iptables is 1, the default here).

The helpers below (`port_list`, `require_bridge`, `peer_port`, `ipv4_of`, `echo_reply`,
`port_faults`) are public: other checks (isolation) build on them. All but `port_faults`
are netprobe.check's port helpers (`parse_ports`, `peer_port`, `ipv4_of`, `require_bridge`,
`echo_and_reply`) in their older, text-valued form.
"""

from __future__ import annotations

import json
import time

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
from netprobe.topology import Topology
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
    """The other end of the veth at `port`, from the topology's spec (None: not a veth);
    `netprobe.check.peer_port`, as text."""
    found = _peer(topo, port)
    return None if found is None else str(found)


def echo_reply(topo: Topology, src: str | Port, dst: str | Port, src_ip: str, dst_ip: str
               ) -> tuple[Template, Match]:
    """An ICMP echo request from `src` to `dst`, and what its reply looks like at `src`
    (`netprobe.check.echo_and_reply` between the two ports' MACs)."""
    return echo_and_reply(topo.mac(src), topo.mac(dst), src_ip, dst_ip)


def port_faults(ctx: Context, bridge: str | Port, port: str | Port) -> list[str]:
    """What keeps host port `port` off `bridge` ("HOST:BRIDGE"): either end of its veth
    missing or down, the bridge-side end not enslaved to the bridge, or blocked by STP."""
    bridge, port = Port.parse(bridge), Port.parse(port)
    near = ctx.link(port)
    if near is None:
        return [f"{port} does not exist"]
    faults = [f"{port} is down"] if "UP" not in near["flags"] else []
    peer = _peer(ctx.topo, port)
    if peer is None or peer.host != bridge.host:
        return faults  # not a veth into the bridge's host: nothing more to read here
    far = ctx.link(peer)
    if far is None:
        return [*faults, f"{peer} does not exist"]
    name = bridge.ifname
    master = far.get("master")
    if master != name:
        why = "it has no master" if master is None else f"its master is {master}"
        faults.append(f"{peer} is not enslaved to {name}: {why} (`ip link set "
                      f"{peer.ifname} master {name}` in {bridge.host})")
    if "UP" not in far["flags"]:
        faults.append(f"{peer} is down")
    else:
        state = far.get("linkinfo", {}).get("info_slave_data", {}).get("state")
        if master == name and state in ("blocking", "listening", "learning"):
            faults.append(f"{peer} is in STP state {state}: it forwards nothing")
    return faults


def body(ctx: Context, *, bridge: str = "switch:br0", hosts: str = "red:eth0,blue:eth0") -> None:
    """Probe every ordered pair of `hosts` across `bridge`, then name what broke."""
    names = parse_ports(ctx.topo, hosts, at_least=2)
    switch = require_bridge(ctx, bridge)
    unanswered: list[tuple[Port, str]] = []
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


def _pair(ctx: Context, src: Port, dst: Port) -> list[tuple[Port, str]]:
    """L2 unicast, ARP and ping from `src` to `dst`; returns [(dst, its IP)] if unanswered."""
    src_mac, dst_mac = ctx.topo.mac(src), ctx.topo.mac(dst)
    l2 = ctx.expect(f"L2 unicast {src} → {dst}", ethernet(src_mac, dst_mac), src, at(dst),
                    timeout=_TIMEOUT)
    src_ip, dst_ip = ipv4_of(ctx.topo, src), ipv4_of(ctx.topo, dst)
    if not l2.passed or src_ip is None or dst_ip is None:
        why = "no L2 path" if not l2.passed else f"{src if src_ip is None else dst} has no IPv4"
        ctx.skip(f"ARP and ping {src} → {dst}", why)
        return []
    answered = _arp_answered(ctx, src, dst, src_ip, dst_ip)
    request, reply = echo_and_reply(src_mac, dst_mac, src_ip, dst_ip)
    ping = ctx.expect(f"ping {src} → {dst} ({dst_ip}) answered", request, src, at(src),
                      match=reply, timeout=_TIMEOUT)
    return [] if answered and ping.passed else [(dst, dst_ip)]


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
              unanswered: list[tuple[Port, str]]) -> None:
    link = ctx.link(bridge)
    faults = [f"{bridge} is down"] if link is None or "UP" not in link["flags"] else []
    faults += [fault for port in names for fault in port_faults(ctx, bridge, port)]
    faults = (faults or _netfilter(ctx, bridge.host) or _addresses(ctx, unanswered)
              or _silent(ctx))
    for fault in faults:
        ctx.diagnose(fault)


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


def _addresses(ctx: Context, unanswered: list[tuple[Port, str]]) -> list[str]:
    """A host that receives ARP and ping but does not answer: does it hold the address?"""
    faults = []
    for port, ip in dict.fromkeys(unanswered):
        argv = ["ip", "-4", "-o", "addr", "show", "dev", port.ifname]
        shown = ctx.topo.run(port.host, argv).stdout
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
