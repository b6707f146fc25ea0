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


def forwarding_off(host: str, ipv6: bool = False, iif: str | None = None) -> str:
    """The cause text for IP forwarding disabled on `host` (for what arrives on `iif`
    alone, when only that interface's own switch is off)."""
    if iif is not None:
        return (
            f"forwarding disabled on {host} for what arrives on {iif} "
            f"(net.ipv4.conf.{iif}.forwarding = 0)"
        )
    if ipv6:
        return f"IPv6 forwarding disabled on {host} (net.ipv6.conf.all.forwarding = 0)"
    return f"forwarding disabled on {host} (net.ipv4.ip_forward = 0)"


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
