"""`repro.sh`: a standalone script that shows a failure without netprobe.

It rebuilds the topology in fresh namespaces with iproute2 (rulesets with nft or
iptables-restore, inlined), replays the frames netprobe injected, step by step, and
prints what came out where with the verdict each step gets, beside the one netprobe
recorded. Only python3 with scapy is needed besides (scapy prints the frames); a
topology's DHCP servers and clients get their dnsmasq and udhcpc (_repro_dhcp).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..topology._model.observed import ObservedNeighbour
from ..topology._model.spec import (
    Bond,
    Bridge,
    Host,
    Interface,
    Macvlan,
    OvsBond,
    OvsBridge,
    OvsVxlan,
    Spec,
    Tap,
    Veth,
    Vlan,
    Vxlan,
)
from . import _replay_frames as replay_frames
from . import _repro_dhcp as repro_dhcp

_HEADER = """#!/bin/sh
# Reproduces netprobe check {check!r} on topology {topology!r} without netprobe.
# Rebuilds the topology in fresh network namespaces, replays the injected frames and
# prints what came out where. Needs root, iproute2, {tools}python3 with scapy
# (another interpreter with PYTHON=...).
# Touches nothing outside the namespaces it makes, and removes them when it ends.
# Run: sudo sh repro.sh   (sudo PYTHON=/path/to/python3 sh repro.sh for another python3)
set -eu
[ "$(id -u)" -eq 0 ] || {{ echo "repro.sh: run as root" >&2; exit 2; }}
# A python3 that has scapy, found before anything is made: $PYTHON, each python3 on PATH,
# then Debian's. (Exit 1 means "failure reproduced": a missing scapy must not get there.)
has_scapy() {{ [ -x "$1" ] && "$1" -c 'import scapy.layers.l2' >/dev/null 2>&1; }}
pick_python() {{
    if [ -n "${{PYTHON:-}}" ]; then
        has_scapy "$PYTHON" && {{ echo "$PYTHON"; return 0; }}
        echo "repro.sh: PYTHON=$PYTHON cannot import scapy; trying others" >&2
    fi
    saved_ifs=$IFS; IFS=:
    for dir in $PATH; do
        IFS=$saved_ifs
        has_scapy "${{dir:-.}}/python3" && {{ echo "${{dir:-.}}/python3"; return 0; }}
    done
    IFS=$saved_ifs
    has_scapy /usr/bin/python3 && {{ echo /usr/bin/python3; return 0; }}
    return 1
}}
PY=$(pick_python) || {{
    echo "repro.sh: no python3 that can import scapy (tried \\$PYTHON, python3 on PATH," \
         "/usr/bin/python3): install python3-scapy, or run with PYTHON=..." >&2
    exit 2
}}
export P="repro$$"
HOSTS={hosts}
D="" PIDS=""  # the DHCP daemons' private directory and the pids of those started
cleanup() {{
    for pid in $PIDS; do kill "$pid" 2>/dev/null || true; done
    for pid in $PIDS; do wait "$pid" 2>/dev/null || true; done
    for h in $HOSTS; do ip netns del "$P-$h" 2>/dev/null || true; done
    [ -z "$D" ] || rm -rf "$D"
}}
trap cleanup EXIT
trap 'exit 130' INT TERM
"""


def repro_script(
    check: str,
    spec: Spec,
    steps: list[dict[str, Any]],
    rulesets: dict[str, str],
    macs: dict[tuple[str, str], str],
    neighbours: Neighbours | None = None,
) -> str:
    """The script text. `steps`: the result's step dicts; `rulesets`: path → file text;
    `macs`: (host, interface) → the MAC it had, pinned so that recorded frames still fit;
    `neighbours`: permanent neighbour entries to add, by host."""
    tools = sorted(
        {
            "nft" if fw.kind == "nft" else "iptables-restore"
            for host in spec.hosts
            for fw in host.firewall
        }
    ) + [name for name, _ in repro_dhcp.tools(spec)]
    lines = [
        _HEADER.format(
            check=check,
            topology=spec.name,
            tools="".join(f"{t}, " for t in tools),
            hosts=shlex.quote(" ".join(h.name for h in spec.hosts)),
        )
    ]
    ovs = [
        f"{h.name}:{i.name}"
        for h in spec.hosts
        for i in h.interfaces
        if isinstance(i.kind, (OvsBridge, OvsBond, OvsVxlan))
    ]
    if ovs:  # Open vSwitch needs its daemons: that is netprobe replay's job
        lines.append(
            f"echo 'repro.sh: this topology has Open vSwitch ({' '.join(ovs)}), which "
            "this script does not rebuild; run netprobe replay on the bundle' >&2"
        )
        lines.append("exit 2")
    lines += list(repro_dhcp.check_lines(spec))
    lines += list(build_lines(spec, rulesets, macs, neighbours or {}))
    lines += list(repro_dhcp.start_lines(spec))
    plan = {"steps": [_step(s) for s in steps], "vm_ports": _vm_ports(spec)}
    lines.append("\"$PY\" - <<'NETPROBE_REPLAY'")
    lines.append(Path(replay_frames.__file__).read_text().rstrip("\n"))
    lines.append(f"PLAN = {plan!r}")
    lines.append("raise SystemExit(main(PLAN))")
    lines.append("NETPROBE_REPLAY")
    return "\n".join(lines) + "\n"


def _sh(*words: str) -> str:
    return " ".join(w if w.startswith('"$P-') else shlex.quote(w) for w in words)


def _ns(host: str) -> str:
    return f'"$P-{host}"'


def _ip(host: str, *words: str) -> str:
    """`ip -n NS WORDS…` for host's namespace."""
    return _sh("ip", "-n", _ns(host), *words)


