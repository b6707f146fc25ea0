"""Findings → a short ranked list of causes, each naming a fault in words a person acts on.

Pure logic: the findings (drops attributed to the probe, nft verdicts, counter deltas,
each host's state, what the failed expectation saw) are gathered elsewhere. What the
expectation saw comes first when the probe arrived (a leak, a missing rewrite: no drop
explains those, see delivery.py). A kernel drop reason on the probe's own buffer is the
strongest evidence of the rest; the state at that spot turns it into the fault
(IP_INADDRERRORS on a router whose input interface forwards nothing is "forwarding
disabled": see forward.py). State that breaks the probe's own path (a device down, out
of its bridge: anomaly.py) ranks with the drops. Counter deltas stand in when the drop
trace is unavailable; other state anomalies rank lowest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..traffic._droptrace import RECEIVE, Drop
from ._anomaly import on_path
from ._counters import Delta
from ._delivery import delivered
from ._facts import (
    COUNTED,
    GOOD,
    STATE,
    STRONG,
    WEAK,
    Cause,
    Findings,
    HostFacts,
    LinkFacts,
    Rewrite,
    dst_of,
    natted,
    src_of,
    stp_fix,
    stray,
    stray_text,
    unenslaved,
)
from ._forward import forwarding_state, inaddr, walked_iif
from ._nfttrace import own_table
from ._route import from_path, masquerade_oif

DELIVERY_ONLY = 0.3  # a drop that only says the frame reached a stack that discarded it


def rank(found: Findings) -> list[Cause]:
    """The causes, most likely first; equal texts are merged (evidence joined)."""
    causes = delivered(found) + masquerade_oif(found)
    for drop in found.drops.drops:
        if not _beside_the_point(found, drop.reason, drop.host):
            causes.append(_from_drop(found, drop))
    causes += on_path(found)
    causes += from_path(found)
    causes += _from_state(found)
    causes += _from_counters(found)
    if not found.drops.drops and not _fate_known(found):
        causes += [
            Cause(f"a drop not attributed to the probe: {d.describe()}", (), WEAK)
            for d in found.drops.others
            if d.protocol == found.probe.get("eth.type") and not _an_answer(found, d)
        ]
    if not causes:
        causes.append(_nothing(found))
    return _merge(causes)


def _beside_the_point(found: Findings, reason: str, host: str | None) -> bool:
    """A drop by a stack with no taker that is not why the probe failed: an answer come
    back to the sender (an echo reply no ping socket takes), or the probe on the host it
    was expected to reach, where no listener was asked for (the discard port)."""
    if reason not in ("NO_SOCKET", "UNHANDLED_PROTO"):
        return False
    if found.sender is not None and host == found.sender[0]:
        return True
    got = found.delivery
    if got is None or got.reply:
        return False
    redirected = any(k.endswith(".dst") or k == "l4.dport" for k in got.rewrites)
    return host in {h for h, _dev in got.dests} and not redirected


def _fate_known(found: Findings) -> bool:
    """The probe was seen to arrive (by the expectation, or by the trace on the host
    holding its destination, or an expected one): other buffers' drops in the window
    are other traffic's (the machine's, other tests'), not leads."""
    got = found.delivery
    if got is not None and (got.altered or got.leaked):
        return True
    ends = {h for h, _dev in got.dests} if got is not None else set()
    dst = dst_of(found.probe)
    return any(
        hop.event == RECEIVE and hop.host is not None and (
            hop.host in ends or dst in found.hosts.get(hop.host, HostFacts(hop.host)).addresses)
        for hop in found.drops.path
    )  # fmt: skip


def _an_answer(found: Findings, drop: Drop) -> bool:
    """An echo reply dropped where no ping socket takes it, while the probe is the echo
    request: its answer (or a barrier's), not the probe."""
    request = found.probe.get("icmp.type") in (8, 128)
    return request and drop.location.startswith(("ping_rcv", "ping_v6_rcv"))


