"""The state of a host that bears on its data path, as JSON: what a bug report carries.

One shell per host reads everything in a single `ip netns exec`, each section behind a
marker line: links, addresses, routes, neighbours, the bridge FDB and ports, the sysctls
that decide forwarding and filtering, the nft ruleset, iptables-save and conntrack.
A namespace netprobe was asked to work in (adopted) is shown whole, as it is what the
bundle rebuilds. For the machine's own namespace (a root host) only the topology's links
are shown: its routes, rulesets and connections are none of a bug report's business.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from ..topology import Topology

_SYSCTLS = (
    r"^net\.(ipv4\.(ip_forward|conf\..*\.(rp_filter|forwarding|accept_local|route_localnet"
    r"|arp_ignore|arp_announce|proxy_arp))|ipv6\.conf\..*\.(forwarding|disable_ipv6|accept_dad)"
    r"|bridge\..*)$"
)

# name → (shell command, how its output is kept: "json", "text" or "sysctl")
SECTIONS: dict[str, tuple[str, str]] = {
    "links": ("ip -d -j -s link show", "json"),
    "addresses": ("ip -j addr show", "json"),
    "routes": ("ip -j route show table all", "json"),
    "routes6": ("ip -j -6 route show table all", "json"),
    "rules": ("ip -j rule show", "json"),
    "neighbours": ("ip -j neigh show", "json"),
    "fdb": ("bridge -j fdb show", "json"),
    "bridge_ports": ("bridge -j -d link show", "json"),
    "sysctls": (f"sysctl -a --pattern {shlex.quote(_SYSCTLS)} 2>/dev/null", "sysctl"),
    "nft_ruleset": ("nft -j list ruleset", "json"),
    "nft_ruleset_text": ("nft list ruleset", "text"),
    "iptables_save": ("iptables-save", "text"),
    "ip6tables_save": ("ip6tables-save", "text"),
    "conntrack": ("cat /proc/net/nf_conntrack", "text"),
}
_FOREIGN_SECTIONS = ("links", "addresses")  # all that is shown of the machine's own
_MARK = "@@netprobe-section "


def _script(names: tuple[str, ...]) -> str:
    return "".join(f"echo '{_MARK}{n}'; {SECTIONS[n][0]} 2>&1\n" for n in names)


def parse_sections(text: str) -> dict[str, Any]:
    """Split the shell's output at the markers and decode each section."""
    out: dict[str, Any] = {}
    name: str | None = None
    chunks: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith(_MARK):
            name = line[len(_MARK) :].strip()
            chunks[name] = []
        elif name is not None:
            chunks[name].append(line)
    for name, lines in chunks.items():
        out[name] = _decode(SECTIONS[name][1], "\n".join(lines).strip())
    return out


def _decode(how: str, text: str) -> Any:
    if how == "json":
        try:
            return json.loads(text) if text else []
        except json.JSONDecodeError:
            return {"unavailable": text.splitlines()[-1] if text else "no output"}
    if how == "sysctl":
        pairs = (line.partition(" = ") for line in text.splitlines())
        return {key: value for key, sep, value in pairs if sep}
    return text


def host_state(topo: Topology, host: str) -> dict[str, Any]:
    """Everything in SECTIONS for `host` (its links and addresses only, where the
    namespace is the machine's own)."""
    spec = topo.spec.host(host)
    names = _FOREIGN_SECTIONS if spec.root else tuple(SECTIONS)
    result = topo.run(host, ["sh", "-c", _script(names)], timeout=30)
    state = parse_sections(result.stdout)
    if spec.root:
        mine = {topo.ifname(host, i.name) for i in spec.interfaces}
        for section in _FOREIGN_SECTIONS:
            items = state.get(section)
            if isinstance(items, list):
                state[section] = [x for x in items if x.get("ifname") in mine]
        state["note"] = "the machine's own namespace: only the topology's own links are shown"
    return state


def topology_state(topo: Topology) -> dict[str, dict[str, Any]]:
    """host name → its state, for every host of the topology."""
    return {host.name: host_state(topo, host.name) for host in topo.spec.hosts}
