"""The vxlan check passes when guests on two hypervisors meet through kernel VXLAN, the
VNIs stay apart and the path MTU fits the guests; it names a VNI mismatch, a wrong remote
and an underlay MTU too small, and says when guests of MTU 1500 lose their large frames."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.paths import EXAMPLES
from support.results import diagnosis_of

import netprobe
from netprobe.check import Status, run_check

pytestmark = [pytest.mark.root, pytest.mark.netprobe_requires("vxlan")]


def _sabotaged(tmp_path: Path, *changes: tuple[str, str]) -> Path:
    text = (EXAMPLES / "vxlan.yaml").read_text()
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "vxlan.yaml"
    path.write_text(text)
    return path


def _failed(result: netprobe.Result) -> set[str]:
    return {s.name for s in result.steps if s.status is Status.FAIL}


def test_vxlan_passes_on_its_reference_topology() -> None:
    result = run_check("vxlan")
    assert result.status is Status.PASS, result.evidence()
    assert result.not_run == []
    wire = result.steps[0]
    assert wire.detail == "seen on hv1:ul0: 192.168.100.1 → 192.168.100.2, UDP 4789, VNI 100"
    assert result.steps[4].detail.endswith("VNI 200")
    mtu = result.steps[-1]
    assert mtu.name.endswith("1450-byte IPv4 packets (DF set) cross the overlay")
    assert "the largest IPv4 packet that crosses is 1450 bytes" in mtu.detail


def test_full_size_frames_do_not_fit_and_the_check_says_so() -> None:
    result = run_check("vxlan", mtu=1500)
    assert result.status is Status.FAIL
    assert _failed(result) == {"path MTU from g1:eth0 to g2:eth0: 1500-byte IPv4 packets "
                               "(DF set) cross the overlay"}
    assert ("the largest IPv4 packet that crosses from g1:eth0 to g2:eth0 is 1450 bytes, "
            "below the 1500 expected; the underlay's MTU is 1500") in diagnosis_of(result)


def test_guests_of_mtu_1500_lose_frames_above_1450(tmp_path: Path) -> None:
    path = _sabotaged(tmp_path, ("mtu: 1450", "mtu: 1500"))
    result = run_check("vxlan", path)
    diagnosis = diagnosis_of(result)
    assert "1451 bytes and above are lost" in result.steps[-1].detail
    assert ("g1:eth0 has MTU 1500: its packets above 1450 bytes are lost (lower the guests' "
            "MTU to 1450, or raise the underlay's to 1550)") in diagnosis


def test_a_vni_mismatch_is_named(tmp_path: Path) -> None:
    path = _sabotaged(tmp_path, ("{id: 100, remote: 192.168.100.1",
                                 "{id: 101, remote: 192.168.100.1"))
    result = run_check("vxlan", path)
    assert "VNI 100: it arrives at g2:eth0 through the overlay" in _failed(result)
    assert "VNI 200: it arrives at b2:eth0 through the overlay" not in _failed(result)
    assert ("VNI mismatch: hv1 sends VNI 100 (192.168.100.1 → 192.168.100.2, UDP 4789, "
            "VNI 100), but hv2:vx100 has id 101") in diagnosis_of(result)


def test_a_wrong_remote_is_named(tmp_path: Path) -> None:
    path = _sabotaged(tmp_path, ("{id: 100, remote: 192.168.100.2",
                                 "{id: 100, remote: 192.168.100.3"))
    result = run_check("vxlan", path)
    assert "VNI 100: it arrives at g2:eth0 through the overlay" in _failed(result)
    assert ("wrong remote: hv1:vx100 tunnels to 192.168.100.3 (ARP requests for it "
            "unanswered on hv1:ul0), but hv2's underlay address is 192.168.100.2"
            ) in diagnosis_of(result)


def test_an_underlay_mtu_too_small_is_named(tmp_path: Path) -> None:
    path = _sabotaged(  # the tunnels keep the MTU meant for a 1500-byte underlay
        tmp_path,
        ("ul0: {veth: hv2:ul0, addresses", "ul0: {veth: hv2:ul0, mtu: 1400, addresses"),
        ("ul0: {addresses", "ul0: {mtu: 1400, addresses"),
        ("dev: ul0}, master: br100}", "dev: ul0}, mtu: 1450, master: br100}"),
    )
    result = run_check("vxlan", path)
    assert _failed(result) == {"path MTU from g1:eth0 to g2:eth0: 1450-byte IPv4 packets "
                               "(DF set) cross the overlay"}
    assert ("the largest IPv4 packet that crosses from g1:eth0 to g2:eth0 is 1350 bytes, "
            "below the 1450 expected; the underlay's MTU is 1400 (hv1:ul0 1400, hv2:ul0 "
            "1400), and VXLAN takes 50 bytes of it: at most 1350 fit inside"
            ) in diagnosis_of(result)


def test_bad_parameters_are_bad_input() -> None:
    with pytest.raises(netprobe.SpecError, match=r"parameter tenants takes"):
        run_check("vxlan", tenants="100=g1:eth0")