def _merge(causes: list[Cause]) -> list[Cause]:
    merged: dict[str, Cause] = {}
    for cause in causes:
        old = merged.get(cause.text)
        if old is None:
            merged[cause.text] = cause
        else:
            evidence = old.evidence + tuple(e for e in cause.evidence if e not in old.evidence)
            score, fix = max(old.score, cause.score), old.fix or cause.fix
            merged[cause.text] = Cause(cause.text, evidence, score, fix)
    return sorted(merged.values(), key=lambda c: -c.score)


def _nothing(found: Findings) -> Cause:
    path = ", ".join(h.describe() for h in found.drops.path) or "no hop seen"
    how = "" if found.drops.available else " (no drop trace: counters and state only)"
    return Cause(f"no drop of the probe was found{how}; it went: {path}", (), 0.1)


def _from_drop(found: Findings, drop: Drop) -> Cause:
    """The fault behind one attributed drop: the reason, read against the state."""
    facts = found.hosts.get(drop.host or "", HostFacts(drop.host or "?"))
    link = facts.links.get(drop.device or "")
    evidence = (drop.describe(),)
    where = f"{facts.host}:{drop.device}" if drop.device else facts.host
    if link is not None and link.declared_master and link.master != link.declared_master:
        return Cause(unenslaved(facts.host, link), evidence, STRONG + 0.02)
    reason = drop.reason
    if reason == "OTHERHOST" and link is not None and stray(facts, link):
        return Cause(stray_text(facts, link), evidence, STRONG + 0.01)
    if reason == "NETFILTER_DROP":
        return _netfilter(found, drop, evidence)
    return _read_reason(found, facts, drop, link, where)


def _read_reason(
    found: Findings, facts: HostFacts, drop: Drop, link: LinkFacts | None, where: str
) -> Cause:
    """A drop reason and the probe → the fault, in words (GOOD: the reason alone)."""
    reason, probe, evidence = drop.reason, found.probe, (drop.describe(),)
    if reason == "IP_INADDRERRORS":
        cause = inaddr(facts, probe, where, evidence, drop.device)
        if cause is not None:
            return cause
    if reason in ("IP_INNOROUTES", "IP_OUTNOROUTES"):
        return Cause(
            f"{reason} on {facts.host}: no route to {dst_of(probe)}" + _lookups(facts),
            evidence,
            STRONG,
        )
    if reason == "OTHERHOST" and link is not None:
        return Cause(
            f"OTHERHOST on {where}: destination MAC {probe.get('eth.dst')} is not "
            f"{where}'s ({link.mac})",
            evidence,
            STRONG,
        )
    if reason == "IP_RPFILTER":
        return _rpfilter(facts, src_of(probe), drop.device, where, evidence)
    if reason == "BRIDGE_INGRESS_STP_STATE" and link is not None:
        return Cause(_stp(where, link), evidence, STRONG, stp_fix(facts.host, link))
    if reason in ("NO_SOCKET", "UNHANDLED_PROTO"):
        return _arrived(facts.host, where, reason, probe, evidence, natted(found))
    if reason.endswith("_CSUM"):
        layer = reason.removesuffix("_CSUM").replace("IP", "IPv4 header")
        return Cause(
            f"{reason} on {where}: the probe's {layer} checksum is wrong", evidence, STRONG
        )
    if reason == "IP_INHDR" and int(probe.get("ip.ttl", probe.get("ip6.hlim", 64))) <= 1:
        return Cause(
            f"IP_INHDR on {facts.host}: TTL {probe.get('ip.ttl', probe.get('ip6.hlim'))}"
            " expired in transit (the router sends time exceeded)",
            evidence,
            STRONG,
        )
    return Cause(f"{reason} on {where}", evidence, GOOD)


