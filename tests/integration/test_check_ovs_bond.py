"""The ovs-bond check passes when the flow survives losing the active link (with the
outage measured in its evidence), and names the fault when there is no working backup."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.paths import EXAMPLES
from support.results import diagnosis_of

import netprobe
from netprobe.check import Status, run_check

pytestmark = [pytest.mark.root, pytest.mark.netprobe_requires("ovs-vsctl")]



def test_ovs_bond_passes_and_measures_the_failover() -> None:
    result = run_check("ovs-bond")
    assert result.status is Status.PASS, result.evidence()
    steps = {s.name: s for s in result.steps}
    assert steps["hv:bond0 fails over from b1 when tor:u1 goes down"].detail == \
        "active member then: b2"
    flow = steps["flow h1:eth0 → h2:eth0 keeps going when tor:u1 goes down"]
    assert flow.detail.startswith("failover outage ")
    assert " ms (the longest wait between two frames arriving" in flow.detail
    assert result.not_run == []  # every planned step was taken, under the key planned


def test_a_backup_whose_link_is_down_is_named() -> None:
    with netprobe.build(netprobe.load(EXAMPLES / "ovs-bond.yaml")) as topo:
        topo.run("tor", ["ip", "link", "set", "u2", "down"], check=True)
        result = run_check("ovs-bond", topo, max_failover="0.3")
    diagnosis = diagnosis_of(result)
    assert ("hv:bond0 has no live backup for b1: the link of b2 is down at its far end, "
            "tor:u2") in diagnosis
    failed = {s.name for s in result.steps if s.status is Status.FAIL}
    assert "hv:bond0 has a live backup for b1" in failed
    assert "flow h1:eth0 → h2:eth0 keeps going when tor:u1 goes down" in failed
    assert result.not_run == []


def test_a_bond_without_an_active_member_lists_the_steps_it_did_not_run() -> None:
    with netprobe.build(netprobe.load(EXAMPLES / "ovs-bond.yaml")) as topo:
        for link in ("u1", "u2"):
            topo.run("tor", ["ip", "link", "set", link, "down"], check=True)
        result = run_check("ovs-bond", topo, max_failover="0.3")
    assert diagnosis_of(result) == "hv:bond0 has no active member: every member's link is down"
    assert [s.name for s in result.steps] == ["hv:bond0 has an active member"]
    assert result.not_run == [
        "hv:bond0 has a live backup", "hv:bond0 fails over when its active link goes down",
        "flow h1:eth0 → h2:eth0 keeps going", "flow h2:eth0 → h1:eth0 keeps going",
    ]
    assert result.summary.endswith("; 4 not run")


def test_a_backup_cabled_to_the_wrong_bridge_is_named(tmp_path: Path) -> None:
    text = (EXAMPLES / "ovs-bond.yaml").read_text()
    text = text.replace("      u2: {master: br0}\n",
                        "      br-other: {bridge: {}}\n      u2: {master: br-other}\n")
    path = tmp_path / "ovs-bond.yaml"
    path.write_text(text)
    diagnosis = diagnosis_of(run_check("ovs-bond", path, max_failover="0.3"))
    assert ("hv:bond0's backup b2 leads to tor:u2, whose master is br-other, not br0 like "
            "the active member's far end tor:u1") in diagnosis


def test_a_name_that_is_no_ovs_bond_is_bad_input() -> None:
    result = run_check("ovs-bond", bond="hv:br0")
    assert result.status is Status.ERROR
    assert "an ovs_bond of this topology" in result.summary
