"""A picture of a topology: hosts as boxes, their interfaces with addresses, the links.
Interfaces an adopted host uses as they exist are marked "(existing)"; the VM behind a
TAP is drawn as its own box. With a probe's path (a DrawnPath), the picture carries it
too: the edges it crossed, the rewrites, where it ended and why, and a legend.

Mermaid text always (renders on GitHub, GitLab and in most Markdown viewers); Graphviz
DOT always; SVG when Graphviz's `dot` is installed.
"""

from __future__ import annotations

import shutil
import subprocess

from ...errors import SetupError
from . import picture_path as overlay
from .pathview import DrawnPath, Segment, node_id, segments
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

_id = node_id
VM_LABEL = "VM behind {tap}\n(netprobe plays it)"


def _vm(host: str, name: str) -> str:
    return "vm_" + _id(host, name)


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
            if isinstance(iface.kind, Tap):
                edges.append((_vm(host.name, iface.name), here, "vm"))  # the VM left of it
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


def _interfaces(spec: Spec, host: Host, path: DrawnPath | None = None) -> list[Interface]:
    """The host's interfaces, plus veth ends declared only by their peer, plus those the
    path saw that the spec does not name."""
    listed = {i.name for i in host.interfaces}
    extra = [
        Interface(i.kind.peer_ifname)
        for h in spec.hosts
        for i in h.interfaces
        if isinstance(i.kind, Veth)
        and i.kind.peer_host == host.name
        and i.kind.peer_ifname not in listed
    ]
    listed |= {i.name for i in extra}
    for hop in path.hops if path is not None else ():
        if hop.host == host.name and hop.ifname and hop.ifname not in listed:
            listed.add(hop.ifname)
            extra.append(Interface(hop.ifname))
    return [*host.interfaces, *extra]


def _vms(spec: Spec) -> list[tuple[str, str]]:
    """(node, label) of the VM behind each TAP."""
    return [
        (_vm(h.name, i.name), VM_LABEL.format(tap=i.name))
        for h in spec.hosts
        for i in h.interfaces
        if isinstance(i.kind, Tap)
    ]


def _overlay(spec: Spec, path: DrawnPath | None) -> tuple[set[str], list[Segment]]:
    """The picture's interface nodes, and the segments the path crossed."""
    if path is None:
        return set(), []
    nodes = {_id(h.name, i.name) for h in spec.hosts for i in _interfaces(spec, h, path)}
    return nodes, segments(_edges(spec), nodes, path)


def mermaid(spec: Spec, path: DrawnPath | None = None) -> str:
    """The topology as a Mermaid graph: hosts as subgraphs, veths and bridge ports as
    edges; with `path`, the probe's way over it, its ending and a legend."""
    lines = [f"---\ntitle: {path.title}\n---"] if path is not None else []
    lines.append("graph LR")
    for host in spec.hosts:
        style = overlay.host_style(path, host.name)
        title = host.name + (style[0] if style else "")
        lines.append(f'  subgraph {_id(host.name, "")}["{title}"]')
        for iface in _interfaces(spec, host, path):
            existing = (host.name, iface.name) in spec.existing
            text = _label(iface, existing).replace("\n", "<br/>")
            lines.append(f'    {_id(host.name, iface.name)}["{text}"]')
        lines.append("  end")
        if style:
            lines.append(f"  style {_id(host.name, '')} fill:{style[2]},stroke:{style[1]}")
    lines += [f'  {vm}[["{text.replace(chr(10), "<br/>")}"]]:::vm' for vm, text in _vms(spec)]
    nodes, crossed = _overlay(spec, path)
    lines += _mermaid_edges(spec, crossed, path is not None)
    if path is not None:
        lines += overlay.mermaid_ending(path, nodes) + overlay.mermaid_classes()
    elif _vms(spec):
        lines.append(f"  classDef vm fill:{overlay.VM_FILL},stroke:#455a64,color:#000")
    return "\n".join(lines) + "\n"


