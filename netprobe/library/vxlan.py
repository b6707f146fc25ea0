"""vxlan: guests on two hypervisors reach each other through a VXLAN overlay, tenants stay
apart, and the path MTU is what the guests assume.

For each tenant (a VNI, a guest on one hypervisor and one on the other): a frame from the
first guest to the second leaves the underlay in VXLAN, its outer IPv4/UDP header and VNI
read from the frame captured there (the probe's nonce found in the inner frame), and it
arrives; the second guest's kernel answers a ping across the overlay; a broadcast reaches
the tenant's guest and no guest of another tenant (decided by a barrier sent in that
other tenant). Then the path MTU from the first tenant's sender: IPv4 packets with DF set,
sized by bisection (each size decided by a small barrier behind it, a size lost only when
lost twice, the size above the answer probed again), give the largest that crosses;
VXLAN takes 50 bytes of the underlay's MTU. Packets of `mtu` bytes (default: the sender's
own MTU) must cross. On failure the tunnel endpoints are read back (kernel VXLAN
devices, or OVS VXLAN ports) to name the fault: a VNI the far side does not have, a remote
that is not the peer's underlay address, an underlay MTU too small for the guests.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netprobe.check import (
    Barrier,
    Check,
    Context,
    Param,
    Port,
    Status,
    at,
    at_exactly,
    echo_and_reply,
    ethernet,
    from_scapy,
    ipv4_of,
    param,
    ports,
    udp,
)
from netprobe.errors import SpecError
from netprobe.traffic import Capture, Captured

from . import _vxlan_diagnosis as diagnosis
from ._mtu_bisect import bisect
from ._vxlan_wire import OVERHEAD, Tunnelled, arp_request_target, parse

__all__ = ["CHECK", "Tenant", "parse_tenants", "run"]

_TIMEOUT = 2.0  # seconds for what must arrive (polled: a pass costs only the delivery)
_BROADCAST = "ff:ff:ff:ff:ff:ff"
_TRIES = 3  # frames sent while a tunnel resolves its remote
_SMALLEST = 44  # IPv4 + UDP + the nonce: the least a sized probe can be
_BAD = (Status.FAIL, Status.INCONCLUSIVE)


@dataclass(frozen=True)
class Tenant:
    """A VNI and its two guests (HOST:IFNAME), on different hypervisors, the sender first."""

    vni: int
    src: str
    dst: str


def parse_tenants(text: str) -> list[Tenant]:
    """ "100=g1:eth0,g2:eth0 200=b1:eth0,b2:eth0" → two Tenants."""
    tenants = []
    for item in text.replace(";", " ").split():
        vni, sep, members = item.partition("=")
        guests = [p for p in members.split(",") if p]
        try:
            guests = [str(Port.parse(p)) for p in guests]
        except SpecError:
            guests = []
        if not sep or not vni.isdigit() or int(vni) >= 1 << 24 or len(guests) != 2:
            raise SpecError(f"expected tenants as VNI=HOST:IFNAME,HOST:IFNAME ..., not {item!r}")
        tenants.append(Tenant(int(vni), guests[0], guests[1]))
    if not tenants:
        raise SpecError("give at least one tenant, VNI=HOST:IFNAME,HOST:IFNAME")
    return tenants


def body(ctx: Context, *, tenants: str = "100=g1:eth0,g2:eth0 200=b1:eth0,b2:eth0",
         underlay: str = "hv1:ul0", mtu: int | None = None) -> None:
    """Probe every tenant across the overlay, their isolation, then the path MTU."""
    groups = parse_tenants(tenants)
    wire = Port.parse(underlay)
    named: list[str | Port] = [wire, *(p for t in groups for p in (t.src, t.dst))]
    for port in named:
        ctx.topo.mac(port)  # an unknown port is bad input, before any probe
    ctx.plan(*(name for t in groups for name in _steps(ctx, t, groups)), _mtu_key(groups[0]))
    seen: dict[int, list[Tunnelled]] = {}
    arps: dict[int, set[str]] = {}
    capture = Capture(str(wire), ctx.topo.fd_of(wire.host),
                      ctx.topo.ifname(wire.host, wire.ifname), outgoing=True)
    try:
        for tenant in groups:
            seen[tenant.vni], arps[tenant.vni] = _across(ctx, tenant, capture, wire)
            _ping(ctx, tenant)
            for other in (o for o in groups if o is not tenant):
                _isolated(ctx, tenant, other)
    finally:
        capture.close()
    largest = _path_mtu(ctx, groups[0], mtu)
    if any(s.status in _BAD for s in ctx.steps):
        diagnosis.explain(ctx, groups, wire, seen, arps, largest, mtu)


def _steps(ctx: Context, tenant: Tenant, groups: list[Tenant]) -> list[str]:
    return [_wire_step(tenant), _arrive_step(tenant), _ping_step(ctx, tenant),
            *(_isolation_step(tenant, o) for o in groups if o is not tenant)]


def _wire_step(t: Tenant) -> str:
    return f"VNI {t.vni}: a frame from {t.src} to {t.dst} leaves the underlay in VXLAN, VNI {t.vni}"


def _arrive_step(t: Tenant) -> str:
    return f"VNI {t.vni}: it arrives at {t.dst} through the overlay"


def _ping_step(ctx: Context, t: Tenant) -> str:
    return f"VNI {t.vni}: {t.dst} pings {t.src} ({ipv4_of(ctx.topo, t.src)}), answered"


def _isolation_step(t: Tenant, other: Tenant) -> str:
    return (f"VNI {t.vni}: a broadcast from {t.src} reaches {t.dst} and no guest of "
            f"VNI {other.vni} ({other.dst})")


def _mtu_key(t: Tenant) -> str:
    return f"path MTU from {t.src} to {t.dst}"


def _watch(sources: list[Any], done: Callable[[list[Captured]], bool], timeout: float
           ) -> list[Captured]:
    """Frames read from `sources` until `done(frames)` or the deadline."""
    frames: list[Captured] = []
    deadline = time.monotonic() + timeout
    while True:
        for source in sources:
            frames += source.read()
        if done(frames) or time.monotonic() > deadline:
            return frames
        select.select(sources, [], [], 0.02)


def _arrived(port: str, mark: bytes) -> Callable[[list[Captured]], bool]:
    """Whether a frame carrying `mark` has been seen at `port`."""
    return lambda frames: any(f.port == port and mark in f.data for f in frames)


def _across(ctx: Context, t: Tenant, wire: Capture, port: Port
            ) -> tuple[list[Tunnelled], set[str]]:
    """Send a frame src → dst; what the underlay carried of it, and the ARP requests it
    saw. A tunnel still resolving its remote (ARP on the underlay, the frame not carried:
    OVS drops the first frames while it asks) is given another frame, up to _TRIES."""
    topo = ctx.topo
    frame = udp(topo.mac(t.src), topo.mac(t.dst), ipv4_of(topo, t.src) or "192.0.2.1",
                ipv4_of(topo, t.dst) or "192.0.2.2")
    arrival = ports(topo).capture(t.dst)
    ours: list[Tunnelled] = []
    arps: set[str] = set()
    for _ in range(_TRIES):
        arrival.drain()
        wire.drain()
        data, nonce = frame.probe()
        ports(topo).sender(t.src).send(data)
        frames = _watch([arrival, wire], _arrived(t.dst, nonce), _TIMEOUT)
        leaving = [f for f in frames if f.port == str(port) and f.outgoing]  # not replies
        ours = [x for f in leaving if (x := parse(f.data, {4789})) and x.nonce == nonce]
        arps |= {a for f in leaving if (a := arp_request_target(f.data))}
        got = any(f.port == t.dst and nonce in f.data for f in frames)
        if got or ours or not arps:
            break
    wrong = [x for x in ours if x.vni != t.vni]
    shown = "; ".join(sorted({x.describe() for x in ours}))
    if ours and not wrong:
        ctx.record(_wire_step(t), True, f"seen on {port}: {shown}")
    elif ours:
        ctx.record(_wire_step(t), False, f"seen on {port} with another VNI: {shown}")
    else:
        why = f"; ARP requests for {', '.join(sorted(arps))} seen there" if arps else ""
        ctx.record(_wire_step(t), False, f"no VXLAN frame on {port} carried it{why}")
    ctx.record(_arrive_step(t), got, "delivered" if got else
               f"not seen at {t.dst} within {_TIMEOUT} s")
    return ours, arps


def _ping(ctx: Context, t: Tenant) -> None:
    src_ip, dst_ip = ipv4_of(ctx.topo, t.dst), ipv4_of(ctx.topo, t.src)
    if not (src_ip and dst_ip):
        ctx.skip(_ping_step(ctx, t), "a guest has no IPv4 address")
        return
    request, reply = echo_and_reply(ctx.topo.mac(t.dst), ctx.topo.mac(t.src), src_ip, dst_ip)
    ctx.expect(_ping_step(ctx, t), request, t.dst, at(t.dst), match=reply, timeout=_TIMEOUT)


def _isolated(ctx: Context, t: Tenant, other: Tenant) -> None:
    """The barrier, a broadcast in the other tenant from its sender, crosses the same
    underlay: once it has reached the other tenant's guest, this one's had its chance."""
    barrier = Barrier(ethernet(ctx.topo.mac(other.src), _BROADCAST), other.src)
    ctx.expect(_isolation_step(t, other), ethernet(ctx.topo.mac(t.src), _BROADCAST), t.src,
               at_exactly([t.dst], among=[t.dst, other.dst]), barrier=barrier,
               timeout=_TIMEOUT)


def _sized(ctx: Context, t: Tenant, size: int) -> bytes:
    """An IPv4 UDP packet of `size` bytes (DF set) from src to dst, as one frame."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    topo = ctx.topo
    packet = (Ether(src=topo.mac(t.src), dst=topo.mac(t.dst))
              / IP(src=ipv4_of(topo, t.src) or "192.0.2.1",
                   dst=ipv4_of(topo, t.dst) or "192.0.2.2", flags="DF")
              / UDP(sport=40000, dport=9) / Raw(bytes(size - _SMALLEST)))
    return from_scapy(packet).probe()[0]


