"""Naming what broke an overlay: the VNI, the remote, or the MTU, from what the underlay
carried and the tunnel endpoints read back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from netprobe.check import Context, Port, Status

from ._vxlan_wire import OVERHEAD, Endpoint, Tunnelled, endpoints, underlay_mtus

if TYPE_CHECKING:
    from .vxlan import Tenant

_BAD = (Status.FAIL, Status.INCONCLUSIVE)


def explain(ctx: Context, tenants: list[Tenant], wire: Port, seen: dict[int, list[Tunnelled]],
            arps: dict[int, set[str]], largest: int | None, mtu: int | None) -> None:
    """Diagnose each failed tenant, then the MTU; a generic line when nothing is named."""
    failed = {s.name.split(":")[0] for s in ctx.steps if s.status in _BAD}
    for tenant in tenants:
        if f"VNI {tenant.vni}" in failed:
            _tenant(ctx, tenant, wire, seen.get(tenant.vni, []), arps.get(tenant.vni, set()))
    if largest is not None and any(s.status in _BAD and s.id.startswith("path MTU")
                                   for s in ctx.steps):
        _mtu(ctx, tenants[0], wire, largest, mtu)
    if not ctx.diagnoses:
        first = next(s for s in ctx.steps if s.status in _BAD)
        ctx.diagnose(f"the tunnel endpoints have matching VNIs and remotes, yet {first.name} "
                     f"failed: {first.detail} (see the evidence)")


def _peer_addresses(ctx: Context, wire: Port) -> tuple[str, list[str]]:
    """The hypervisor at the far end of the underlay and its IPv4 addresses."""
    peer = ctx.topo.peer(wire)
    if peer is None:
        return "?", []
    live = ctx.topo.live(peer.host)
    return peer.host, [str(a.ip) for i in live.interfaces for a in i.ipv4
                       if not a.ip.is_loopback]


def _tenant(ctx: Context, t: Tenant, wire: Port, ours: list[Tunnelled], arps: set[str]) -> None:
    mine, theirs = endpoints(ctx, t.src), endpoints(ctx, t.dst)
    src_host, dst_host = (_hypervisor(ends, guest) for ends, guest in ((mine, t.src),
                                                                       (theirs, t.dst)))
    peer, addresses = _peer_addresses(ctx, wire)
    sent = sorted({x.vni for x in ours})
    for vni in sent:
        if vni != t.vni:
            ctx.diagnose(f"{_where(mine)} sends VNI {vni}, not the tenant's {t.vni}")
        if theirs and vni not in {e.vni for e in theirs}:
            ids = ", ".join(f"{e.where} has id {e.vni}" for e in theirs)
            ctx.diagnose(f"VNI mismatch: {src_host} sends VNI {vni} "
                         f"({ours[0].describe()}), but {ids}: {dst_host} has no tunnel "
                         f"for VNI {vni} on {t.dst}'s bridge and drops it")
    for dst in sorted({x.dst for x in ours} | arps):
        if addresses and dst not in addresses:
            how = "outer destination seen" if dst in {x.dst for x in ours} else (
                "ARP requests for it unanswered")
            ctx.diagnose(f"wrong remote: {_where(mine)} tunnels to {dst} ({how} on {wire}), "
                         f"but {peer}'s underlay address is {', '.join(addresses)}")
    for end in mine:
        if not ours and not arps and end.remote and addresses and end.remote not in addresses:
            ctx.diagnose(f"wrong remote: {end.where} has remote {end.remote}, but {peer}'s "
                         f"underlay address is {', '.join(addresses)}")
    if not mine:
        ctx.diagnose(f"no VXLAN endpoint on the bridge of {t.src} ({src_host})")


def _hypervisor(ends: list[Endpoint], guest: str) -> str:
    """The host of the tunnel endpoints a guest's bridge has (else the guest's own)."""
    return ends[0].where.partition(":")[0] if ends else Port.parse(guest).host


def _where(ends: list[Endpoint]) -> str:
    return ", ".join(e.where for e in ends) or "the sender's hypervisor"


def _mtu(ctx: Context, t: Tenant, wire: Port, largest: int, mtu: int | None) -> None:
    sender = ctx.link(t.src)
    guest = int(sender["mtu"]) if sender else None
    want = mtu if mtu is not None else guest
    ends = underlay_mtus(ctx, wire)
    least = min((m for _, m in ends), default=None)
    shown = ", ".join(f"{p} {m}" for p, m in ends)
    text = (f"path MTU: the largest IPv4 packet that crosses from {t.src} to {t.dst} is "
            f"{largest} bytes, below the {want} expected")
    if least is not None:
        text += (f"; the underlay's MTU is {least} ({shown}), and VXLAN takes {OVERHEAD} "
                 f"bytes of it: at most {least - OVERHEAD} fit inside")
    tunnels = [e for e in endpoints(ctx, t.src) if e.mtu is not None]
    if tunnels:
        text += "; " + ", ".join(f"{e.where} has MTU {e.mtu}" for e in tunnels)
    if guest is not None and guest > largest:
        text += (f"; {t.src} has MTU {guest}: its packets above {largest} bytes are lost "
                 f"(lower the guests' MTU to {largest}, or raise the underlay's to "
                 f"{guest + OVERHEAD})")
    ctx.diagnose(text)
