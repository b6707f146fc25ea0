"""What ranking reads: the findings of one re-sent probe and the state around it.

Plain data, gathered by explanation.py and read by cause.py (drops and counters),
delivery.py (what the failed expectation saw) and anomaly.py (state on the probe's path).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..topology._kernel.state import LiveRoute
from ..traffic._droptrace import DropReport
from ._counters import Delta
from ._nfttrace import NftReport
from ._walk import Device, Step

STRONG, GOOD, COUNTED, STATE, WEAK = 0.95, 0.8, 0.7, 0.5, 0.2


@dataclass(frozen=True)
class Cause:
    """One candidate explanation: what is wrong, the evidence, how sure (0..1)."""

    text: str
    evidence: tuple[str, ...] = ()
    score: float = 0.0
    fix: str | None = None  # what to do about it, in words (None: nothing to suggest)

    def to_dict(self) -> dict[str, Any]:
        """The cause as the results document holds it."""
        out: dict[str, Any] = {"text": self.text, "evidence": list(self.evidence)}
        out["score"] = self.score
        if self.fix:
            out["fix"] = self.fix
        return out

    def render(self) -> str:
        """The cause with its score, its evidence indented below, and the fix."""
        lines = [f"[{self.score:.2f}] {self.text}"] + [f"    {e}" for e in self.evidence]
        return "\n".join(lines + ([f"    fix: {self.fix}"] if self.fix else []))


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
    addresses: tuple[str, ...] = ()  # IPv4
    mtu: int | None = None
    learning: bool | None = None  # bridge ports only
    flood: bool | None = None  # bridge ports only
    ageing: float | None = None  # bridges only, seconds
    peer: str | None = None  # a veth's peer, when in the same namespace
    addresses6: tuple[str, ...] = ()  # IPv6, link-local left out


@dataclass(frozen=True)
class HostFacts:
    """One host's state around a probe: sysctls, links, addresses, routes, fdb, conntrack, NAT."""

    host: str
    sysctls: Mapping[str, str] = field(default_factory=dict)
    links: Mapping[str, LinkFacts] = field(default_factory=dict)
    addresses: tuple[str, ...] = ()
    routes: Mapping[str, str] = field(default_factory=dict)  # "ip route get …" → answer
    fdb: tuple[str, ...] = ()
    conntrack: tuple[str, ...] = ()
    nat: tuple[str, ...] | None = None  # NAT rules of its ruleset (None: not read)
    back: LiveRoute | None = None  # its route to the probe's source (None: none, or not read)

    def forwarding_off(self, ipv6: bool, iif: str | None = None) -> str | None:
        """The sysctl whose 0 keeps this host from forwarding what arrives on `iif` (None:
        it forwards, or the sysctls cannot tell). IPv4 forwards by the input interface's
        own switch (`conf.IF.forwarding`; `ip_forward` only sets them all), IPv6 by
        `conf.all.forwarding` (or the input interface's `force_forwarding`)."""
        if ipv6:
            forced = iif is not None and self.sysctls.get(
                f"net.ipv6.conf.{iif}.force_forwarding") == "1"  # fmt: skip
            off = self.sysctls.get("net.ipv6.conf.all.forwarding") == "0" and not forced
            return "net.ipv6.conf.all.forwarding" if off else None
        every = self.sysctls.get("net.ipv4.ip_forward")
        per = {
            name: value
            for name, link in self.links.items()
            if name != "lo" and link.kind != "loopback"
            and (value := self.sysctls.get(f"net.ipv4.conf.{name}.forwarding")) is not None
        }  # fmt: skip
        own = per.get(iif or "")
        if own is not None and own != "0":
            return None
        if every == "0" and all(v == "0" for v in per.values()):
            return "net.ipv4.ip_forward"  # the whole host, as ip_forward=0 leaves it
        return f"net.ipv4.conf.{iif}.forwarding" if own == "0" else None

    def routes_between(self, ipv6: bool) -> bool:
        """Two or more links with addresses of the family (lo aside): a router."""
        return (
            sum(
                1
                for link in self.links.values()
                if link.kind != "loopback"
                and link.name != "lo"
                and (link.addresses6 if ipv6 else link.addresses)
            )
            >= 2
        )


@dataclass(frozen=True)
class Delivery:
    """What the failed expectation saw, in the terms ranking needs."""

    expected: tuple[str, ...] = ()  # ports that had to see the probe
    missing: tuple[str, ...] = ()  # … and never did
    leaked: tuple[str, ...] = ()  # ports that saw it and must not
    altered: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # port → diffs
    reply: bool = False  # the expected frame is the destination's answer
    rewrites: Mapping[str, Any] = field(default_factory=dict)  # field → expected value
    dests: tuple[tuple[str, str], ...] = ()  # (host, kernel device) of expected ports
    devices: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # port → same


@dataclass(frozen=True)
class StaleNeighbour:
    """A host's neighbour entry for its next hop that names a MAC the holder has not."""

    host: str
    ip: str
    dev: str
    mac: str | None
    state: str
    holder: Device  # who holds `ip` now
    holder_mac: str


