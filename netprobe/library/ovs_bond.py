"""ovs-bond: an active-backup Open vSwitch bond keeps a flow going when its active link dies.

A stream of UDP frames runs both ways between two hosts across the bond, one frame each
way every millisecond. The far end of the bond's active member is then taken down (the
cable pulled at the other switch) and the stream goes on: the bond must move to a live
backup and the frames must flow again within `max_failover` seconds. The outage is
measured from the kernel's receive timestamps and reported with the frames lost. The
link is brought back up afterwards. On failure the bond's members and their links are
read back to name the fault (no live backup, a backup leading elsewhere).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from netprobe.check import (
    Check,
    Context,
    Param,
    Port,
    Status,
    ipv4_of,
    param,
    parse_ports,
    peer_port,
)
from netprobe.errors import SpecError
from netprobe.traffic import Template, find_nonce, ports, udp

from .ovs_switch import bond_members, bond_state

__all__ = ["CHECK", "run"]

_INTERVAL = 0.001  # seconds between frames of each direction
_BEFORE = 0.1  # seconds of stream before the link dies
_RESUMED = 50  # frames in a row after the cut that prove the flow is back
_PORT = 7779


@dataclass
class _Flow:
    """One direction of the stream: (nonce, send time) in order, and arrival times. The
    sending thread only appends to `sent`; the main thread reads copies of it."""

    src: Port
    dst: Port
    frame: Template
    sent: list[tuple[bytes, float]] = field(default_factory=list)
    arrived: dict[bytes, float] = field(default_factory=dict)

    def after(self, cut: float) -> list[bytes]:
        return [n for n, t in list(self.sent) if t >= cut]

    def before(self, cut: float) -> int:
        return sum(1 for n, t in list(self.sent) if t < cut and n in self.arrived)

    def outage(self, cut: float, until: float) -> float | None:
        """The longest wait between two frames arriving, from the last arrival before
        the cut on, counting only what arrived while the link was down (before `until`).
        None: no frame SENT after the cut arrived then (frames already on their way when
        the link died do not show the flow came back)."""
        sent = list(self.sent)
        if not any(t >= cut and self.arrived.get(n, until) < until for n, t in sent):
            return None
        times = sorted(self.arrived[n] for n, _ in sent if self.arrived.get(n, until) < until)
        before = [t for t in times if t < cut]
        seq = [before[-1] if before else cut, *(t for t in times if t >= cut)]
        return max(b - a for a, b in itertools.pairwise(seq))

    def lost(self) -> int:
        return sum(1 for n, _ in list(self.sent) if n not in self.arrived)


def body(ctx: Context, *, bond: str = "hv:bond0", a: str = "h1:eth0", b: str = "h2:eth0",
         max_failover: float | str = 1.0) -> None:
    """Stream between `a` and `b` across `bond` (HOST:BOND), kill its active link."""
    host, name, members = bond_members(ctx, bond)
    limit = _seconds(max_failover)
    src, dst = parse_ports(ctx.topo, [a, b], at_least=2)
    backup, failover, *kept = _steps(bond, src, dst)
    ctx.plan(backup, failover, *kept)
    state = bond_state(ctx, host, name)
    if state is None or state.active is None:
        ctx.record(f"{bond} has an active member", False, "bond/show names none")
        ctx.diagnose(f"{bond} has no active member: every member's link is down")
        return
    active = state.active
    live = [m for m in members if m != active and state.enabled.get(m)]
    ctx.record(f"{bond} has a live backup for {active}", bool(live),
               "; ".join(f"{m}: {'enabled' if state.enabled.get(m) else 'disabled'}"
                         for m in members), key=backup)
    cut_at = peer_port(ctx.topo, Port(host, active)) or Port(host, active)
    flows = [_flow(ctx, src, dst), _flow(ctx, dst, src)]
    cut = _stream(ctx, flows, cut_at, limit, (host, name))
    ctx.record(f"{bond} fails over from {active} when {cut_at} goes down",
               cut.active is not None and cut.active != active,
               f"active member then: {cut.active or 'none'}", key=failover)
    for flow, key in zip(flows, kept, strict=True):
        _judge(ctx, flow, key, cut, cut_at, limit)
    if any(s.status is not Status.PASS for s in ctx.steps):
        _diagnose(ctx, host, name, members, active)


def _steps(bond: str, a: Port, b: Port) -> list[str]:
    """The keys of the steps, in the order taken (for `ctx.plan`): their names carry the
    active member and the link cut, which only the run finds out."""
    return [f"{bond} has a live backup", f"{bond} fails over when its active link goes down",
            f"flow {a} → {b} keeps going", f"flow {b} → {a} keeps going"]


def _seconds(value: float | str) -> float:
    try:
        limit = float(value)
    except ValueError:
        raise SpecError(f"max_failover must be seconds, not {value!r}") from None
    if not 0 < limit <= 60:
        raise SpecError(f"max_failover must be 0..60 seconds, not {value!r}")
    return limit


def _flow(ctx: Context, src: Port, dst: Port) -> _Flow:
    src_ip, dst_ip = ipv4_of(ctx.topo, src), ipv4_of(ctx.topo, dst)
    if src_ip is None or dst_ip is None:
        raise SpecError(f"{src if src_ip is None else dst} has no IPv4 address")
    frame = udp(ctx.topo.mac(src), ctx.topo.mac(dst),
                src_ip, dst_ip, dport=_PORT)
    return _Flow(src, dst, frame)


@dataclass
class _Cut:
    at: float  # when the link-down request was answered (frames sent later cannot use it)
    took: float  # how long the kernel took to answer it
    active: str | None  # the bond's active member once the flow was back (or given up)
    restored: float  # when the link was brought back up: later arrivals do not count


def _stream(ctx: Context, flows: list[_Flow], cut_at: Port, limit: float,
            bond: tuple[str, str]) -> _Cut:
    """Stream from a thread; after _BEFORE seconds take `cut_at` down, watch until every
    flow is back (or `limit` has passed), read the bond, then bring the link up again."""
    lab = ports(ctx.topo)
    senders = {f.src: lab.sender(f.src) for f in flows}
    captures = {f.dst: lab.capture(f.dst) for f in flows}
    for capture in captures.values():
        capture.drain()
    stop = threading.Event()
    thread = threading.Thread(target=_send, args=(flows, senders, stop), daemon=True)
    thread.start()
    at = None
    try:
        _watch(flows, captures, time.time() + _BEFORE, None)
        asked = time.time()
        ctx.topo.set_link(cut_at, up=False)
        at = time.time()  # the kernel has answered: from now on the link is down
        took = at - asked
        _watch(flows, captures, at + limit, at)
        state = bond_state(ctx, *bond)
    finally:
        stop.set()
        thread.join()
        restored = time.time()
        if at is not None:
            ctx.topo.set_link(cut_at, up=True)
    time.sleep(0.01)  # the last frames' way across
    _collect(flows, captures)
    return _Cut(at, took, state.active if state is not None else None, restored)


def _send(flows: list[_Flow], senders: dict[Port, Any], stop: threading.Event) -> None:
    start = time.time()
    for i in itertools.count():
        delay = start + i * _INTERVAL - time.time()
        if delay > 0:
            time.sleep(delay)
        if stop.is_set():
            return
        for flow in flows:
            data, nonce = flow.frame.probe()
            flow.sent.append((nonce, time.time()))
            senders[flow.src].send(data)


def _watch(flows: list[_Flow], captures: dict[Port, Any], until: float,
           cut: float | None) -> None:
    """Collect arrivals until `until`, or (after the cut) until every flow is back."""
    while time.time() < until:
        _collect(flows, captures)
        if cut is not None and all(_back(f, cut) for f in flows):
            return
        time.sleep(0.002)


def _collect(flows: list[_Flow], captures: dict[Port, Any]) -> None:
    for flow in flows:
        for frame in captures[flow.dst].read():
            nonce = find_nonce(frame.data)
            if nonce is not None and not frame.outgoing:
                flow.arrived.setdefault(nonce, frame.time)


def _back(flow: _Flow, cut: float) -> bool:
    """Enough frames sent after the cut have arrived to call the flow back."""
    return sum(1 for n in flow.after(cut) if n in flow.arrived) >= _RESUMED


def _judge(ctx: Context, flow: _Flow, key: str, cut: _Cut, cut_at: Port, limit: float) -> None:
    before = flow.before(cut.at)
    outage = flow.outage(cut.at, cut.restored)
    name = f"flow {flow.src} → {flow.dst} keeps going when {cut_at} goes down"
    sent = len(flow.sent)
    if before == 0:
        ctx.record(name, False, f"no frame got through before the link died (0 of "
                                f"{sent}): the path never worked", key=key)
        return
    if outage is None or outage > limit:
        ctx.record(name, False, f"no frame got through in the {limit:g} s after the cut; "
                                f"{flow.lost()} of {sent} frames lost", key=key)
        return
    ctx.record(name, True, f"failover outage {outage * 1000:.1f} ms (the longest wait "
                           f"between two frames arriving, from the last one before the link "
                           f"went down; the kernel took {cut.took * 1000:.1f} ms to take it "
                           f"down); {flow.lost()} of {sent} frames lost, one sent every "
                           f"{_INTERVAL * 1000:g} ms", key=key)


def _diagnose(ctx: Context, host: str, bond: str, members: list[str], active: str) -> None:
    """Name what left the bond without a working backup."""
    active_far = peer_port(ctx.topo, Port(host, active))
    active_master = _master(ctx, active_far)
    for member in (m for m in members if m != active):
        far = peer_port(ctx.topo, Port(host, member))
        near = ctx.link(host, member)
        far_link = ctx.link(far) if far else None
        if near is None or "UP" not in near["flags"]:
            ctx.diagnose(f"{host}:{bond} has no live backup for {active}: {member} is down")
        elif far is not None and (far_link is None or "UP" not in far_link["flags"]):
            ctx.diagnose(f"{host}:{bond} has no live backup for {active}: the link of "
                         f"{member} is down at its far end, {far}")
        elif far is not None and _master(ctx, far) != active_master:
            ctx.diagnose(f"{host}:{bond}'s backup {member} leads to {far}, whose master is "
                         f"{_master(ctx, far) or 'none'}, not {active_master or 'none'} "
                         f"like the active member's far end {active_far}")
    if not ctx.diagnoses:
        ctx.diagnose(f"{host}:{bond}'s backups are up and cabled like {active}, yet the "
                     "flow did not come back: see the evidence of each step")


def _master(ctx: Context, port: Port | None) -> str | None:
    link = ctx.link(port) if port else None
    return link.get("master") if link else None


CHECK = Check(
    name="ovs-bond",
    summary="an active-backup OVS bond keeps a flow going when its active link dies",
    body=body,
    reference="ovs-bond.yaml",
    requires=("veth", "AF_PACKET", "ovs-vsctl"),
    params={
        "bond": Param("the OVS bond, HOST:BOND", param.port()),
        "a": Param("one end of the flow, HOST:IFNAME", param.port()),
        "b": Param("the other end, HOST:IFNAME", param.port()),
        "max_failover": Param("seconds the flow may stop (default 1)", param.number(0, 60)),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