def _mermaid_edges(spec: Spec, crossed: list[Segment], styled: bool) -> list[str]:
    """The topology's edges, those the path crossed as its arrows, then its jumps through
    hosts, and the style of each arrow of the path (mermaid styles links by number)."""
    arrows = {"veth": "---", "port": "-.-", "vm": "-.-"}
    by_pair = {frozenset((s.a, s.b)): s for s in crossed if s.link}
    lines: list[str] = []
    marked: list[int] = []
    for a, b, style in _edges(spec):
        seg = by_pair.pop(frozenset((a, b)), None)
        if seg is not None:
            marked.append(len(lines))
        lines.append(overlay.mermaid_edge(seg) if seg else f"  {a} {arrows[style]} {b}")
    for seg in [s for s in crossed if not s.link] + list(by_pair.values()):
        marked.append(len(lines))
        lines.append(overlay.mermaid_edge(seg))
    if styled and marked:
        numbers = ",".join(str(i) for i in marked)
        lines.append(f"  linkStyle {numbers} stroke:{overlay.PATH},stroke-width:3px")
    return lines


def dot(spec: Spec, path: DrawnPath | None = None) -> str:
    """The topology as a Graphviz graph: hosts as clusters, veths and bridge ports as
    edges; with `path`, the probe's way over it, its ending and a legend."""
    lines = [f'graph "{spec.name}" {{', "  rankdir=LR; node [shape=box, fontsize=10];"]
    if path is not None:
        title = path.title.replace('"', '\\"')
        lines += [
            f'  label="{title}"; labelloc=t; fontsize=14; fontname="Helvetica-Bold";',
            '  node [style=filled, fillcolor=white, fontname="Helvetica"];',
            '  edge [fontname="Helvetica"];',
        ]
    for host in spec.hosts:
        lines.append(f'  subgraph "cluster_{host.name}" {{ label="{host.name}";')
        style = overlay.host_style(path, host.name)
        if style:
            lines.append(
                f'    label="{host.name}{style[0]}"; style="filled,bold"; '
                f'color="{style[1]}"; fillcolor="{style[2]}"; fontcolor="{style[1]}";'
            )
        for iface in _interfaces(spec, host, path):
            existing = (host.name, iface.name) in spec.existing
            text = _label(iface, existing).replace("\n", "\\n")
            lines.append(f'    {_id(host.name, iface.name)} [label="{text}"];')
        lines.append("  }")
    lines += [
        f'  {vm} [shape=box3d, style=filled, fillcolor="{overlay.VM_FILL}", '
        f'label="{text.replace(chr(10), chr(92) + "n")}"];'
        for vm, text in _vms(spec)
    ]
    lines += _dot_edges(spec, *_overlay(spec, path), path)
    return "\n".join(lines) + "\n}\n"


def _dot_edges(
    spec: Spec, nodes: set[str], crossed: list[Segment], path: DrawnPath | None
) -> list[str]:
    """The topology's edges (those the path crossed drawn as its arrows), its jumps
    through hosts, its ending and the legend."""
    by_pair = {frozenset((s.a, s.b)): s for s in crossed if s.link}
    lines = []
    for a, b, style in _edges(spec):
        seg = by_pair.pop(frozenset((a, b)), None)
        if seg is not None:
            lines.append(overlay.dot_edge(seg))
        else:
            lines.append(f"  {a} -- {b}" + (" [style=dotted];" if style != "veth" else ";"))
    lines += [overlay.dot_edge(s) for s in crossed if not s.link]
    lines += [overlay.dot_edge(s) for s in by_pair.values()]
    if path is not None:
        lines += overlay.dot_ending(path, nodes) + overlay.dot_legend()
    return lines


def svg(spec: Spec, path: DrawnPath | None = None) -> str:
    """The topology drawn as SVG by Graphviz (with `path`, as `dot` says); raises
    SetupError without `dot`."""
    if shutil.which("dot") is None:
        raise SetupError(
            "drawing SVG needs Graphviz",
            remedy="apt-get install graphviz (or use --format mermaid or dot)",
        )
    proc = subprocess.run(
        ["dot", "-Tsvg"], input=dot(spec, path), capture_output=True, text=True, check=True,
        timeout=30,
    )  # fmt: skip
    return proc.stdout