@dataclass(frozen=True)
class PathFacts:
    """The probe's way as the kernels' tables say (see walk.py), and the way back."""

    steps: tuple[Step, ...] = ()  # from the first host after the sender
    back: tuple[Step, ...] = ()  # an answer from where it ends to the probe's source
    sender_route: LiveRoute | None = None  # the sender's own route to the destination
    walked: bool = False  # False: the sender's host is unknown, nothing was walked
    stale: tuple[StaleNeighbour, ...] = ()  # neighbour entries that name the wrong MAC
    own_src_back: tuple[Step, ...] = ()  # the way back to the source the sender would pick
    sender_addresses: tuple[str, ...] = ()
    dont_fragment: bool = False  # the probe may not be fragmented on the way


@dataclass(frozen=True)
class Findings:
    """All gathered around one re-sent probe: drops, nft traces, counter deltas, hosts' state."""

    probe: Mapping[str, Any]  # the decoded probe
    port: str
    drops: DropReport
    nft: tuple[NftReport, ...] = ()
    deltas: tuple[Delta, ...] = ()
    hosts: Mapping[str, HostFacts] = field(default_factory=dict)
    delivery: Delivery | None = None
    peers: Mapping[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    sender: tuple[str, str] | None = None  # (host, kernel device) the probe went into
    frame_len: int = 0
    path: PathFacts = field(default_factory=PathFacts)


def is_ipv6(probe: Mapping[str, Any]) -> bool:
    """True when the decoded probe is IPv6."""
    return "ip6.dst" in probe


def dst_of(probe: Mapping[str, Any]) -> str:
    """The decoded probe's destination IP ("?" for none)."""
    return str(probe.get("ip.dst", probe.get("ip6.dst", "?")))


def src_of(probe: Mapping[str, Any]) -> str:
    """The decoded probe's source IP ("?" for none)."""
    return str(probe.get("ip.src", probe.get("ip6.src", "?")))


def unicast_dst(probe: Mapping[str, Any]) -> str | None:
    """The probe's destination MAC (lower case) when it is unicast; None for broadcast,
    multicast (the group bit, the first octet's lowest) or a probe without one."""
    mac = str(probe.get("eth.dst", "")).lower()
    if not mac or int(mac.split(":")[0] or "1", 16) & 1:
        return None
    return mac


def forwarding_off(host: str, key: str) -> str:
    """The cause text for IP forwarding disabled on `host` by sysctl `key` (see
    HostFacts.forwarding_off): the whole host, or what arrives on one interface."""
    if key.startswith("net.ipv4.conf."):
        iif = key.removeprefix("net.ipv4.conf.").removesuffix(".forwarding")
        return f"forwarding disabled on {host} for what arrives on {iif} ({key} = 0)"
    if key.startswith("net.ipv6."):
        return f"IPv6 forwarding disabled on {host} ({key} = 0)"
    return f"forwarding disabled on {host} ({key} = 0)"


def unenslaved(host: str, link: LinkFacts) -> str:
    """The cause text for `link` lacking the master the spec declared."""
    have = f"its master is {link.master}" if link.master else "it has no master"
    return (
        f"{host}:{link.name} is not a port of {link.declared_master}: {have} "
        f"(missing master {link.declared_master})"
    )


def _bridges(facts: HostFacts) -> list[str]:
    return sorted(n for n, f in facts.links.items() if f.kind == "bridge")


def stray(facts: HostFacts, link: LinkFacts) -> bool:
    """A link that looks meant for a bridge: its host has one, the link has no master
    and no address of its own."""
    return (
        bool(_bridges(facts))
        and link.master is None
        and not link.addresses
        and not link.addresses6
        and link.kind not in ("bridge", "loopback")
    )


def stray_text(facts: HostFacts, link: LinkFacts) -> str:
    """The cause text for `link` in no bridge of a host that has some."""
    return (
        f"{facts.host}:{link.name} is not a port of any bridge (missing master: "
        f"{' or '.join(_bridges(facts))}); frames for other hosts die on it"
    )


def stp_fix(host: str, link: LinkFacts) -> str:
    """What to do about a bridge port that does not forward."""
    return (
        f"in {host}: find why STP keeps {link.name} from forwarding (a loop, the forward "
        f"delay), or without STP: bridge link set dev {link.name} state 3"
    )


@dataclass(frozen=True)
class Rewrite:
    """Where a host's NAT sent the probe, by its conntrack entry: the destination (and
    port) its answer comes from."""

    host: str
    dst: str
    dport: Any
    entry: str


def _tuples(entry: str) -> tuple[dict[str, str], dict[str, str]]:
    """A conntrack entry's original and reply tuples (src, dst, sport, dport)."""
    original: dict[str, str] = {}
    reply: dict[str, str] = {}
    for token in entry.split():
        key, sep, value = token.partition("=")
        if sep and key in ("src", "dst", "sport", "dport"):
            (reply if key in original else original).setdefault(key, value)
    return original, reply


def natted(found: Findings) -> Rewrite | None:
    """The probe's destination after DNAT, from the conntrack entry of its own tuple on
    a host of the way (None: no entry, or no rewrite of its destination)."""
    probe = found.probe
    want = {"src": src_of(probe), "dst": dst_of(probe)}
    if probe.get("l4.sport") is not None:
        want |= {"sport": str(probe.get("l4.sport")), "dport": str(probe.get("l4.dport"))}
    for facts in found.hosts.values():
        for entry in facts.conntrack:
            original, reply = _tuples(entry)
            if any(original.get(k) != v for k, v in want.items()) or "src" not in reply:
                continue
            if (reply["src"], reply.get("sport")) == (want["dst"], want.get("dport")):
                continue
            sport = reply.get("sport")
            return Rewrite(facts.host, reply["src"], int(sport) if sport else None, entry)
    return None
