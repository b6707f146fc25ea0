"""Forwarding off, read as the kernel reads it: IPv4 by the switch of the interface a
packet comes in by (`net.ipv4.conf.IF.forwarding`; `ip_forward` only sets them all),
IPv6 by `conf.all.forwarding`. Pure logic, like cause.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..traffic._droptrace import RECEIVE
from ._facts import STRONG, Cause, Findings, HostFacts, dst_of, forwarding_off, is_ipv6


def inaddr(
    facts: HostFacts,
    probe: Mapping[str, Any],
    where: str,
    evidence: tuple[str, ...],
    iif: str | None = None,
) -> Cause | None:
    """IP_INADDRERRORS: a router with forwarding off (all of it, or on the interface
    the probe came in by), or a host without the address."""
    v6 = is_ipv6(probe)
    key = facts.forwarding_off(v6, iif)
    router = facts.routes_between(v6)
    dst = dst_of(probe)
    if key is not None and router:
        if dst in facts.addresses:  # its own address, yet routed on: NAT had rewritten it
            evidence += (f"{dst} is {facts.host}'s own: a DNAT rewrite sent the probe on, "
                         "and it had to be forwarded",)  # fmt: skip
        return _forwarding(facts.host, key, evidence)
    if dst != "?" and dst not in facts.addresses and not router:
        return Cause(
            f"{facts.host} does not hold {dst}: {where} took the probe in, but no link of "
            f"{facts.host} has that address and it is no router (IP_INADDRERRORS)",
            evidence,
            STRONG,
        )
    return _forwarding(facts.host, key, evidence) if key is not None else None


def _forwarding(host: str, key: str, evidence: tuple[str, ...]) -> Cause:
    fix = f"in {host}: sysctl -w {key}=1 (it is meant to route)"
    return Cause(forwarding_off(host, key), evidence, STRONG + 0.02, fix)


def forwarding_state(found: Findings, facts: HostFacts, reached: set[str]) -> Cause | None:
    """Forwarding off on a router the probe came into and went no further from, for the
    interface it came in by (a router it passed through forwards, whatever its sysctls)."""
    v6 = is_ipv6(found.probe)
    hops = [h for h in found.drops.path if h.host == facts.host]
    if facts.host not in reached or any(h.event != RECEIVE for h in hops):
        return None
    if dst_of(found.probe) in ("?", *facts.addresses) or not facts.routes_between(v6):
        return None
    key = facts.forwarding_off(v6, hops[0].device if hops else None)
    return _forwarding(facts.host, key, ()) if key is not None else None


def walked_iif(found: Findings, host: str) -> str | None:
    """The device the walk says the probe comes into `host` by (None: not walked there)."""
    return next((s.iif for s in found.path.steps if s.host == host), None)
