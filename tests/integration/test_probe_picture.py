"""The path as a picture: `netprobe probe --picture FILE` draws a delivered and a dropped
probe over its topology, and a failed check's bundle carries path.svg and path.mmd."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support.paths import EXAMPLES

from netprobe.bundle import run_check
from netprobe.check import Status
from netprobe.topology import Spec, load

pytestmark = pytest.mark.root
NO_DOT = pytest.mark.skipif(shutil.which("dot") is None, reason="svg needs Graphviz's dot")


def _probe(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netprobe.cli", "probe", *argv],
                          capture_output=True, text=True, timeout=180)  # fmt: skip


@NO_DOT
def test_a_probe_delivered_through_nat_is_drawn_with_its_rewrite(tmp_path: Path) -> None:
    out = tmp_path / "path.svg"
    done = _probe("-t", str(EXAMPLES / "nat-gateway.yaml"), "vm1", "203.0.113.1", "icmp",
                  "--picture", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"picture: {out}" in done.stdout
    text = out.read_text()
    ET.fromstring(text)  # valid XML
    assert "DELIVERED AND ANSWERED at internet:eth0" in text
    assert "src 10.10.10.101 → 203.0.113.10" in text  # the masquerade, on its link
    assert "pve [NAT]" in text and "legend" in text
    assert "VM behind tap100i0" in text


def test_a_probe_dropped_by_a_firewall_is_drawn_where_it_died(tmp_path: Path) -> None:
    out = tmp_path / "path.md"
    done = _probe("-t", str(EXAMPLES / "filter.yaml"), "outside", "10.0.0.10", "tcp/22",
                  "--picture", str(out), "--bundle", str(tmp_path / "b"))  # fmt: skip
    assert done.returncode == 1, done.stderr
    bundle = next((tmp_path / "b").iterdir())
    assert "✗ DROPPED at fw:eth1" in (bundle / "path.mmd").read_text()  # its bundle has it too
    text = out.read_text()
    assert "```mermaid" in text
    assert "✗ DROPPED at fw:eth1" in text
    assert "class fw__eth1 died" in text
    assert "drop" in text.split("✗ DROPPED", 1)[1].split('"]', 1)[0]  # the cause is said
    assert "fw [NAT, firewall]" in text


def test_a_bad_picture_name_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    done = _probe("-t", str(EXAMPLES / "filter.yaml"), "outside", "10.0.0.10",
                  "--picture", str(tmp_path / "path.png"))  # fmt: skip
    assert done.returncode == 2
    assert "say the format by its extension" in done.stderr


def _forwarding_off() -> Spec:
    spec = load(EXAMPLES / "nat-gateway.yaml")
    hosts = tuple(
        dataclasses.replace(h, sysctls=(("net.ipv4.ip_forward", "0"),)) if h.name == "pve" else h
        for h in spec.hosts
    )
    return dataclasses.replace(spec, hosts=hosts)


def test_a_failed_checks_bundle_carries_its_path(tmp_path: Path) -> None:
    result = run_check("nat", _forwarding_off(), bundle_dir=tmp_path)
    assert result.status is Status.FAIL and result.bundle is not None
    bundle = Path(result.bundle)
    mermaid = (bundle / "path.mmd").read_text()
    assert "✗ " in mermaid and "class pve__" in mermaid
    readme = (bundle / "README.md").read_text()
    assert "## Where it failed" in readme and mermaid.rstrip() in readme
    if shutil.which("dot"):
        svg = (bundle / "path.svg").read_text()
        ET.fromstring(svg)
        assert "legend" in svg and "✗ " in svg
