"""bond: a Linux bond survives losing a link, and 802.3ad spreads traffic over its links.

active-backup: a host answers through its bond; the active member's link is cut (the far
end of its veth goes down, as a pulled cable would); traffic must flow again through
another member, and the time from the cut to the first frame delivered through the bond
is measured (the failover time, in the evidence). The link is restored afterwards.

802.3ad: between two hosts whose bonds speak LACP, every member joins one aggregator and
flows with different addresses leave over different links: each link carries some.

When something fails, the bond is read back to name the fault: no link monitoring
(miimon and arp_interval 0: a dead link goes unnoticed), no other member with a carrier,
a partner that does not speak LACP, a member that is down.
"""

from __future__ import annotations

import json
import time
from typing import Any

from netprobe.check import (
    Check,
    Context,
    Param,
    Port,
    Status,
    echo_and_reply,
    ipv4_of,
    param,
    peer_port,
)
from netprobe.errors import SpecError
from netprobe.expect import Match, at, at_any
from netprobe.traffic import udp

__all__ = ["CHECK", "bond_info", "members", "run"]

_TIMEOUT = 3.0  # seconds for what must arrive (polled)
_FAILOVER_LIMIT = 10.0  # seconds after the cut by which traffic must flow again
_LACP_LIMIT = 12.0  # seconds for LACP to aggregate (both ends send LACPDUs at once)
_FLOWS = 8  # flows (destination MACs) spread over an 802.3ad bond's links
_BAD = (Status.FAIL, Status.INCONCLUSIVE)


def bond_info(ctx: Context, port: str) -> dict[str, Any]:
    """The bond's IFLA_INFO_DATA as `ip -d -j link` shows it (mode, miimon, ad_info...)."""
    link = ctx.link(port)
    info = (link or {}).get("linkinfo", {})
    if info.get("info_kind") != "bond":
        raise SpecError(f"{port} is not a bond of this topology")
    data: dict[str, Any] = info.get("info_data", {})
    return data


def members(ctx: Context, port: str) -> list[dict[str, Any]]:
    """The bond's member links, each with its `info_slave_data` (state, mii_status...)."""
    bond = Port.parse(port)
    shown = ctx.topo.run(bond.host, ["ip", "-d", "-j", "link", "show", "master", bond.ifname])
    found: list[dict[str, Any]] = json.loads(shown.stdout or "[]") if shown.ok else []
    return found


def body(ctx: Context, *, bond: str = "server:bond0", peer: str = "client:eth0",
         lacp: str = "lacp1:bond0", lacp_peer: str = "lacp2:bond0") -> None:
    """Failover of the active-backup `bond` seen from `peer`; then the 802.3ad pair."""
    ctx.plan(*(_backup_steps(bond, peer) if bond else []),
             *(_lacp_steps(lacp, lacp_peer) if lacp else []))
    if bond:
        _active_backup(ctx, bond, peer)
    else:
        ctx.skip("active-backup failover", "no active-backup bond given")
    if lacp:
        _lacp(ctx, lacp, lacp_peer)
    else:
        ctx.skip("802.3ad uses both links", "no 802.3ad bond given")


# -- active-backup ------------------------------------------------------------------------


def _backup_steps(bond: str, peer: str) -> list[str]:
    """The keys of the active-backup steps, in the order taken (for `ctx.plan`): their
    names carry the address pinged and the member cut, which only the run finds out."""
    return [f"{peer} pings {bond} before a link is cut",
            f"traffic from {peer} reaches {bond} again after the cut",
            f"{peer} pings {bond} after the cut"]


def _ping(ctx: Context, src: str, dst: str, when: str, key: str) -> bool:
    src_ip, dst_ip = ipv4_of(ctx.topo, src), ipv4_of(ctx.topo, dst)
    if src_ip is None or dst_ip is None:
        raise SpecError(f"{src} and {dst} need IPv4 addresses in the topology")
    request, reply = echo_and_reply(ctx.topo.mac(src), ctx.topo.mac(dst), src_ip, dst_ip)
    return ctx.expect(f"{src} pings {dst} ({dst_ip}) {when}, answered", request, src,
                      at(src), match=reply, timeout=_TIMEOUT, key=key).passed