def _crosses(ctx: Context, t: Tenant, size: int) -> bool | None:
    """Whether a `size`-byte packet reaches dst, decided by a small barrier behind it;
    None: no barrier arrived. A switch that sends in batches (OVS's netdev datapath) may
    lose the barrier with the oversized probe it was sent beside, so a second barrier,
    sent alone once the first is overdue, decides then."""
    probe = _sized(ctx, t, size)
    arrival = ports(ctx.topo).capture(t.dst)
    sender = ports(ctx.topo).sender(t.src)
    arrival.drain()
    frames: list[Captured] = []
    for batch in ([probe, _sized(ctx, t, _SMALLEST)], [_sized(ctx, t, _SMALLEST)]):
        sender.send_many(batch)
        tail = batch[-1][-16:]  # the barrier's nonce, at its end
        frames += _watch([arrival], _arrived(t.dst, tail), _TIMEOUT / 2)
        if any(tail in f.data for f in frames):
            return any(probe[-16:] in f.data for f in frames)
    return None


def _path_mtu(ctx: Context, t: Tenant, want: int | None) -> int | None:
    """The largest IPv4 packet that crosses from t.src (bisected), recorded as a step."""
    sender = ctx.topo.live(t.src.partition(":")[0], addresses=False).interface(
        t.src.partition(":")[2])
    limit = sender.mtu if sender is not None else 1500
    want = want if want is not None else limit
    key = _mtu_key(t)
    name = f"{key}: {want}-byte IPv4 packets (DF set) cross the overlay"
    found = bisect(lambda size: _crosses(ctx, t, size), _SMALLEST, limit)
    if found.largest is None:
        ctx.inconclusive(name, found.why, key=key)
        return None
    low = found.largest
    lost = f"; {low + 1} bytes and above are lost" if low < limit else ""
    short = f"; {t.src} has MTU {limit}: it cannot send {want}-byte packets" if (
        want > limit) else ""
    ctx.record(name, low >= want, f"the largest IPv4 packet that crosses is {low} bytes "
               f"(at most {limit} tried, {t.src}'s MTU){lost}{short}; VXLAN takes "
               f"{OVERHEAD} bytes of the underlay's MTU", key=key)
    return low


_TENANTS = "VNI=HOST:IFNAME,HOST:IFNAME (sender, receiver), space-separated"

CHECK = Check(
    name="vxlan",
    summary="guests on two hypervisors meet through VXLAN; VNIs stay apart; the path MTU fits",
    body=body,
    reference="vxlan.yaml",
    requires=("veth", "bridge", "vxlan", "AF_PACKET"),
    params={
        "tenants": Param("the tenants, VNI=SENDER,RECEIVER (guest ports), space-separated",
                         param.checked_by(parse_tenants, _TENANTS)),
        "underlay": Param("the sender's hypervisor port on the underlay, HOST:IFNAME",
                          param.port()),
        "mtu": Param("IPv4 packet size that must cross the overlay (default: the sender's "
                     "MTU)", param.optional(param.integer(_SMALLEST, 65535), none=None)),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
