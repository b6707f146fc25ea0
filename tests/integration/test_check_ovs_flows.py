"""The ovs-flows check passes when the flow table keeps the bad neighbour out, and names
the flow at fault when it does not (missing, aimed at the wrong address, too broad)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.paths import EXAMPLES
from support.results import diagnosis_of

import netprobe
from netprobe.check import Status, run_check

pytestmark = [pytest.mark.root, pytest.mark.netprobe_requires("ovs-vsctl")]

DROP = "priority=100,ip,nw_src=10.0.0.66,actions=drop"


def _sabotaged(tmp_path: Path, flow: str | None) -> Path:
    """The reference topology with its drop flow replaced (None: left out)."""
    text = (EXAMPLES / "ovs-flows.yaml").read_text()
    text = text.replace(f"- {DROP}\n", f"- {flow}\n" if flow else "")
    assert text != (EXAMPLES / "ovs-flows.yaml").read_text()
    path = tmp_path / "ovs-flows.yaml"
    path.write_text(text)
    return path


def test_ovs_flows_passes_on_its_reference_topology() -> None:
    result = run_check("ovs-flows")
    assert result.status is Status.PASS, result.evidence()
    names = [s.name for s in result.steps]
    assert "IPv4 from bad:eth0 (10.0.0.66) to h1:eth0 is dropped" in names
    trace = result.steps[-1]
    assert trace.name == "switch:br0's flow table drops IPv4 from 10.0.0.66 (ofproto/trace)"
    assert "ip,nw_src=10.0.0.66, priority 100" in trace.detail
    assert result.not_run == []  # every planned step was taken, under the name planned


def test_a_missing_drop_flow_is_named(tmp_path: Path) -> None:
    result = run_check("ovs-flows", _sabotaged(tmp_path, None))
    diagnosis = diagnosis_of(result)
    assert "no flow on switch:br0 drops IPv4 from 10.0.0.66" in diagnosis
    assert "'priority 0'" in diagnosis  # what the bad neighbour's packets meet instead
    failed = {s.name for s in result.steps if s.status is Status.FAIL}
    assert "IPv4 from bad:eth0 (10.0.0.66) to h2:eth0 is dropped" in failed
    assert "IPv4 h1:eth0 → h2:eth0 is switched" not in failed


def test_a_drop_flow_aimed_at_the_wrong_address_is_named(tmp_path: Path) -> None:
    wrong = DROP.replace("10.0.0.66", "10.0.0.67")
    diagnosis = diagnosis_of(run_check("ovs-flows", _sabotaged(tmp_path, wrong)))
    assert "no flow on switch:br0 drops IPv4 from 10.0.0.66" in diagnosis
    assert "nw_src=10.0.0.67" in diagnosis  # the flow table, quoted


def test_a_drop_flow_that_catches_the_neighbours_too_is_named(tmp_path: Path) -> None:
    broad = DROP.replace("10.0.0.66", "10.0.0.0/24")
    result = run_check("ovs-flows", _sabotaged(tmp_path, broad))
    diagnosis = diagnosis_of(result)
    assert "switch:br0 drops IPv4 h1:eth0 → h2:eth0 too" in diagnosis
    assert "ip,nw_src=10.0.0.0/24, priority 100" in diagnosis


def test_a_drop_flow_deleted_at_run_time_is_noticed() -> None:
    with netprobe.build(netprobe.load(EXAMPLES / "ovs-flows.yaml")) as topo:
        topo.ovs("switch", "ovs-ofctl", "del-flows", "br0", "ip,nw_src=10.0.0.66", check=True)
        result = run_check("ovs-flows", topo)
    assert "no flow on switch:br0 drops IPv4 from 10.0.0.66" in diagnosis_of(result)
