"""The vxlan check on Open vSwitch: VXLAN ports of netdev bridges (userspace tunnelling,
the underlay address on the OVS bridge holding the underlay port). It passes as the kernel
variant does, names the same faults read from the OVS ports, and SKIPs with the remedy
where Open vSwitch is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.paths import EXAMPLES
from support.results import diagnosis_of

from netprobe.check import Status, run_check

pytestmark = [pytest.mark.root, pytest.mark.netprobe_requires("vxlan", "ovs-vsctl")]

REFERENCE = EXAMPLES / "vxlan-ovs.yaml"


def _sabotaged(tmp_path: Path, *changes: tuple[str, str]) -> Path:
    text = REFERENCE.read_text()
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "vxlan-ovs.yaml"
    path.write_text(text)
    return path


def test_ovs_vxlan_passes() -> None:
    result = run_check("vxlan", REFERENCE)
    assert result.status is Status.PASS, result.evidence()
    assert result.steps[0].detail == ("seen on hv1:ul0: 192.168.100.1 → 192.168.100.2, "
                                      "UDP 4789, VNI 100")
    assert "the largest IPv4 packet that crosses is 1450 bytes" in result.steps[-1].detail


def test_an_ovs_key_mismatch_is_named(tmp_path: Path) -> None:
    path = _sabotaged(tmp_path, ("{remote: 192.168.100.1, key: 100}",
                                 "{remote: 192.168.100.1, key: 101}"))
    assert ("VNI mismatch: hv1 sends VNI 100 (192.168.100.1 → 192.168.100.2, UDP 4789, "
            "VNI 100), but hv2:vx100 has id 101") in diagnosis_of(run_check("vxlan", path))


def test_an_ovs_wrong_remote_is_named(tmp_path: Path) -> None:
    path = _sabotaged(tmp_path, ("{remote: 192.168.100.2, key: 100}",
                                 "{remote: 192.168.100.3, key: 100}"))
    assert ("wrong remote: hv1:vx100 tunnels to 192.168.100.3 (ARP requests for it "
            "unanswered on hv1:ul0), but hv2's underlay address is 192.168.100.2"
            ) in diagnosis_of(run_check("vxlan", path))


def test_an_ovs_underlay_mtu_too_small_is_named(tmp_path: Path) -> None:
    path = _sabotaged(tmp_path,
                      ("ul0: {veth: hv2:ul0, master", "ul0: {veth: hv2:ul0, mtu: 1400, master"),
                      ("ul0: {master: brul}", "ul0: {mtu: 1400, master: brul}"))
    assert ("the largest IPv4 packet that crosses from g1:eth0 to g2:eth0 is 1350 bytes, "
            "below the 1450 expected; the underlay's MTU is 1400 (hv1:ul0 1400, hv2:ul0 "
            "1400)") in diagnosis_of(run_check("vxlan", path))


def test_without_open_vswitch_it_skips_with_the_remedy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda name, *a, **k: None)  # no OVS tool is found
    result = run_check("vxlan", REFERENCE)
    assert result.status is Status.SKIP
    assert "Open vSwitch is not installed" in result.summary
    assert result.diagnosis is not None and "apt-get install openvswitch-switch" in (
        result.diagnosis)