def _arrived(
    host: str,
    where: str,
    reason: str,
    probe: Mapping[str, Any],
    evidence: tuple[str, ...],
    nat: Rewrite | None = None,
) -> Cause:
    """Drops that say the probe got to a stack, which had no taker for it (named as it
    was there: after the DNAT a conntrack entry shows)."""
    if reason == "UNHANDLED_PROTO":
        return Cause(
            f"UNHANDLED_PROTO on {where}: the frame reached {where}'s own stack, which has "
            f"no handler for ethertype {_ethertype(probe)} (delivered there, then discarded)",
            evidence,
            DELIVERY_ONLY,
        )
    dst, dport, how = dst_of(probe), probe.get("l4.dport"), ""
    if nat is not None and (nat.dst, nat.dport) != (dst, dport):
        how = f" ({nat.host}'s DNAT rewrote {_hostport(dst, dport)} to it)"
        evidence += (f"conntrack on {nat.host}: {nat.entry}",)
        dst, dport = nat.dst, nat.dport
    proto = {6: "tcp", 17: "udp"}.get(probe.get("ip.proto", probe.get("ip6.nh")))
    if proto is None:
        return Cause(
            f"NO_SOCKET on {host}: no socket takes this packet for {dst}{how}",
            evidence,
            GOOD,
        )
    return Cause(
        f"NO_SOCKET on {host}: nothing listens on {proto} port {dport} of {dst}{how}",
        evidence,
        STRONG,
    )


def _hostport(address: str, port: Any) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _rpfilter(
    facts: HostFacts, src: str, device: str | None, where: str, evidence: tuple[str, ...]
) -> Cause:
    """IP_RPFILTER: strict reverse-path filtering, and the route back that fails it."""
    text = (
        f"IP_RPFILTER on {where}: the reverse-path filter refuses source {src} "
        f"({_rp_values(facts, device)})"
    )
    back = facts.back
    if back is not None and device and back.dev and back.dev != device:
        text += (
            f"; {facts.host}'s route back to {src} leaves by {back.dev}, not by {device} "
            "where it came in (an asymmetric source)"
        )
    elif back is None and device:
        text += f"; {facts.host} has no route back to {src}"
    strict = [k for k in ("all", device) if k and facts.sysctls.get(
        f"net.ipv4.conf.{k}.rp_filter") == "1"]  # fmt: skip
    keys = " and ".join(f"net.ipv4.conf.{k}.rp_filter=2" for k in strict) or (
        f"net.ipv4.conf.{device}.rp_filter=2")  # fmt: skip
    fix = (
        f"in {facts.host}: loose mode, sysctl -w {keys} (the higher of all and the "
        f"interface counts), or a route to {src} by {device}"
    )
    return Cause(text, evidence, STRONG, fix)


def _ethertype(probe: Mapping[str, Any]) -> str:
    value = probe.get("eth.type")
    return f"0x{value:04x}" if isinstance(value, int) else "?"


def _stp(where: str, link: LinkFacts) -> str:
    return f"bridge port {where} of {link.master} is in STP state {link.port_state}"


def _lookups(facts: HostFacts) -> str:
    return "".join(f" ({q}: {a})" for q, a in facts.routes.items())


def _rp_values(facts: HostFacts, device: str | None) -> str:
    keys = ["all", "default"] + ([device] if device else [])
    return ", ".join(
        f"rp_filter {k}={facts.sysctls.get(f'net.ipv4.conf.{k}.rp_filter', '?')}" for k in keys
    )


def _netfilter(found: Findings, drop: Drop, evidence: tuple[str, ...]) -> Cause:
    for report in found.nft:
        final = report.verdict
        if report.host == drop.host and final is not None:
            trail = tuple(
                s.describe()
                for s in report.steps
                if s.kind in ("rule", "policy") and not own_table(s.table)
            )
            return Cause(
                f"nft {final.describe()} on {report.host} gave `{final.action}`",
                evidence + trail,
                STRONG + 0.02,
            )
    for delta in found.deltas:
        if delta.kind == "nft" and delta.host == drop.host and " drop" in f" {delta.detail}":
            return Cause(
                f"nft rule `{delta.detail}` on {delta.host} dropped it (its counter moved)",
                (*evidence, delta.describe()),
                STRONG,
            )
    return Cause(
        f"NETFILTER_DROP on {drop.host}: a netfilter rule dropped it (not traceable "
        "with nft: iptables-legacy or ebtables?)",
        evidence,
        GOOD,
    )


