"""Pictures of topologies: mermaid and DOT text (pure logic, no root)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from click.testing import CliRunner
from support.paths import EXAMPLES

import netprobe
from netprobe.cli import cli
from netprobe.topology._model.picture import dot, mermaid


def test_mermaid_draws_hosts_interfaces_addresses_and_links() -> None:
    text = mermaid(netprobe.load(EXAMPLES / "nat-gateway.yaml"))
    assert text.startswith("graph LR\n")
    assert 'subgraph pve__["pve"]' in text
    assert 'pve__vmbr1["vmbr1 bridge<br/>10.10.10.1/24"]' in text
    assert "vm1__eth0 --- pve__veth101i0" in text  # a veth pair
    assert "pve__tap100i0 -.- pve__vmbr1" in text  # a bridge port
    assert text.count("subgraph") == 3


def test_dot_is_valid_graphviz_with_one_cluster_per_host() -> None:
    text = dot(netprobe.load(EXAMPLES / "redblue.yaml"))
    assert text.count("subgraph \"cluster_") == 3
    assert "red__eth0 -- switch__red;" in text
    assert "switch__red -- switch__br0 [style=dotted];" in text
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg"], input=text, text=True, check=True,
                       capture_output=True)


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_cli_draws_a_topology_file(fmt: str) -> None:
    result = CliRunner().invoke(cli, ["topo", "show", str(EXAMPLES / "router.yaml"),
                                      "--format", fmt])
    assert result.exit_code == 0
    assert "router__eth1" in result.output
