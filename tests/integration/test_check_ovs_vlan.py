"""The ovs-vlan check passes when access VLANs are isolated and the trunk carries them
tagged, and names the port whose tag or trunks are wrong when not."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.paths import EXAMPLES
from support.results import diagnosis_of

import netprobe
from netprobe.check import Status, run_check

pytestmark = [pytest.mark.root, pytest.mark.netprobe_requires("ovs-vsctl")]



def _sabotaged(tmp_path: Path, old: str, new: str) -> Path:
    text = (EXAMPLES / "ovs-vlan.yaml").read_text()
    assert old in text
    path = tmp_path / "ovs-vlan.yaml"
    path.write_text(text.replace(old, new))
    return path


def test_ovs_vlan_passes_on_its_reference_topology() -> None:
    result = run_check("ovs-vlan")
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 3 * 2 + 2
    assert result.not_run == []  # every planned step was taken, under the name planned
    tagged = next(s for s in result.steps if s.name.endswith("tagged VLAN 20"))
    assert tagged.outcome is not None
    (copy,) = tagged.outcome.reports["core:eth0"].copies
    assert copy.frame.data[12:16] == bytes.fromhex("81000014")  # 802.1Q, VLAN 20, on the wire


def test_an_access_port_with_the_wrong_tag_is_named(tmp_path: Path) -> None:
    path = _sabotaged(tmp_path, "p2: {master: br0, tag: 10}", "p2: {master: br0, tag: 20}")
    result = run_check("ovs-vlan", path)
    diagnosis = diagnosis_of(result)
    assert ("switch:p2 (the port of h2:eth0) is an access port of VLAN 20, expected an "
            "access port of VLAN 10") in diagnosis
    failed = {s.name for s in result.steps if s.status is Status.FAIL}
    assert "broadcast from h3:eth0 (VLAN 20) reaches no other access port and no other VLAN" \
        in failed  # h3's broadcast now reaches h2


def test_a_trunk_missing_a_vlan_is_named(tmp_path: Path) -> None:
    path = _sabotaged(tmp_path, "trunks: [10, 20]", "trunks: [10]")
    diagnosis = diagnosis_of(run_check("ovs-vlan", path))
    assert "switch:up (the trunk to core:eth0) carries VLANs 10, not VLANs 20" in diagnosis


def test_bad_parameters_are_bad_input() -> None:
    with pytest.raises(netprobe.SpecError, match=r"parameter access takes .*HOST:IFNAME=VLAN"):
        run_check("ovs-vlan", access="h1:eth0=10,h2:eth0")  # refused before anything is built
    result = run_check("ovs-vlan", bridge="h1:eth0")
    assert result.status is Status.ERROR
    assert "an OVS bridge of this topology" in result.summary
