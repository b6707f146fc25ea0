"""`netprobe probe` on a network netprobe did not build: each fault is seeded by hand with
plain `ip`/`nft`/`sysctl`, the probe FAILs and ranks that fault first; repaired by hand,
the same probe PASSes. The site is discovered from the sender's namespace name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from support.site import Site, build_site

from netprobe.diagnose import Diagnosis, probe

pytestmark = pytest.mark.root

NFT_DROP_SSH = """
table inet site_filter {
    chain forward { type filter hook forward priority 0; tcp dport 22 drop; }
}
"""
MASQUERADE = """
table ip site_nat {
    chain post { type nat hook postrouting priority 100; oifname "%s" masquerade; }
}
"""


@dataclass(frozen=True)
class Fault:
    """A fault seeded by hand, the probe that meets it, how it must end, words its first
    cause must carry, and the hand repair after which the probe must pass."""

    name: str
    seed: Callable[[Site], None]
    repair: Callable[[Site], None]
    service: str
    ending: str  # or several, "|"-separated
    cause: tuple[str, ...]  # every one of these (lower case) in the first cause's text
    size: int | None = None


def _asymmetric_source(site: Site) -> None:
    """a reaches b from a second address that r1 routes by another link: a strict
    rp_filter on r1 drops what arrives on e0."""
    from support.site import _run

    _run(["ip", "link", "add", "e1", "netns", site.ns["a"], "type", "veth", "peer", "name",
          "e2", "netns", site.ns["r1"]])
    site.ip("a", "addr", "add", "10.70.9.2/24", "dev", "e1")
    site.ip("r1", "addr", "add", "10.70.9.1/24", "dev", "e2")
    for host, ifname in (("a", "e1"), ("r1", "e2")):
        site.ip(host, "link", "set", ifname, "up")
    site.ip("a", "route", "replace", "10.70.3.0/24", "via", "10.70.1.1", "src", "10.70.9.2")
    site.ip("r2", "route", "add", "10.70.9.0/24", "via", "10.70.2.1")
    # a's ARP asks from e0's own address (else r1's rp_filter ignores the ARP already)
    site.sysctl("a", "net.ipv4.conf.e0.arp_announce", "2")
    for key in ("all", "e0"):
        site.sysctl("r1", f"net.ipv4.conf.{key}.rp_filter", "1")


def _loose(site: Site) -> None:
    for key in ("all", "e0"):
        site.sysctl("r1", f"net.ipv4.conf.{key}.rp_filter", "2")


def _stop_listener(site: Site) -> None:
    for proc in site.listeners:
        proc.kill()
        proc.wait()
    site.listeners.clear()


def _restart_listener(site: Site) -> None:
    from support.site import _listen

    _listen(site)


def _forget_failed(site: Site) -> None:
    """After a neighbour went unanswered, r2 keeps answering "host unreachable" from its
    failed entry for a while; flushing it is part of the repair, as for a person."""
    site.ip("r2", "neigh", "flush", "dev", "e1")


FAULTS = [
    Fault("forwarding off", lambda s: s.sysctl("r1", "net.ipv4.ip_forward", "0"),
          lambda s: s.sysctl("r1", "net.ipv4.ip_forward", "1"),
          "tcp/22", "DROPPED", ("forwarding", "r1")),
    Fault("missing return route", lambda s: s.ip("r2", "route", "del", "10.70.1.0/24"),
          lambda s: s.ip("r2", "route", "add", "10.70.1.0/24", "via", "10.70.2.1"),
          "tcp/22", "DROPPED", ("route", "r2", "10.70.1.2")),
    Fault("strict rp_filter, asymmetric source", _asymmetric_source, _loose,
          "icmp", "DROPPED", ("rp_filter", "r1")),
    Fault("nft drop rule", lambda s: s.nft("r2", NFT_DROP_SSH),
          lambda s: s.sh("r2", "nft", "delete", "table", "inet", "site_filter"),
          "tcp/22", "DROPPED", ("tcp dport 22 drop",)),
    Fault("forgotten master br0", lambda s: s.ip("sw", "link", "set", "p2", "nomaster"),
          lambda s: (s.ip("sw", "link", "set", "p2", "master", "br0"), _forget_failed(s)),
          "icmp", "NO_NEIGHBOUR", ("p2", "master", "br0")),
    Fault("wrong permanent neighbour",
          lambda s: s.ip("a", "neigh", "replace", "10.70.1.1", "lladdr", "02:00:00:00:00:99",
                         "dev", "e0", "nud", "permanent"),
          lambda s: s.ip("a", "neigh", "del", "10.70.1.1", "dev", "e0"),
          "icmp", "DROPPED", ("neighbour", "10.70.1.1", "02:00:00:00:00:99")),
    Fault("MTU mismatch", lambda s: s.ip("b", "link", "set", "e0", "mtu", "1400"),
          lambda s: s.ip("b", "link", "set", "e0", "mtu", "1500"),
          "icmp", "DROPPED", ("mtu", "1400"), size=1472),
    Fault("closed UDP port", _stop_listener, _restart_listener,
          "udp/53", "REFUSED", ("udp port 53", "listen")),
    Fault("masquerade on the wrong interface",
          lambda s: (s.ip("r2", "route", "del", "10.70.1.0/24"), s.nft("r1", MASQUERADE % "e0")),
          lambda s: (s.sh("r1", "nft", "delete", "table", "ip", "site_nat"),
                     s.nft("r1", MASQUERADE % "e1")),
          "tcp/22", "DROPPED", ("masquerade", "e0", "e1")),
    Fault("no route on the sender", lambda s: s.ip("a", "route", "del", "default"),
          lambda s: s.ip("a", "route", "add", "default", "via", "10.70.1.1"),
          "icmp", "NO_ROUTE", ("route", "a", "10.70.3.2")),
    Fault("server link down", lambda s: s.ip("b", "link", "set", "e0", "down"),
          lambda s: (s.ip("b", "link", "set", "e0", "up"),  # the kernel dropped its route
                     s.ip("b", "route", "add", "default", "via", "10.70.3.1"),
                     _forget_failed(s)),
          "icmp", "NO_NEIGHBOUR|DROPPED", ("b", "e0", "down")),
    Fault("routing loop",
          lambda s: s.ip("r2", "route", "replace", "10.70.3.0/24", "via", "10.70.2.1"),
          lambda s: s.ip("r2", "route", "replace", "10.70.3.0/24", "dev", "e1", "src",
                         "10.70.3.1"),
          "icmp", "LOOPED", ("loop", "r1", "r2")),
]


@pytest.fixture
def site() -> Iterator[Site]:
    made = build_site()
    try:
        yield made
    finally:
        made.remove()


def _probe(site: Site, fault: Fault, timeout: float = 1.0) -> Diagnosis:
    return probe(site.ns["a"], "10.70.3.2", fault.service, size=fault.size, timeout=timeout)


def test_the_healthy_site_is_reached_on_every_service(site: Site) -> None:
    for service in ("icmp", "tcp/22", "udp/53"):
        found = probe(site.ns["a"], "10.70.3.2", service)
        assert found.ok, found.render()
    assert len(found.hosts) == 5  # a, r1, r2, sw and b: discovered from a alone


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_a_fault_made_by_hand_is_found_and_ranked_first(site: Site, fault: Fault) -> None:
    fault.seed(site)
    broken = _probe(site, fault)
    assert not broken.ok, broken.render()
    assert broken.result.ending.name in fault.ending.split("|"), broken.render()
    assert broken.explanation is not None and broken.explanation.top is not None, broken.render()
    top = broken.explanation.top.text.lower()
    missing = [word for word in fault.cause if word.lower() not in top]
    assert not missing, f"{missing} not in the first cause:\n{broken.render()}"
    fault.repair(site)
    repaired = _probe(site, fault, timeout=5)  # a neighbour that failed is asked again in 1 s
    assert repaired.ok, repaired.render()
