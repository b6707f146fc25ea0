"""mac-learning: a Linux bridge learns where each MAC lives and forwards by it.

After a frame from station X enters port 1, the FDB holds X on port 1 and frames to X
leave through port 1 only; unknown unicast and broadcast flood to every other port and
never back out of the one they came in by; X moving to port 3 is learned there; and X's
entry ages out after the bridge's ageing time (then frames to X flood again).

The stations are made-up MACs (02:4e:50:...), not the hosts' own, so nothing the hosts
send on their own (IPv6 multicast reports, ARP) can teach or refresh the FDB mid-check.
The frames carry a local experimental EtherType: no IP, so the bridge host's iptables
FORWARD chain (bridge-nf-call-iptables) never sees them; bridge-family nft rules would.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from netprobe.check import Check, Context, Param, Port, Status, param, peer_port
from netprobe.errors import SpecError
from netprobe.expect import at_exactly
from netprobe.traffic import ethernet

__all__ = ["CHECK", "run"]

MOVER = "02:4e:50:00:00:0a"  # station X: learned on port 1, then moves to port 3
TALKER = "02:4e:50:00:00:0b"  # station Y: sends the frames addressed to X
UNKNOWN = "02:4e:50:00:00:0c"  # never a source, so never in the FDB
BROADCAST = "ff:ff:ff:ff:ff:ff"
_LONGEST_AGEING = 10.0  # seconds; a longer ageing time is not watched (the step is SKIP)


class _Bridge:
    """The bridge behind the check's end ports: its host, name and the port of each, as
    the kernel has them (an end that no longer exists has no port: None)."""

    def __init__(self, ctx: Context, ends: Sequence[str]) -> None:
        self.ctx = ctx
        self.ends = list(ends)
        self.ports = [_bridge_port(ctx, end) for end in ends]  # (host, ifname) per end
        known = [p for p in self.ports if p is not None]
        if not known:
            raise SpecError(f"none of {', '.join(ends)} exists: no bridge to test")
        masters = Counter(m for p in known if (m := _master(ctx, *p)) is not None)
        self.host = known[0][0]
        self.name = masters.most_common(1)[0][0] if masters else known[0][1]

    def port(self, index: int) -> str:
        found = self.ports[index]
        return ":".join(found) if found else f"the bridge port behind {self.ends[index]}"

    def info(self) -> dict[str, Any]:
        link = self.ctx.link(self.host, self.name) or {}
        data: dict[str, Any] = link.get("linkinfo", {}).get("info_data", {})
        return data

    def ageing(self) -> float | None:
        """The ageing time in seconds (the kernel reports centiseconds)."""
        value = self.info().get("ageing_time")
        return None if value is None else float(value) / 100

    def where(self, mac: str) -> str | None:
        """The bridge port the FDB holds `mac` on ("host:ifname"), or None."""
        argv = ["bridge", "-j", "fdb", "show", "br", self.ctx.topo.ifname(self.host, self.name)]
        entries: list[dict[str, Any]] = json.loads(self.ctx.topo.run(self.host, argv).stdout)
        for entry in entries:
            if entry.get("mac", "").lower() == mac and "self" not in entry.get("flags", []):
                return f"{self.host}:{entry['ifname']}"
        return None


def _bridge_port(ctx: Context, end: str) -> tuple[str, str] | None:
    """The bridge port an end port hangs off: a veth's far end, or the TAP itself (None:
    the end does not exist, so neither does its port)."""
    port = Port.parse(end)
    if port.vm:
        return port.host, port.ifname
    peer = peer_port(ctx.topo, port)
    if peer is not None:
        return peer.host, peer.ifname
    iface = ctx.topo.live(port.host).interface(port.ifname)
    if iface is None:
        return None
    if iface.kind == "veth":
        raise SpecError(f"the far end of {end} is in no host of the topology: adopt its "
                        "namespace as a host, so that the bridge port can be read")
    raise SpecError(f"{end} is neither a veth end nor a TAP's VM side: no bridge port behind it")


def _master(ctx: Context, host: str, ifname: str) -> str | None:
    iface = ctx.topo.live(host).interface(ifname)
    return iface.master if iface is not None else None


def body(ctx: Context, *, ports: str | Sequence[str] = "h1:eth0,h2:eth0,h3:eth0,h4:eth0") -> None:
    """Learn X at port 1, forward to it, flood the unknown, move X to port 3, age it out."""
    ends = [p.strip() for p in ports.split(",")] if isinstance(ports, str) else list(ports)
    if len(ends) < 3:
        raise SpecError("mac-learning needs three or more ports on one bridge (ports=A,B,C)")
    br = _Bridge(ctx, ends)
    p1, p2, p3 = ends[:3]
    to_x, to_moved = f"unicast to X leaves {p1} only", f"unicast to the moved X leaves {p3} only"
    ctx.plan(  # the flood after ageing only when the ageing time can be watched at all
        _EVERY_PORT,
        _flood_step(_FROM_X, p1), _learned_step(br, MOVER, 0), to_x,
        _flood_step(_TO_UNKNOWN, p2),
        _flood_step(_MOVED, p3), _learned_step(br, MOVER, 2), to_moved,
        _AGES_OUT, *([_flood_step(_AGED, p2)] if _watchable(br.ageing()) else []),
    )
    _every_port_learns_and_floods(ctx, br)  # the frames below exercise ports 1-3 only
    _flood(ctx, _FROM_X, ethernet(MOVER, BROADCAST), p1, ends)
    _learned(ctx, br, MOVER, 0)
    _forwarded(ctx, to_x, p2, p1, ends)
    _flood(ctx, _TO_UNKNOWN, ethernet(TALKER, UNKNOWN), p2, ends)
    moved = time.monotonic()
    _flood(ctx, _MOVED, ethernet(MOVER, BROADCAST), p3, ends)
    _learned(ctx, br, MOVER, 2)
    _forwarded(ctx, to_moved, p2, p3, ends)
    if _aged_out(ctx, br, moved):
        _flood(ctx, _AGED, ethernet(TALKER, MOVER), p2, ends)
    if any(step.status is not Status.PASS for step in ctx.steps):
        _diagnose(ctx, br)


_EVERY_PORT = "every port learns and floods"
_FROM_X = "broadcast from X"
_TO_UNKNOWN = "unknown unicast"
_MOVED = "broadcast from X after it moved"
_AGES_OUT = "X ages out of the FDB after the ageing time"
_AGED = "unicast to X after it aged out"  # taken only once X was seen to age out


def _flood_step(what: str, port: str) -> str:
    return f"{what} floods from {port} to every other port"


def _learned_step(br: _Bridge, mac: str, index: int) -> str:
    return f"the FDB holds X ({mac}) on {br.port(index)}"


def _watchable(ageing: float | None) -> bool:
    """Is the ageing time short enough to watch an entry expire?"""
    return ageing is not None and ageing <= _LONGEST_AGEING


def _every_port_learns_and_floods(ctx: Context, br: _Bridge) -> None:
    """The kernel's own flags, for every port: enslaved to the bridge, learning,
    unknown-unicast and broadcast flooding (traffic below shows the behaviour on three)."""
    off = []
    for end, found in zip(br.ends, br.ports, strict=True):
        if found is None:
            off.append(f"{end} does not exist: no bridge port behind it")
            continue
        host, ifname = found
        if _master(ctx, host, ifname) != br.name:
            off.append(f"{host}:{ifname} is not a port of {br.name}")
            continue
        link = ctx.link(host, ifname) or {}
        flags = link.get("linkinfo", {}).get("info_slave_data", {})
        off += [f"{host}:{ifname} {key} off" for key in ("learning", "flood", "bcast_flood")
                if flags.get(key) is False]
    if not ctx.record(_EVERY_PORT, not off, "; ".join(off)):
        _diagnose_ports(ctx, br)


def _flood(ctx: Context, name: str, frame: Any, port: str, ends: list[str]) -> None:
    """The frame must reach every other port, and never come back out of `port`."""
    others = [p for p in ends if p != port]
    ctx.expect(
        _flood_step(name, port),
        frame,
        port,
        at_exactly(others, among=ends),
        timeout=0.5,
    )


def _forwarded(ctx: Context, name: str, sender: str, owner: str, ends: list[str]) -> None:
    ctx.expect(name, ethernet(TALKER, MOVER), sender, at_exactly([owner], among=ends), timeout=0.5)


def _learned(ctx: Context, br: _Bridge, mac: str, index: int) -> None:
    want = br.port(index)
    seen = br.where(mac)
    ctx.record(
        _learned_step(br, mac, index),
        seen == want,
        f"{br.name}'s FDB holds {mac} on {seen}" if seen else f"{mac} is not in {br.name}'s FDB",
    )


def _aged_out(ctx: Context, br: _Bridge, since: float) -> bool:
    """Poll the FDB until X is gone: not much sooner than the ageing time, nor later than 3
    times it. `since` is when X was last heard from."""
    name = _AGES_OUT
    ageing = br.ageing()
    if ageing is None or not _watchable(ageing):
        known = "unknown" if ageing is None else f"{ageing:g} s"
        return _skip(
            ctx,
            name,
            f"ageing time {known} is too long to watch; give the bridge "
            "a short one (`ageing: 1`) to test ageing",
        )
    if br.where(MOVER) is None:
        return _skip(ctx, name, "X is not in the FDB: nothing to watch age out")
    deadline = since + 3 * ageing + 0.2
    while br.where(MOVER) is not None:
        if time.monotonic() > deadline:
            return ctx.record(
                name,
                False,
                f"X still in the FDB {3 * ageing + 0.2:.1f} s after "
                f"it was last seen (ageing time {ageing:g} s)",
            )
        time.sleep(min(0.05, ageing / 10))
    age = time.monotonic() - since
    when = "before" if age < ageing / 2 else "after"
    return ctx.record(
        name,
        when == "after",
        f"gone {age:.2f} s after X was last seen, {when} the ageing time of {ageing:g} s",
    )


def _skip(ctx: Context, name: str, why: str) -> bool:
    ctx.skip(name, why)
    return False


def _diagnose(ctx: Context, br: _Bridge) -> None:
    _diagnose_ports(ctx, br)
    if br.ageing() == 0:
        ctx.diagnose(
            f"{br.host}:{br.name} has ageing time 0: FDB entries expire at once, so "
            "the bridge forgets every MAC it learns and everything floods (a hub)"
        )
    if not ctx.diagnoses:
        ctx.diagnose(
            f"{br.host}:{br.name} does not forward by what it learns (see the "
            f"evidence; bridge-family nft or ebtables rules in {br.host} see every "
            "frame)"
        )


def _diagnose_ports(ctx: Context, br: _Bridge) -> None:
    for end, found in zip(br.ends, br.ports, strict=True):
        if found is None:
            ctx.diagnose(f"{end} does not exist: no bridge port behind it")
        else:
            _diagnose_port(ctx, br, *found)


def _diagnose_port(ctx: Context, br: _Bridge, host: str, ifname: str) -> None:
    iface = ctx.topo.live(host).interface(ifname)
    if iface is None:
        ctx.diagnose(f"{host}:{ifname} does not exist")
        return
    if iface.master != br.name:
        why = "it has no master" if iface.master is None else f"its master is {iface.master}"
        ctx.diagnose(f"{host}:{ifname} has no master {br.name}: not enslaved to the bridge "
                     f"({why}; `ip link set {ifname} master {br.name}` in {host})")
        return
    if not iface.up:
        ctx.diagnose(f"{host}:{ifname} is down: the bridge neither learns nor forwards there")
    elif iface.port_state not in (None, "forwarding"):
        ctx.diagnose(f"{host}:{ifname} is in STP state {iface.port_state}: the bridge "
                     "forwards nothing there (`bridge link set dev "
                     f"{ifname} state 3` in {host}, unless STP keeps it so)")
    port = (ctx.link(host, ifname) or {}).get("linkinfo", {}).get("info_slave_data", {})
    if port.get("learning") is False:
        ctx.diagnose(
            f"{host}:{ifname} has learning disabled: the bridge never records the "
            "source MACs that arrive there, so frames to them flood to every port"
        )
    for key, what in (("flood", "unknown unicast"), ("bcast_flood", "broadcast")):
        if port.get(key) is False:
            ctx.diagnose(f"{host}:{ifname} has {key} off: {what} is never sent out of it")


CHECK = Check(
    name="mac-learning",
    summary="a bridge learns source MACs, forwards known unicast to one port, floods the "
    "rest, follows moves and ages entries out",
    body=body,
    reference="mac-learning.yaml",
    requires=("veth", "bridge", "AF_PACKET", "ip"),
    params={
        "ports": Param(
            "three or more end ports on one bridge, HOST:IFNAME,...; X is learned "
            "on the first, moves to the third, and the second sends to it",
            param.port_list(minimum=3),
        ),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