def _active_backup(ctx: Context, bond: str, peer: str) -> None:
    info = bond_info(ctx, bond)
    if info.get("mode") != "active-backup":
        raise SpecError(f"{bond} is in mode {info.get('mode')}, not active-backup")
    if not _ping(ctx, peer, bond, "before a link is cut", _backup_steps(bond, peer)[0]):
        _diagnose_backup(ctx, bond, None)
        return
    active = info.get("active_slave")
    if not active:
        ctx.record(f"{bond} has an active member", False, "no active member")
        _diagnose_backup(ctx, bond, None)
        return
    member = Port.parse(bond).on(active)
    cut = peer_port(ctx.topo, member) or member
    ctx.topo.run(cut.host, ["ip", "link", "set", cut.ifname, "down"], check=True)
    try:
        _after_cut(ctx, bond, peer, str(member), str(cut), time.perf_counter())
    finally:
        ctx.topo.run(cut.host, ["ip", "link", "set", cut.ifname, "up"])


def _after_cut(ctx: Context, bond: str, peer: str, active: str, cut: str, t0: float) -> None:
    """Probe from `peer` until one probe is delivered through the bond: the failover."""
    host = Port.parse(bond).host
    _, back, pinged = _backup_steps(bond, peer)
    bond_mac, peer_mac = ctx.topo.mac(bond), ctx.topo.mac(peer)
    frame = udp(peer_mac, bond_mac, ipv4_of(ctx.topo, peer) or "192.0.2.1",
                ipv4_of(ctx.topo, bond) or "192.0.2.2")
    tries = 0
    while time.perf_counter() - t0 < _FAILOVER_LIMIT:
        tries += 1
        if _probe(ctx, frame, peer, bond):
            took = (time.perf_counter() - t0) * 1000
            now = bond_info(ctx, bond).get("active_slave")
            ctx.record(f"traffic from {peer} reaches {bond} again after {cut} went down",
                       True, f"failover in {took:.0f} ms ({tries} probes; active member "
                       f"{active} → {host}:{now}; miimon "
                       f"{bond_info(ctx, bond).get('miimon')} ms)", key=back)
            _ping(ctx, peer, bond, f"after {active} lost its link", pinged)
            if any(s.status in _BAD for s in ctx.steps):
                _diagnose_backup(ctx, bond, active)
            return
    ctx.record(f"traffic from {peer} reaches {bond} again after {cut} went down", False,
               f"no probe reached {bond} within {_FAILOVER_LIMIT:g} s ({tries} probes)",
               key=back)
    _diagnose_backup(ctx, bond, active)


def _probe(ctx: Context, frame: Any, peer: str, bond: str) -> bool:
    """One probe, not recorded as a step: the loop's attempts are its evidence."""
    from netprobe.expect import expect

    return expect(ctx.topo, frame, peer, at(bond), timeout=0.3).passed


def _diagnose_backup(ctx: Context, bond: str, dead: str | None) -> None:
    info = bond_info(ctx, bond)
    if not info.get("miimon") and not info.get("arp_interval"):
        ctx.diagnose(f"{bond} has no link monitoring (miimon 0, arp_interval 0): it never "
                     "notices a member's dead link, so it never fails over "
                     f"(`ip link set {Port.parse(bond).ifname} type bond miimon 100`)")
    host = Port.parse(bond).host
    others = [m for m in members(ctx, bond) if f"{host}:{m['ifname']}" != dead]
    if not others:
        ctx.diagnose(f"{bond} has no member but {dead}: nothing to fail over to")
    for member in others:
        name = f"{host}:{member['ifname']}"
        if "NO-CARRIER" in member["flags"] or "UP" not in member["flags"]:
            far = peer_port(ctx.topo, name)
            why = f": its far end {far} is down" if far and _down(ctx, far) else ""
            ctx.diagnose(f"{name}, the bond's other member, has no carrier{why}")
    if not ctx.diagnoses:
        failed = next(s for s in ctx.steps if s.status in _BAD)
        ctx.diagnose(f"{bond} monitors its links and has members with a carrier, yet "
                     f"{failed.name} failed: {failed.detail}")


def _down(ctx: Context, port: str | Port) -> bool:
    link = ctx.link(port)
    return link is None or "UP" not in link["flags"]


# -- 802.3ad ------------------------------------------------------------------------------


def _lacp_steps(bond: str, partner: str) -> list[str]:
    """The 802.3ad steps' names (the ping's key), in the order taken (for `ctx.plan`)."""
    return [f"LACP: every member of {bond} joins its aggregator and distributes",
            *(f"802.3ad flow {flow} from {bond} reaches {partner}'s links"
              for flow in range(_FLOWS)),
            f"802.3ad: every link of {bond} carries traffic",
            f"{bond} pings {partner} over the aggregate"]


