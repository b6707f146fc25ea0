"""A probe's path drawn over the topology's picture: the edges it crossed in blue with the
rewritten fields on them, the ending (red with its cause, green when delivered), the NAT
and firewall hosts tinted, and a legend. Pure text, DOT and mermaid alike."""

from __future__ import annotations

from .pathview import DrawnPath, Segment, ending_node, wrap

PATH = "#1565c0"  # blue: the probe's way
DIED, DIED_FILL, DIED_TEXT = "#c62828", "#ffebee", "#7f0000"
DELIVERED, DELIVERED_FILL, DELIVERED_TEXT = "#2e7d32", "#e8f5e9", "#1b5e20"
NAT, NAT_FILL = "#e65100", "#fff3e0"
FIREWALL, FIREWALL_FILL = "#6a1b9a", "#f3e5f5"
VM_FILL = "#eceff1"


def host_style(path: DrawnPath | None, host: str) -> tuple[str, str, str] | None:
    """(label suffix, border, fill) of a NAT or firewall host; None for the others."""
    role = path.role(host) if path is not None else ""
    if not role:
        return None
    border, fill = (NAT, NAT_FILL) if "NAT" in role else (FIREWALL, FIREWALL_FILL)
    return f" [{role}]", border, fill


def ending_text(path: DrawnPath) -> list[str]:
    """The ending's note: a mark, the ending and where, then the cause."""
    mark = "✓" if path.ok else "✗"
    where = f" at {path.where}" if path.where else ""
    return [f"{mark} {path.ending.upper()}{where}", *wrap(path.cause)]


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def dot_edge(seg: Segment) -> str:
    """The DOT edge of a crossed segment, written the way the probe went (so the picture
    reads left to right along it)."""
    attrs = [f'color="{PATH}"', "penwidth=3", "dir=forward", "arrowsize=0.8"]
    if not seg.link:
        attrs.append("style=dashed")
    if seg.label:
        text = _dot_text(seg.label).replace(", ", "\\n")  # a rewrite a line
        attrs += [f'label="{text}"', f'fontcolor="{PATH}"', "fontsize=10"]
    return f"  {seg.a} -- {seg.b} [{', '.join(attrs)}];"


def dot_ending(path: DrawnPath, nodes: set[str]) -> list[str]:
    """The ending: its interface filled and bordered, a note with the cause beside it."""
    at = ending_node(path, nodes)
    line, fill, text = (
        (DELIVERED, DELIVERED_FILL, DELIVERED_TEXT) if path.ok else (DIED, DIED_FILL, DIED_TEXT)
    )
    label = _dot_text("\n".join(ending_text(path))).replace("\n", "\\l") + "\\l"
    out = [
        f'  ending [shape=note, margin="0.25,0.1", style=filled, fillcolor="{fill}", '
        f'color="{line}", fontcolor="{text}", penwidth=2, fontsize=11, label="{label}"];'
    ]
    if at is not None:
        out += [
            f'  {at} [style="filled,bold", fillcolor="{fill}", color="{line}", penwidth=3];',
            f'  {at} -- ending [color="{line}", penwidth=2, style=dashed];',
        ]
    return out


_LEGEND = (
    (PATH, "white", "→  the probe's path; rewritten fields on the link"),
    (DIED, DIED_FILL, "✗  where it died, and why"),
    (DELIVERED, DELIVERED_FILL, "✓  where it was delivered"),
    (NAT, NAT_FILL, "host with NAT rules"),
    (FIREWALL, FIREWALL_FILL, "host with filter rules (firewall)"),
    ("#455a64", VM_FILL, "VM behind a TAP (netprobe plays it)"),
)


def dot_legend() -> list[str]:
    """The legend: one HTML-like table, a colour swatch per row."""
    rows = "".join(
        f'<TR><TD BGCOLOR="{fill}" COLOR="{line}" BORDER="2" WIDTH="26"> </TD>'
        f'<TD ALIGN="LEFT">{text.replace("&", "&amp;")}&#160;&#160;&#160;&#160;</TD></TR>'
        for line, fill, text in _LEGEND
    )
    table = (
        '<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="4" COLOR="#90a4ae">'
        f'<TR><TD COLSPAN="2"><B>legend</B></TD></TR>{rows}</TABLE>'
    )
    return [f"  legend [shape=plaintext, fontsize=10, label=<{table}>];"]


def _mm(text: str) -> str:
    return text.replace('"', "#quot;")


def mermaid_edge(seg: Segment) -> str:
    """The mermaid arrow of a crossed segment, with its rewrites as the label."""
    arrow = "==>" if seg.link else "-.->"
    label = f'|"{_mm(seg.label)}"|' if seg.label else ""
    return f"  {seg.a} {arrow}{label} {seg.b}"


def mermaid_ending(path: DrawnPath, nodes: set[str]) -> list[str]:
    """The ending's note and its class, and the class of the interface it is drawn at."""
    at = ending_node(path, nodes)
    kind = "delivered" if path.ok else "died"
    out = [f'  ending["{_mm("<br/>".join(ending_text(path)))}"]:::{kind}Note']
    if at is not None:
        out += [f"  {at} -.- ending", f"  class {at} {kind}"]
    return out


def mermaid_classes() -> list[str]:
    """The classes the path's picture uses, and the legend."""
    return [
        f"  classDef died fill:{DIED_FILL},stroke:{DIED},stroke-width:3px,color:#000",
        f"  classDef diedNote fill:{DIED_FILL},stroke:{DIED},color:{DIED_TEXT}",
        f"  classDef delivered fill:{DELIVERED_FILL},stroke:{DELIVERED},stroke-width:3px,"
        "color:#000",
        f"  classDef deliveredNote fill:{DELIVERED_FILL},stroke:{DELIVERED},color:{DELIVERED_TEXT}",
        f"  classDef vm fill:{VM_FILL},stroke:#455a64,color:#000",
        '  subgraph legend["legend"]',
        '    legend_path["→ the probe\'s path (bold arrows), rewritten fields on them"]',
        '    legend_died["✗ where it died, and why"]:::died',
        '    legend_delivered["✓ where it was delivered"]:::delivered',
        '    legend_nat["host with NAT rules"]',
        '    legend_fw["host with filter rules (firewall)"]',
        '    legend_vm[["VM behind a TAP"]]:::vm',
        "  end",
        f"  style legend_path stroke:{PATH},stroke-width:3px",
        f"  style legend_nat fill:{NAT_FILL},stroke:{NAT}",
        f"  style legend_fw fill:{FIREWALL_FILL},stroke:{FIREWALL}",
    ]
