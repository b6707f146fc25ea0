"""A probe's path on the topology's picture: the edges it crossed, the rewrites, where it
ended and why, NAT and firewall hosts, the VM behind a TAP, a legend (pure, no root)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest
from support.paths import EXAMPLES

import netprobe
from netprobe.topology._model.pathview import DrawnPath, PathHop, segments, wrap
from netprobe.topology._model.picture import _edges, dot, mermaid, svg

MASQUERADE = "src 10.10.10.101 → 203.0.113.10"
DELIVERED = DrawnPath(
    title="vm1 → 203.0.113.1 icmp: delivered and answered",
    hops=(
        PathHop("vm1:eth0", "out"),
        PathHop("pve:veth101i0", "in"),
        PathHop("pve:vmbr1", "in"),
        PathHop("pve:uplink", "out", (MASQUERADE,)),
        PathHop("internet:eth0", "in"),
    ),
    ok=True, ending="delivered and answered", where="internet:eth0",
    cause="answered: echo-reply back at vm1:eth0", nat=("pve",),
)  # fmt: skip
DROPPED = DrawnPath(
    title="outside → 10.0.0.10 tcp/22: dropped",
    hops=(
        PathHop("outside:eth0", "out"),
        PathHop("router:eth1", "in"),
        PathHop("router:eth0", "out"),
        PathHop("fw:eth1", "in"),
    ),
    ending="dropped", where="fw:eth1",
    cause='last seen at fw:eth1 (in)\nnft on fw: the policy of chain inet filter forward "drop"',
    firewall=("fw",),
)  # fmt: skip


def _nat() -> netprobe.Spec:
    return netprobe.load(EXAMPLES / "nat-gateway.yaml")


def _filter() -> netprobe.Spec:
    return netprobe.load(EXAMPLES / "filter.yaml")


def test_the_path_runs_over_the_topologys_edges_with_its_rewrites() -> None:
    spec = _nat()
    nodes = {"vm1__eth0", "pve__veth101i0", "pve__vmbr1", "pve__uplink", "internet__eth0"}
    crossed = segments(_edges(spec), nodes, DELIVERED)
    assert [(s.a, s.b, s.link) for s in crossed] == [
        ("vm1__eth0", "pve__veth101i0", True),  # the veth
        ("pve__veth101i0", "pve__vmbr1", True),  # into the bridge, by its port
        ("pve__vmbr1", "pve__uplink", False),  # routed through the host
        ("pve__uplink", "internet__eth0", True),
    ]
    assert crossed[2].label == MASQUERADE


def test_a_frame_bridged_from_port_to_port_crosses_the_bridge() -> None:
    spec = netprobe.load(EXAMPLES / "redblue.yaml")
    path = DrawnPath("red → blue", (PathHop("red:eth0"), PathHop("switch:red"),
                                    PathHop("switch:blue"), PathHop("blue:eth0")))  # fmt: skip
    nodes = {"red__eth0", "switch__red", "switch__blue", "blue__eth0", "switch__br0"}
    crossed = [(s.a, s.b) for s in segments(_edges(spec), nodes, path)]
    assert ("switch__red", "switch__br0") in crossed and ("switch__br0", "switch__blue") in crossed


def test_dot_marks_the_path_the_ending_the_nat_host_the_vm_and_a_legend() -> None:
    text = dot(_nat(), DELIVERED)
    assert 'vm1__eth0 -- pve__veth101i0 [color="#1565c0", penwidth=3, dir=forward' in text
    assert f'label="{MASQUERADE}"' in text
    assert "internet__eth0 [style=\"filled,bold\"" in text
    assert "✓ DELIVERED AND ANSWERED at internet:eth0" in text
    assert 'label="pve [NAT]"' in text
    assert "shape=box3d" in text and "VM behind tap100i0" in text
    assert "legend [shape=plaintext" in text and "where it died, and why" in text


def test_dot_without_a_path_is_unchanged_but_for_the_vm() -> None:
    text = dot(_nat())
    assert "legend" not in text and "#1565c0" not in text
    assert "vm_pve__tap100i0 -- pve__tap100i0 [style=dotted];" in text


def test_mermaid_marks_the_path_the_death_with_its_cause_and_a_legend() -> None:
    text = mermaid(_filter(), DROPPED)
    assert text.startswith("---\ntitle: outside → 10.0.0.10 tcp/22: dropped\n---\ngraph LR\n")
    assert "outside__eth0 ==> router__eth1" in text  # the way the probe went
    assert "router__eth0 ==> fw__eth1" in text
    assert "router__eth1 -.-> router__eth0" in text  # routed through the router
    assert "linkStyle " in text and "stroke:#1565c0" in text
    assert "class fw__eth1 died" in text
    assert "✗ DROPPED at fw:eth1" in text
    assert "forward #quot;drop#quot;" in text  # quotes cannot end the label
    assert 'subgraph fw__["fw [firewall]"]' in text
    assert 'subgraph legend["legend"]' in text


def test_mermaid_link_styles_count_the_edges_they_style() -> None:
    lines = mermaid(_nat(), DELIVERED).splitlines()
    links = [line for line in lines if any(a in line for a in (" --- ", " -.- ", " ==>", " -.->"))]
    numbers = next(line for line in lines if "linkStyle" in line).split()[1].split(",")
    styled = [links[int(n)] for n in numbers]
    assert len(styled) == 4 and all("==>" in line or "-.->" in line for line in styled)
    assert any(MASQUERADE in line for line in styled)


def test_an_ending_at_a_host_is_drawn_at_its_last_interface_seen() -> None:
    path = DrawnPath("x", DROPPED.hops[:3], ending="dropped", where="router", cause="no route")
    assert "class router__eth0 died" in mermaid(_filter(), path)


def test_hops_at_interfaces_the_spec_does_not_name_are_drawn_in_their_host() -> None:
    path = DrawnPath("x", (PathHop("fw:eth9"),), ending="dropped", where="fw:eth9")
    assert 'fw__eth9["eth9"]' in mermaid(_filter(), path)


def test_long_causes_are_wrapped_at_spaces_and_at_line_breaks() -> None:
    assert wrap("a " * 30 + "\nnext", 10)[-1] == "next"
    assert all(len(line) <= 10 for line in wrap("a " * 30, 10))


@pytest.mark.skipif(shutil.which("dot") is None, reason="svg needs Graphviz's dot")
@pytest.mark.parametrize("path", [DELIVERED, DROPPED], ids=["delivered", "dropped"])
def test_the_svg_is_valid_xml_with_the_ending_and_the_legend(path: DrawnPath) -> None:
    spec = _nat() if path is DELIVERED else _filter()
    text = svg(spec, path)
    root = ET.fromstring(text)
    words = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert path.ending.upper() in words and "legend" in words
    assert ("#c62828" if not path.ok else "#2e7d32") in text


def test_each_rewrite_of_a_link_is_a_line_of_its_label() -> None:
    hops = (PathHop("vm1:eth0"), PathHop("pve:veth101i0", rewrites=("src a → b", "sport 1 → 2")))
    text = dot(_nat(), DrawnPath("x", hops, ending="dropped"))
    assert 'label="src a → b\\nsport 1 → 2"' in text
