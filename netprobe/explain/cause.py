"""Findings → a short ranked list of causes, each naming a fault in words a person acts on.

Pure logic: the findings (drops attributed to the probe, nft verdicts, counter deltas,
each host's state) are gathered elsewhere. A kernel drop reason on the probe's own
buffer is the strongest evidence; the state at that spot turns it into the fault
(IP_INADDRERRORS on a host with ip_forward 0 is "forwarding disabled"). Counter deltas
stand in when the drop trace is unavailable; state anomalies alone rank lowest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .counters import Delta
from .droptrace import Drop, DropReport
from .nfttrace import TABLE, NftReport

__all__ = ["Cause", "Findings", "HostFacts", "LinkFacts", "rank"]

STRONG, GOOD, COUNTED, STATE, WEAK = 0.95, 0.8, 0.7, 0.5, 0.2


@dataclass(frozen=True)
class Cause:
    """One candidate explanation: what is wrong, the evidence, how sure (0..1)."""

    text: str
    evidence: tuple[str, ...] = ()
    score: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "evidence": list(self.evidence), "score": self.score}

    def render(self) -> str:
        lines = [f"[{self.score:.2f}] {self.text}"]
        return "\n".join(lines + [f"    {e}" for e in self.evidence])


@dataclass(frozen=True)
class LinkFacts:
    """What the kernel says of one device, and what the spec declared for it."""

    name: str
    mac: str | None = None
    master: str | None = None
    declared_master: str | None = None
    port_state: str | None = None  # bridge port STP state, if a bridge port
    up: bool = True
    kind: str | None = None  # "bridge", "veth", …
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostFacts:
    host: str
    sysctls: Mapping[str, str] = field(default_factory=dict)
    links: Mapping[str, LinkFacts] = field(default_factory=dict)
    addresses: tuple[str, ...] = ()
    routes: Mapping[str, str] = field(default_factory=dict)  # "ip route get …" → answer
    fdb: tuple[str, ...] = ()
    conntrack: tuple[str, ...] = ()


@dataclass(frozen=True)
class Findings:
    probe: Mapping[str, Any]  # the decoded probe
    port: str
    drops: DropReport
    nft: tuple[NftReport, ...] = ()
    deltas: tuple[Delta, ...] = ()
    hosts: Mapping[str, HostFacts] = field(default_factory=dict)


def rank(found: Findings) -> list[Cause]:
    """The causes, most likely first; equal texts are merged (evidence joined)."""
    causes: list[Cause] = []
    for drop in found.drops.drops:
        causes.append(_from_drop(found, drop))
    causes += _from_state(found)
    causes += _from_counters(found)
    if not found.drops.drops:
        causes += [
            Cause(f"a drop not attributed to the probe: {d.describe()}", (), WEAK)
            for d in found.drops.others
            if d.protocol == found.probe.get("eth.type")
        ]
    if not causes:
        causes.append(_nothing(found))
    return _merge(causes)


def _merge(causes: list[Cause]) -> list[Cause]:
    merged: dict[str, Cause] = {}
    for cause in causes:
        old = merged.get(cause.text)
        if old is None:
            merged[cause.text] = cause
        else:
            evidence = old.evidence + tuple(e for e in cause.evidence if e not in old.evidence)
            merged[cause.text] = Cause(cause.text, evidence, max(old.score, cause.score))
    return sorted(merged.values(), key=lambda c: -c.score)


def _nothing(found: Findings) -> Cause:
    path = ", ".join(h.describe() for h in found.drops.path) or "no hop seen"
    how = "" if found.drops.available else " (no drop trace: counters and state only)"
    return Cause(f"no drop of the probe was found{how}; it went: {path}", (), 0.1)


def _dst(probe: Mapping[str, Any]) -> str:
    return str(probe.get("ip.dst", probe.get("ip6.dst", "?")))


def _src(probe: Mapping[str, Any]) -> str:
    return str(probe.get("ip.src", probe.get("ip6.src", "?")))


def _from_drop(found: Findings, drop: Drop) -> Cause:
    """The fault behind one attributed drop: the reason, read against the state."""
    facts = found.hosts.get(drop.host or "", HostFacts(drop.host or "?"))
    link = facts.links.get(drop.device or "")
    evidence = (drop.describe(),)
    where = f"{facts.host}:{drop.device}" if drop.device else facts.host
    if link is not None and link.declared_master and link.master != link.declared_master:
        return Cause(_unenslaved(facts.host, link), evidence, STRONG + 0.02)
    reason = drop.reason
    bridges = sorted(n for n, f in facts.links.items() if f.kind == "bridge")
    if reason == "OTHERHOST" and link is not None and _stray(link, bridges):
        return Cause(
            f"{where} is not a port of any bridge (missing master: "
            f"{' or '.join(bridges)}); frames for other hosts die on it",
            evidence,
            STRONG + 0.01,
        )
    if reason == "NETFILTER_DROP":
        return _netfilter(found, drop, evidence)
    return _read_reason(found, facts, drop, link, where)


def _read_reason(
    found: Findings, facts: HostFacts, drop: Drop, link: LinkFacts | None, where: str
) -> Cause:
    """A drop reason and the probe → the fault, in words (GOOD: the reason alone)."""
    reason, probe, evidence = drop.reason, found.probe, (drop.describe(),)
    if reason == "IP_INADDRERRORS" and facts.sysctls.get("net.ipv4.ip_forward") == "0":
        return Cause(_forwarding_off(facts.host), evidence, STRONG + 0.02)
    if reason in ("IP_INNOROUTES", "IP_OUTNOROUTES"):
        return Cause(
            f"{reason} on {facts.host}: no route to {_dst(probe)}" + _lookups(facts),
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
        return Cause(
            f"IP_RPFILTER on {where}: the reverse-path filter refuses source "
            f"{_src(probe)} ({_rp_values(facts, drop.device)})",
            evidence,
            STRONG,
        )
    if reason == "BRIDGE_INGRESS_STP_STATE" and link is not None:
        return Cause(_stp(where, link), evidence, STRONG)
    if reason == "NO_SOCKET":
        proto = {6: "tcp", 17: "udp"}.get(probe.get("ip.proto", probe.get("ip6.nh")), "?")
        return Cause(
            f"NO_SOCKET on {facts.host}: nothing listens on {proto} port "
            f"{probe.get('l4.dport')} of {_dst(probe)}",
            evidence,
            STRONG,
        )
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


def _stray(link: LinkFacts, bridges: list[str]) -> bool:
    """A link that looks meant for a bridge: the host has one, the link has no master
    and no address of its own."""
    return bool(bridges) and link.master is None and not link.addresses and link.kind != "bridge"


def _forwarding_off(host: str) -> str:
    return f"forwarding disabled on {host} (net.ipv4.ip_forward = 0)"


def _unenslaved(host: str, link: LinkFacts) -> str:
    have = f"its master is {link.master}" if link.master else "it has no master"
    return (
        f"{host}:{link.name} is not a port of {link.declared_master}: {have} "
        f"(missing master {link.declared_master})"
    )


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
                if s.kind in ("rule", "policy") and s.table != TABLE
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
                out.append(Cause(_unenslaved(facts.host, link), (), weight + 0.1))
            if link.port_state not in (None, "forwarding", "disabled") and link.up:
                out.append(Cause(_stp(f"{facts.host}:{link.name}", link), (), weight))
        routed = sum(1 for link in facts.links.values() if link.addresses) >= 2
        if (
            facts.sysctls.get("net.ipv4.ip_forward") == "0"
            and facts.host in reached
            and routed
            and _dst(found.probe) not in facts.addresses
        ):
            out.append(Cause(_forwarding_off(facts.host), (), weight))
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
    return delta.name in _COUNTER_CAUSES or delta.name == "IpInAddrErrors"


def _from_counters(found: Findings) -> list[Cause]:
    """Error counters the probe moved, read like the drop reason they stand for."""
    out = []
    attributed = {d.host: d for d in found.drops.drops if d.host}
    for delta in found.deltas:
        facts = found.hosts.get(delta.host, HostFacts(delta.host))
        evidence = (f"counter {delta.describe()}",)
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
        elif delta.name == "IpInAddrErrors" and facts.sysctls.get("net.ipv4.ip_forward") == "0":
            out.append(Cause(_forwarding_off(delta.host), evidence, COUNTED + 0.1))
        elif delta.name in _COUNTER_CAUSES:
            reason = _COUNTER_CAUSES[delta.name]
            drop = Drop(reason, "?", delta.host, None, -1, "")
            cause = _from_drop(found, drop)
            out.append(Cause(cause.text, evidence, COUNTED))
    return out