def _reached(found: Findings) -> set[str]:
    return {h.host for h in found.drops.path if h.host and h.event == "netif_receive_skb"}


def _from_state(found: Findings) -> list[Cause]:
    """Anomalies in the state, scored higher where the probe is known to have gone."""
    out = []
    reached = _reached(found)
    for facts in found.hosts.values():
        weight = STATE + (0.15 if facts.host in reached else 0.0)
        for link in facts.links.values():
            if link.declared_master and link.master != link.declared_master:
                out.append(Cause(unenslaved(facts.host, link), (), weight + 0.1))
            if link.port_state not in (None, "forwarding", "disabled") and link.up:
                where = f"{facts.host}:{link.name}"
                out.append(Cause(_stp(where, link), (), weight, stp_fix(facts.host, link)))
        off = forwarding_state(found, facts, reached)
        if off is not None:
            out.append(Cause(off.text, (), weight, off.fix))
    return out


_COUNTER_CAUSES = {
    "IpInNoRoutes": "IP_INNOROUTES",
    "Ip6InNoRoutes": "IP_INNOROUTES",
    "IpInHdrErrors": "IP_INHDR",
    "Ip6InHdrErrors": "IP_INHDR",
    "UdpNoPorts": "NO_SOCKET",
    "Udp6NoPorts": "NO_SOCKET",
    "UdpInCsumErrors": "UDP_CSUM",
    "Udp6InCsumErrors": "UDP_CSUM",
    "TcpInCsumErrors": "TCP_CSUM",
    "IpExtInCsumErrors": "IP_CSUM",
    "TcpExtIPReversePathFilter": "IP_RPFILTER",
}


def _is_error(delta: Delta) -> bool:
    if delta.kind == "nft":
        return " drop" in f" {delta.detail}" or "reject" in delta.detail
    return delta.name in _COUNTER_CAUSES or delta.name in ("IpInAddrErrors", "Ip6InAddrErrors")


def _from_counters(found: Findings) -> list[Cause]:
    """Error counters the probe moved, read like the drop reason they stand for."""
    out = []
    attributed = {d.host: d for d in found.drops.drops if d.host}
    for delta in found.deltas:
        facts = found.hosts.get(delta.host, HostFacts(delta.host))
        evidence = (f"counter {delta.describe()}",)
        reason = _COUNTER_CAUSES.get(delta.name, "")
        if _beside_the_point(found, reason, delta.host):
            continue
        if delta.host in attributed and _is_error(delta):
            # the same drop, counted: evidence for the cause the trace gave
            cause = _from_drop(found, attributed[delta.host])
            out.append(Cause(cause.text, evidence, COUNTED))
        elif delta.kind == "nft" and " drop" in f" {delta.detail}" and delta.change > 0:
            out.append(
                Cause(
                    f"nft rule `{delta.detail}` on {delta.host} dropped it (its counter moved)",
                    evidence,
                    COUNTED + 0.1,
                )
            )
        elif delta.name in ("IpInAddrErrors", "Ip6InAddrErrors"):
            iif = walked_iif(found, delta.host)
            named = inaddr(facts, found.probe, delta.host, evidence, iif)
            if named is not None:
                out.append(Cause(named.text, evidence, COUNTED + 0.1))
        elif reason:
            drop = Drop(reason, "?", delta.host, None, -1, "")
            cause = _from_drop(found, drop)
            out.append(Cause(cause.text, evidence, COUNTED))
    return out