def _in(host: str, *words: str) -> str:
    """A command run inside host's namespace."""
    return _sh("ip", "netns", "exec", _ns(host), *words)


Neighbours = Mapping[str, Sequence[ObservedNeighbour]]


def build_lines(
    spec: Spec,
    rulesets: dict[str, str],
    macs: dict[tuple[str, str], str],
    neighbours: Neighbours,
) -> Iterator[str]:
    """The shell lines that build `spec` in namespaces $P-HOST."""
    yield "# -- namespaces (IPv6 duplicate address detection and router solicitations off)"
    for host in spec.hosts:
        yield _sh("ip", "netns", "add", _ns(host.name))
        yield _ip(host.name, "link", "set", "lo", "up")
        quiet = [
            k
            for k, wanted in (
                ("accept_dad", host.ipv6_dad),
                ("router_solicitations", host.ipv6_router_solicitation),
            )
            if not wanted
        ]
        for conf, key in ((c, k) for c in ("all", "default") for k in quiet):
            yield _in(host.name, "sysctl", "-qw", f"net.ipv6.conf.{conf}.{key}=0")
    yield "# -- links"
    for stage in (_masters, _taps, _veths, _stacked):
        for host in spec.hosts:
            for iface in host.interfaces:
                yield from stage(host, iface)
    yield "# -- link settings (MACs as they were), addresses, sysctls, routes"
    for host in spec.hosts:
        for iface in host.interfaces:
            yield from _settings(host, iface, iface.mac or macs.get((host.name, iface.name)))
    for host in spec.hosts:
        yield from _layer3(host)
    for host_name, entries in neighbours.items():
        for n in entries:
            words = ("neigh", "replace", n.ip, "lladdr", n.mac, "dev", n.dev, "nud", "permanent")
            yield _ip(host_name, *words)
    yield "# -- rulesets"
    for host in spec.hosts:
        for fw in host.firewall:
            tool = "nft -f -" if fw.kind == "nft" else f"{fw.kind}-restore"
            yield f"ip netns exec {_ns(host.name)} {tool} <<'NETPROBE_RULESET'"
            yield rulesets[fw.path].rstrip("\n")
            yield "NETPROBE_RULESET"
    yield "# -- let every link settle (a single-link query runs the kernel's pending link work)"
    for host in spec.hosts:
        for iface in host.interfaces:
            if not isinstance(iface.kind, Tap):
                yield _ip(host.name, "link", "show", "dev", iface.name) + " >/dev/null"


def _masters(host: Host, iface: Interface) -> Iterator[str]:
    kind = iface.kind
    if isinstance(kind, Bridge):
        opts = ["stp_state", "1" if kind.stp else "0"]
        if kind.vlan_filtering:
            opts += ["vlan_filtering", "1"]
        if kind.ageing is not None:
            opts += ["ageing_time", str(round(kind.ageing * 100))]  # centiseconds
        if kind.forward_delay is not None:
            opts += ["forward_delay", str(round(kind.forward_delay * 100))]
        yield _ip(host.name, "link", "add", iface.name, "type", "bridge", *opts)
    elif isinstance(kind, Bond):
        miimon = ["miimon", str(kind.miimon)] if kind.miimon is not None else []
        yield _ip(host.name, "link", "add", iface.name, "type", "bond", "mode", kind.mode, *miimon)


def _taps(host: Host, iface: Interface) -> Iterator[str]:
    if isinstance(iface.kind, Tap):
        yield _ip(host.name, "tuntap", "add", "dev", iface.name, "mode", "tap")


