"""The spec of a live topology as it was found: what a bundle must rebuild.

A check run on a topology someone changed by hand (a test's sabotage, a user's own
tinkering) must not be replayed on the spec it was built from. Read before the check
starts, the kernel's state tells what differs, where the spec can say it: the sysctls
that decide forwarding, a link's MTU, master and up state, and each ruleset (the live
one replaces the spec's files). What the spec cannot say (links added by hand) is noted.
Only namespaces netprobe owns are read this way.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from ..topology import Topology
from ..topology._model.spec import (
    Bond,
    Bridge,
    Firewall,
    Host,
    Interface,
    OvsBond,
    OvsBridge,
    OvsVxlan,
    Spec,
)

_DECIDING = re.compile(  # the sysctls that decide whether a host forwards
    r"^net\.ipv4\.ip_forward$|^net\.ipv6\.conf\.all\.forwarding$"
    r"|^net\.ipv4\.conf\.[^.]+\.rp_filter$"
)
_IPTABLES_TABLES = {"filter", "nat", "mangle", "raw", "security"}


@dataclass
class AsFound:
    """The spec as found, what changed against the given one, and the live rulesets
    (file name in the bundle → text) its firewall entries name."""

    spec: Spec
    changes: list[str] = field(default_factory=list)
    rulesets: dict[str, str] = field(default_factory=dict)


def as_found(topo: Topology, states: dict[str, dict[str, Any]]) -> AsFound:
    """`topo`'s spec with what `states` (read before the check) says differently."""
    found = AsFound(topo.spec)
    hosts = []
    for host in topo.spec.hosts:
        state = states.get(host.name)
        hosts.append(_host(topo, host, state, found) if host.owned and state else host)
    found.spec = dataclasses.replace(topo.spec, hosts=tuple(hosts))
    return found


def _host(topo: Topology, host: Host, state: dict[str, Any], found: AsFound) -> Host:
    links = {x.get("ifname"): x for x in _list(state.get("links"))}
    interfaces = tuple(_interface(host, i, links.get(i.name), found) for i in host.interfaces)
    known = {i.name for i in host.interfaces} | {"lo"}
    extra = sorted(str(name) for name in links if name not in known)
    if extra:
        found.changes.append(
            f"{host.name} has links the spec does not: {', '.join(extra)} (not rebuilt)"
        )
    return dataclasses.replace(
        host,
        interfaces=interfaces,
        sysctls=_sysctls(host, state.get("sysctls"), found),
        firewall=_firewall(host, state, found),
    )


def _interface(
    host: Host, iface: Interface, link: dict[str, Any] | None, found: AsFound
) -> Interface:
    if link is None or isinstance(iface.kind, (OvsBridge, OvsBond, OvsVxlan)):
        return iface
    where = f"{host.name}:{iface.name}"
    changes: dict[str, Any] = {}
    up = "UP" in link.get("flags", [])
    if up != iface.up:
        changes["up"] = up
    master = link.get("master")
    ovs_port = iface.master is not None and isinstance(
        (host.interface(iface.master) or iface).kind, (OvsBridge, OvsBond)
    )
    if not ovs_port and master != iface.master:
        changes["master"] = master
    mtu = link.get("mtu")
    if not isinstance(iface.kind, (Bridge, Bond)) and mtu != (iface.mtu or 1500):
        changes["mtu"] = mtu
    for key, value in changes.items():
        found.changes.append(f"{where} {key}: {getattr(iface, key)} in the spec, {value} found")
    return dataclasses.replace(iface, **changes) if changes else iface


def _sysctls(host: Host, recorded: Any, found: AsFound) -> tuple[tuple[str, str], ...]:
    """The spec's sysctls, with the deciding ones as found (a fresh namespace has them 0;
    per-interface IPv4 forwarding follows ip_forward and is left out)."""
    out = dict(host.sysctls)
    for key, value in (recorded or {}).items():
        if not _DECIDING.match(key) or out.get(key, "0") == value:
            continue
        before = out.get(key, "unset")
        found.changes.append(f"{host.name} {key}: {before} in the spec, {value} found")
        out[key] = value
    return tuple(out.items())


def _firewall(host: Host, state: dict[str, Any], found: AsFound) -> tuple[Firewall, ...]:
    """The live ruleset in place of the spec's files: nft's text, or iptables-save's where
    iptables made every table (its own extensions do not always read back into nft)."""
    tables = {(t["family"], t["name"]) for t in _tables(state.get("nft_ruleset"))}
    nft_text = str(state.get("nft_ruleset_text") or "").strip()
    v4, v6 = (str(state.get(k) or "") for k in ("iptables_save", "ip6tables_save"))
    uses_iptables = "\n-A " in f"\n{v4}\n{v6}"
    if not tables and not host.firewall:
        return ()
    if not tables:
        found.changes.append(f"{host.name} had no ruleset when the check began")
        return ()
    if uses_iptables and any(name not in _IPTABLES_TABLES for _, name in tables):
        found.changes.append(
            f"{host.name} mixes nft and iptables rules: its rulesets are the "
            "spec's files, which may differ from what ran"
        )
        return host.firewall
    files: list[tuple[str, str, str]] = []
    if uses_iptables:
        files += [("iptables", v4, "v4.rules"), ("ip6tables", v6, "v6.rules")]
    elif nft_text:
        files.append(("nft", nft_text + "\n", "live.nft"))
    out = []
    for kind, text, suffix in files:
        if text.strip():
            name = f"rulesets/{host.name}-{suffix}"
            found.rulesets[name] = text
            out.append(Firewall(kind, name))
    return tuple(out)


def _tables(ruleset: Any) -> list[dict[str, Any]]:
    items = ruleset.get("nftables", []) if isinstance(ruleset, dict) else []
    return [x["table"] for x in items if isinstance(x, dict) and "table" in x]


def _list(value: Any) -> list[dict[str, Any]]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []
