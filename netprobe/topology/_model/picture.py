"""A picture of a topology: hosts as boxes, their interfaces with addresses, the links.
Interfaces an adopted host uses as they exist are marked "(existing)".

Mermaid text always (renders on GitHub, GitLab and in most Markdown viewers); Graphviz
DOT always; SVG when Graphviz's `dot` is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from ...errors import SetupError
from .spec import (
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


def _id(host: str, name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{host}__{name}")


def _label(iface: Interface, existing: bool = False) -> str:
    """`existing`: an interface netprobe uses as it finds it, not one it makes."""
    kind = {
        Bridge: "bridge",
        Tap: "tap",
        Macvlan: "macvlan",
        Vlan: "vlan",
        Bond: "bond",
        OvsBridge: "ovs bridge",
        OvsBond: "ovs bond",
        Veth: "",
    }.get(type(iface.kind), "")
    if isinstance(iface.kind, Bridge) and iface.kind.vlan_filtering:
        kind = "bridge, vlan-aware"
    if isinstance(iface.kind, Vlan):
        kind = f"vlan {iface.kind.id}"
    if isinstance(iface.kind, (Vxlan, OvsVxlan)):  # the VNI, and where it tunnels to
        vni = iface.kind.id if isinstance(iface.kind, Vxlan) else iface.kind.key
        kind = f"vxlan {vni}" + (f" to {iface.kind.remote}" if iface.kind.remote else "")
    if existing:
        kind = "(existing)"
    seen = iface.observed
    if seen is not None:  # discovered: what the kernel said
        kind = "" if seen.kind in ("veth", "device") else seen.kind
        if seen.port_state not in (None, "forwarding"):
            kind = f"{kind} {seen.port_state}".strip()
        if not seen.up:
            kind = f"{kind} down".strip()
    addresses = [*iface.addresses, *(seen.addresses if seen else ())]
    lines = [f"{iface.name} {kind}".strip(), *_vlans(iface), *(str(a) for a in addresses)]
    return "\n".join(lines)


def _vlans(iface: Interface) -> list[str]:
    """A port's VLANs: OVS access tag or trunk, or a vlan-aware bridge's per-port VLANs."""
    if iface.tag is not None:
        return [f"access vlan {iface.tag}"]
    if iface.trunks:
        return ["trunk " + ",".join(str(t) for t in iface.trunks)]
    if iface.vlans:
        return [
            "vlans "
            + ",".join(
                f"{v.id}"
                + (
                    "(pvid,untagged)"
                    if v.pvid and v.untagged
                    else "(pvid)"
                    if v.pvid
                    else "(untagged)"
                    if v.untagged
                    else ""
                )
                for v in iface.vlans
            )
        ]
    return []


def _edges(spec: Spec) -> list[tuple[str, str, str]]:
    """(from, to, style): veth pairs are solid, port-to-master and stacking dotted."""
    edges = []
    for host in spec.hosts:
        for iface in host.interfaces:
            here = _id(host.name, iface.name)
            if isinstance(iface.kind, Veth):
                edges.append((here, _id(iface.kind.peer_host, iface.kind.peer_ifname), "veth"))
            if iface.master:
                edges.append((here, _id(host.name, iface.master), "port"))
            if isinstance(iface.kind, (Macvlan, Vlan)):
                edges.append((here, _id(host.name, iface.kind.parent), "port"))
            edges += _observed_edges(host, iface)
    return edges


def _observed_edges(host: Host, iface: Interface) -> list[tuple[str, str, str]]:
    """A discovered interface's veth (drawn once, from the end that sorts first) and
    master (a bridge or bond it is a port of)."""
    seen = iface.observed
    if seen is None:
        return []
    here = _id(host.name, iface.name)
    edges = []
    if seen.peer and (host.name, iface.name) < tuple(seen.peer.split(":", 1)):
        far_host, _, far = seen.peer.partition(":")
        edges.append((here, _id(far_host, far), "veth"))
    if seen.master:
        edges.append((here, _id(host.name, seen.master), "port"))
    return edges


def _interfaces(spec: Spec, host: Host) -> list[Interface]:
    """The host's interfaces, plus veth ends declared only by their peer."""
    listed = {i.name for i in host.interfaces}
    extra = [
        Interface(i.kind.peer_ifname)
        for h in spec.hosts
        for i in h.interfaces
        if isinstance(i.kind, Veth)
        and i.kind.peer_host == host.name
        and i.kind.peer_ifname not in listed
    ]
    return [*host.interfaces, *extra]


def mermaid(spec: Spec) -> str:
    """The topology as a Mermaid graph: hosts as subgraphs, veths and bridge ports as edges."""
    lines = ["graph LR"]
    for host in spec.hosts:
        lines.append(f'  subgraph {_id(host.name, "")}["{host.name}"]')
        for iface in _interfaces(spec, host):
            existing = (host.name, iface.name) in spec.existing
            text = _label(iface, existing).replace("\n", "<br/>")
            lines.append(f'    {_id(host.name, iface.name)}["{text}"]')
        lines.append("  end")
    arrows = {"veth": "---", "port": "-.-"}
    lines += [f"  {a} {arrows[style]} {b}" for a, b, style in _edges(spec)]
    return "\n".join(lines) + "\n"


def dot(spec: Spec) -> str:
    """The topology as a Graphviz graph: hosts as clusters, veths and bridge ports as edges."""
    lines = [f'graph "{spec.name}" {{', "  rankdir=LR; node [shape=box, fontsize=10];"]
    for host in spec.hosts:
        lines.append(f'  subgraph "cluster_{host.name}" {{ label="{host.name}";')
        for iface in _interfaces(spec, host):
            existing = (host.name, iface.name) in spec.existing
            text = _label(iface, existing).replace("\n", "\\n")
            lines.append(f'    {_id(host.name, iface.name)} [label="{text}"];')
        lines.append("  }")
    lines += [
        f"  {a} -- {b}" + (" [style=dotted];" if style == "port" else ";")
        for a, b, style in _edges(spec)
    ]
    return "\n".join(lines) + "\n}\n"


def svg(spec: Spec) -> str:
    """The topology drawn as SVG by Graphviz; raises SetupError without `dot`."""
    if shutil.which("dot") is None:
        raise SetupError(
            "drawing SVG needs Graphviz",
            remedy="apt-get install graphviz (or use --format mermaid or dot)",
        )
    proc = subprocess.run(
        ["dot", "-Tsvg"], input=dot(spec), capture_output=True, text=True, check=True, timeout=30
    )
    return proc.stdout
