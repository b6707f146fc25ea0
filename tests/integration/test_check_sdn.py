"""The sdn check passes on its reference topology (OVS with netprobe's os-ken controller),
stopping netprobe's own controller for the proof and putting the fail mode back, and
names the fault when the controller pushes the drop with the wrong match or the
bridge points at the wrong controller port."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.paths import EXAMPLES
from support.results import diagnosis_of

import netprobe
from netprobe.check import Status, run_check
from netprobe.topology._kernel.sdn import has_os_ken

pytestmark = [
    pytest.mark.root,
    pytest.mark.netprobe_requires("ovs-vsctl"),
    pytest.mark.skipif(not has_os_ken(), reason="os-ken is not installed (pip install os-ken)"),
]

DROP = "nw_src=10.0.0.66,actions=drop"


def _sabotaged(tmp_path: Path, old: str, new: str) -> Path:
    text = (EXAMPLES / "sdn.yaml").read_text()
    assert old in text
    path = tmp_path / "sdn.yaml"
    path.write_text(text.replace(old, new))
    return path


def test_sdn_passes_on_its_reference_topology() -> None:
    with netprobe.build(netprobe.load(EXAMPLES / "sdn.yaml")) as topo:
        result = run_check("sdn", topo)  # netprobe's own controller: stopped for the proof
        assert result.status is Status.PASS, result.evidence()
        mode = topo.ovs("switch", "ovs-vsctl", "get", "bridge", "br0", "fail_mode").stdout
        assert mode.strip() == "secure"  # standalone for the proof, then put back
    detail = {s.name: s.detail for s in result.steps}
    assert "is_connected: true" in detail["switch:br0 is connected to its controller"]
    pushed = detail["the controller's flow dropping IPv4 from 10.0.0.66 is in switch:br0's table"]
    assert "cookie=0x66" in pushed and "priority=100" in pushed
    assert "fail-open flow present" in \
        detail["controller gone, fail_mode=standalone: the bridge has failed open"]
    assert result.not_run == []


def test_a_drop_pushed_with_the_wrong_match_is_named(tmp_path: Path) -> None:
    path = _sabotaged(tmp_path, DROP, DROP.replace("10.0.0.66", "10.0.0.67"))
    result = run_check("sdn", path)
    failed = {s.name for s in result.steps if s.status is Status.FAIL}
    assert "IPv4 bad:eth0 → server:eth0 is dropped by the controller's flow" in failed
    diagnosis = diagnosis_of(result)
    assert "the controller pushed no flow that matches the bad host bad:eth0 (10.0.0.66)" \
        in diagnosis
    assert "nw_src=10.0.0.67" in diagnosis


def test_a_bridge_pointing_at_the_wrong_controller_port_is_named(tmp_path: Path) -> None:
    path = _sabotaged(tmp_path, "controller: c0,", "controller: tcp:127.0.0.1:6654,")
    result = run_check("sdn", path)
    assert result.status is Status.FAIL
    diagnosis = diagnosis_of(result)
    assert "switch:br0 is not connected to its controller at tcp:127.0.0.1:6654" in diagnosis
    assert "Connection refused" in diagnosis
    assert "c0 at tcp:127.0.0.1:6653" in diagnosis  # where netprobe's controller listens