def _lacp(ctx: Context, bond: str, partner: str) -> None:
    joined, *flows, carried, pinged = _lacp_steps(bond, partner)
    info = bond_info(ctx, bond)
    if info.get("mode") != "802.3ad":
        raise SpecError(f"{bond} is in mode {info.get('mode')}, not 802.3ad")
    links = members(ctx, bond)
    start = time.perf_counter()
    while not _distributing(ctx, bond) and time.perf_counter() - start < _LACP_LIMIT:
        time.sleep(0.2)
    waited = time.perf_counter() - start
    ports = bond_info(ctx, bond).get("ad_info", {}).get("num_ports", 0)
    ok = ctx.record(joined, _distributing(ctx, bond) and len(links) >= 2,
                    f"{ports} of {len(links)} members aggregated after {waited:.1f} s")
    spread = _spread(ctx, bond, partner, flows)
    used = [port for port, n in spread.items() if n]
    text = ", ".join(f"{port} {n}" for port, n in spread.items())
    ctx.record(carried, ok and len(used) == len(spread) and len(spread) >= 2,
               f"of {_FLOWS} flows: {text}")
    _ping(ctx, bond, partner, "over the aggregate", pinged)
    if any(s.status in _BAD for s in ctx.steps):
        _diagnose_lacp(ctx, bond, partner)


_COLLECTING_DISTRIBUTING = 0x30  # LACP port state bits: collecting (0x10), distributing (0x20)


def _distributing(ctx: Context, bond: str) -> bool:
    """Every member aggregated, and it and its partner collecting and distributing."""
    links = members(ctx, bond)
    if len(links) < 2 or bond_info(ctx, bond).get("ad_info", {}).get("num_ports") != len(links):
        return False
    want = _COLLECTING_DISTRIBUTING
    states = [m.get("linkinfo", {}).get("info_slave_data", {}) for m in links]
    return all(s.get("ad_actor_oper_port_state", 0) & want == want
               and s.get("ad_partner_oper_port_state", 0) & want == want for s in states)


def _spread(ctx: Context, bond: str, partner: str, names: list[str]) -> dict[str, int]:
    """Which of the partner's members each flow (its step named in `names`) arrived at
    (flows differ in the last byte of the destination MAC: the default layer2 hash picks
    the link by it)."""
    far = [str(Port.parse(partner).on(m["ifname"])) for m in members(ctx, partner)]
    counts = dict.fromkeys(far, 0)
    if not far:
        return counts
    src = ctx.topo.mac(bond)
    base = ctx.topo.mac(partner)[:-2]
    for flow, name in enumerate(names):
        frame = udp(src, f"{base}{flow:02x}", "192.0.2.1", "192.0.2.2")
        outcome = ctx.expect(name, frame, bond, at_any(far), match=Match(), timeout=_TIMEOUT)
        for port, report in outcome.reports.items():
            counts[port] = counts.get(port, 0) + (1 if report.copies else 0)
    return counts


def _diagnose_lacp(ctx: Context, bond: str, partner: str) -> None:
    far = bond_info(ctx, partner)
    if far.get("mode") != "802.3ad":
        ctx.diagnose(f"{partner} is in mode {far.get('mode')}, not 802.3ad: it sends no "
                     f"LACPDUs, so {bond}'s members never aggregate and one link carries all")
    for port in (bond, partner):
        host = Port.parse(port).host
        for member in members(ctx, port):
            if "NO-CARRIER" in member["flags"] or "UP" not in member["flags"]:
                ctx.diagnose(f"{host}:{member['ifname']}, a member of {port}, has no carrier")
        ids = {m.get("linkinfo", {}).get("info_slave_data", {}).get("ad_aggregator_id")
               for m in members(ctx, port)}
        if len(ids) > 1:
            ctx.diagnose(f"{port}'s members sit in different aggregators {sorted(map(str, ids))}"
                         ": only one aggregator is active, so only its links carry traffic")
    if not ctx.diagnoses:
        failed = next(s for s in ctx.steps if s.status in _BAD)
        ctx.diagnose(f"both bonds speak LACP and their members have a carrier, yet "
                     f"{failed.name} failed: {failed.detail}")


CHECK = Check(
    name="bond",
    summary="an active-backup bond fails over (time measured); 802.3ad uses every link",
    body=body,
    reference="bond.yaml",
    requires=("veth", "bridge", "bond", "AF_PACKET", "ip"),
    params={
        "bond": Param(
            "the active-backup bond, HOST:BOND ('' to skip)",
            param.optional(param.port()),
        ),
        "peer": Param("a port that reaches it over a switch, HOST:IFNAME", param.port()),
        "lacp": Param("an 802.3ad bond, HOST:BOND ('' to skip)", param.optional(param.port())),
        "lacp_peer": Param(
            "the 802.3ad bond at the other end of its links, HOST:BOND",
            param.port(),
        ),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
