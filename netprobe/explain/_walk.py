"""The path a probe should take, walked through the live state before it is sent.

From the port the probe goes into, across veth peers and bridges to the device owning its
destination MAC, then from router to router by each one's own route lookup (the next
hop's MAC: the device holding the gateway's address), until a host holds the destination.
It needs no trace and no spec, so it also says which hosts of an adopted network are on
the way (whose counters and rulesets bear on the probe, and only theirs), which route each
router uses, where a router sends the probe back the way it came, and what the answer's
way back is. The walk is what the kernels' tables say now; the trace says what happened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..topology._kernel.state import LiveHost, LiveInterface, LiveRoute

Device = tuple[str, str]  # (host, kernel device name)
RouteOf = Callable[[str, str], LiveRoute | None]  # (host, dst) → the route it picks
MAX_HOPS = 16
_L2_KINDS = ("veth", "bridge")


@dataclass(frozen=True)
class Step:
    """One host the probe reaches: where it came in, what the host does with it."""

    host: str
    iif: str | None  # the device it arrives on (None: it starts here)
    action: str  # deliver, forward, no route, bounce, loop, lost (the MAC is nobody's)
    route: LiveRoute | None = None  # the route it forwards by
    via: str | None = None  # the next hop's address (the gateway, or the destination)
    crossed: tuple[Device, ...] = ()  # the devices it crosses to get here (veth ends, ports)

    def describe(self) -> str:
        """This step in a few words, e.g. "r: forward by `default via … dev eth1`"."""
        where = f"{self.host}:{self.iif}" if self.iif else self.host
        return f"{where}: {self.action}" + (f" by `{self.route}`" if self.route else "")

    @property
    def oif(self) -> str | None:
        """The device the route sends it out of (None: it is not forwarded)."""
        return self.route.dev if self.route is not None else None


@dataclass(frozen=True)
class Network:
    """The live state the walk reads: each host's interfaces and routes, veth pairs."""

    hosts: Mapping[str, LiveHost]
    peers: Mapping[Device, Device]
    route: RouteOf

    def link(self, host: str, dev: str) -> LiveInterface | None:
        """The interface `dev` of `host` (None: unknown)."""
        live = self.hosts.get(host)
        return live.interface(dev) if live is not None else None

    def holder(self, ip: str) -> Device | None:
        """The device holding address `ip` (None: no host of the network holds it)."""
        for name, live in self.hosts.items():
            found = live.holder(ip)
            if found is not None and found.kind != "loopback":
                return name, found.name
        return None

    def mac_of(self, ip: str) -> str | None:
        """The MAC of the device holding `ip` (None: nobody holds it)."""
        held = self.holder(ip)
        link = self.link(*held) if held is not None else None
        return link.mac.lower() if link is not None else None


def walk(net: Network, start: Device, dst: str, mac: str | None) -> tuple[Step, ...]:
    """The hosts a frame for `dst` (to `mac`) sent into `start` reaches, in order.

    `start` is the sender's end: the frame leaves by it, so the walk begins at its peer.
    """
    steps: list[Step] = []
    seen: set[tuple[str, str | None]] = set()
    out: Device | None = start
    for _ in range(MAX_HOPS):
        if out is None:
            break
        arrived, crossed = _l2(net, out, mac)
        if arrived is None:  # said where the frame was last: nobody there has its MAC
            steps.append(Step(crossed[-1][0], crossed[-1][1], "lost", crossed=crossed))
            break
        step = _l3(net, arrived, dst, crossed, seen)
        steps.append(step)
        seen.add((step.host, step.oif))
        if step.action != "forward" or step.route is None:
            break
        mac = net.mac_of(step.via or dst)
        out = (step.host, step.route.dev or "")
    return tuple(steps)


def walk_from(net: Network, host: str, dst: str) -> tuple[Step, ...]:
    """The way an answer from `host` to `dst` would go, by `host`'s own routes first."""
    route = net.route(host, dst)
    if route is None or not route.dev or route.type != "unicast":
        return (Step(host, None, "no route"),)
    via = route.gateway or dst
    first = Step(host, None, "forward", route, via)
    return (first, *walk(net, (host, route.dev), dst, net.mac_of(via)))


def _l2(net: Network, out: Device, mac: str | None) -> tuple[Device | None, tuple[Device, ...]]:
    """Where a frame sent out of `out` reaches a stack: (host, device) owning `mac`, or
    None (no such MAC on the way), and the devices crossed."""
    crossed: list[Device] = [out]
    link = net.link(*out)
    if link is not None and link.kind == "bridge":  # sent out of each of its ports
        crossed += [(out[0], p.name) for p in net.hosts[out[0]].ports_of(out[1])]
    queue: list[Device] = _out_of(net, out)
    visited = set(queue)
    while queue:
        here = queue.pop(0)
        crossed.append(here)
        link = net.link(*here)
        if link is None:
            continue
        if link.master is not None:
            bridge = net.link(here[0], link.master)
            ports = net.hosts[here[0]].ports_of(link.master)
            if mac is None or (bridge is not None and bridge.mac.lower() == mac) or any(
                p.mac.lower() == mac for p in ports
            ):
                return (here[0], link.master), tuple(crossed)
            for port in ports:
                if port.name != link.name:
                    far = net.peers.get((here[0], port.name))
                    if far is not None and far not in visited:
                        visited.add(far)
                        crossed.append((here[0], port.name))
                        queue.append(far)
            continue
        if mac is None or link.mac.lower() == mac:
            return here, tuple(crossed)
    return None, tuple(crossed)


def _out_of(net: Network, out: Device) -> list[Device]:
    """The devices a frame sent out of `out` arrives on: a veth's peer, a bridge's ports'
    peers."""
    link = net.link(*out)
    if link is not None and link.kind == "bridge":
        ports = net.hosts[out[0]].ports_of(out[1])
        return [far for p in ports if (far := net.peers.get((out[0], p.name))) is not None]
    far = net.peers.get(out)
    return [far] if far is not None else []


def _l3(
    net: Network,
    at: Device,
    dst: str,
    crossed: tuple[Device, ...],
    seen: set[tuple[str, str | None]],
) -> Step:
    host, iif = at
    if net.hosts[host].holder(dst) is not None:
        return Step(host, iif, "deliver", crossed=crossed)
    route = net.route(host, dst)
    if route is None or not route.dev or route.type != "unicast":
        return Step(host, iif, "no route", route, crossed=crossed)
    via = route.gateway or dst
    if (host, route.dev) in seen:
        return Step(host, iif, "loop", route, via, crossed)
    if route.dev == iif:
        return Step(host, iif, "bounce", route, via, crossed)
    return Step(host, iif, "forward", route, via, crossed)


def devices(steps: tuple[Step, ...]) -> list[Device]:
    """Every device the walk crosses or leaves by, in order, without repeats."""
    out: list[Device] = []
    for step in steps:
        out += list(step.crossed)
        if step.iif is not None:
            out.append((step.host, step.iif))
        if step.oif is not None:
            out.append((step.host, step.oif))
    return list(dict.fromkeys(out))


def hosts(steps: tuple[Step, ...]) -> list[str]:
    """The hosts the walk reaches or crosses, in order."""
    return list(dict.fromkeys(h for h, _d in devices(steps)))