def _veths(host: Host, iface: Interface) -> Iterator[str]:
    kind = iface.kind
    if isinstance(kind, Veth):
        one = ["numtxqueues", "1", "numrxqueues", "1"]  # as netprobe makes them
        far = ["peer", "name", kind.peer_ifname, *one, "netns", _ns(kind.peer_host)]
        yield _ip(host.name, "link", "add", iface.name, *one, "type", "veth", *far)


def _stacked(host: Host, iface: Interface) -> Iterator[str]:
    kind = iface.kind
    if isinstance(kind, Macvlan):
        kind_words = ["macvlan", "mode", kind.mode]
    elif isinstance(kind, Vlan):
        kind_words = ["vlan", "id", str(kind.id), "protocol", kind.protocol]
    elif isinstance(kind, Vxlan):
        yield _ip(host.name, "link", "add", iface.name, "type", *vxlan_words(kind))
        return
    else:
        return
    yield _ip(host.name, "link", "add", iface.name, "link", kind.parent, "type", *kind_words)


def vxlan_words(kind: Vxlan) -> list[str]:
    """`ip link add NAME type …` words for a kernel VXLAN."""
    words = ["vxlan", "id", str(kind.id), "dstport", str(kind.dstport)]
    for key, value in (("remote", kind.remote), ("local", kind.local), ("dev", kind.dev)):
        if value is not None:
            words += [key, value]
    return [*words, "learning" if kind.learning else "nolearning"]


def _settings(host: Host, iface: Interface, mac: str | None) -> Iterator[str]:
    link = ["link", "set", "dev", iface.name]
    if mac:
        yield _ip(host.name, *link, "address", mac)
    if iface.mtu:
        yield _ip(host.name, *link, "mtu", str(iface.mtu))
    if iface.master:  # a bond enslaves only links that are down: masters before up
        yield _ip(host.name, *link, "master", iface.master)
    if iface.learning is not None:
        learning = "on" if iface.learning else "off"
        yield _ip(host.name, *link, "type", "bridge_slave", "learning", learning)
    if any(v.pvid for v in iface.vlans):  # another VLAN takes over untagged frames
        yield _sh("bridge", "-n", _ns(host.name), "vlan", "del", "dev", iface.name, "vid", "1")
    for vlan in iface.vlans:
        flags = ["pvid"] * vlan.pvid + ["untagged"] * vlan.untagged
        yield _sh(
            "bridge",
            "-n",
            _ns(host.name),
            "vlan",
            "add",
            "dev",
            iface.name,
            "vid",
            str(vlan.id),
            *flags,
        )
    if iface.up:
        yield _ip(host.name, *link, "up")


def _layer3(host: Host) -> Iterator[str]:
    for iface in host.interfaces:
        for address in iface.addresses:
            nodad = ["nodad"] if address.version == 6 and not host.ipv6_dad else []
            yield _ip(host.name, "addr", "add", str(address), "dev", iface.name, *nodad)
    for key, value in host.sysctls:
        yield _in(host.name, "sysctl", "-qw", f"{key}={value}")
    for route in host.routes:
        words = ["route", "add", "default" if route.to.startswith("default") else route.to]
        for name in ("via", "dev", "metric"):
            value = getattr(route, name)
            words += [name, str(value)] if value is not None else []
        yield _sh("ip", *(["-6"] if route.family == 6 else []), "-n", _ns(host.name), *words)


# The steps in which the dhcp check judges a server's answer to the DHCP message the step
# before it sent (netprobe/library/dhcp.py), by their keys, with the answer they want.
_DHCP_ANSWERS = {"offer": "OFFER", "ack": "ACK", "renew ack": "ACK"}


def _step(step: dict[str, Any]) -> dict[str, Any]:
    """What the replay needs of a step: its frames, where they must (not) appear."""
    exp = step.get("expectation")
    out: dict[str, Any] = {"name": step["name"], "recorded": step["status"]}
    if exp is None:
        if step.get("id") in _DHCP_ANSWERS:  # judged by xid and chaddr: no nonce in it
            out["answer"] = _DHCP_ANSWERS[step["id"]]
        return out
    out.update(
        kind=exp["where"]["kind"],
        count=exp["count"],
        must=[p for p, r in exp["ports"].items() if r["role"] == "must see it"],
        must_not=[p for p, r in exp["ports"].items() if r["role"] != "must see it"],
        frames=[[f["port"], f["frame"], f["barrier"]] for f in exp["injected"]],
    )
    return out


def _vm_ports(spec: Spec) -> list[str]:
    return [
        f"{h.name}:{i.name}@vm" for h in spec.hosts for i in h.interfaces if isinstance(i.kind, Tap)
    ]
