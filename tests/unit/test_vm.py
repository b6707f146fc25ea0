"""netprobe.vm's pure logic: finding a kernel, the vng command line, KVM detection,
Results rebuilt from JSON. Booting a guest is the VM tier's job (tests/vm)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netprobe.check import Result, Status, Step
from netprobe.errors import SetupError
from netprobe.vm import Case, find_kernel, kvm_usable, result_from_dict, vng_command


def test_finds_the_newest_full_kernel_not_the_cloud_one(tmp_path: Path) -> None:
    for name in ("vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-56-amd64",
                 "vmlinuz-6.1.0-60-cloud-amd64", "vmlinuz-5.10.0-30-amd64"):
        (tmp_path / name).write_text("")
    assert find_kernel(tmp_path).name == "vmlinuz-6.1.0-56-amd64"


def test_no_kernel_is_a_setup_error_with_a_remedy(tmp_path: Path) -> None:
    (tmp_path / "vmlinuz-6.1.0-60-cloud-amd64").write_text("")
    with pytest.raises(SetupError) as caught:
        find_kernel(tmp_path)
    assert caught.value.remedy is not None and "linux-image-amd64" in caught.value.remedy


def test_software_emulation_when_kvm_is_not_usable(tmp_path: Path) -> None:
    argv = vng_command(Path("/boot/k"), "true", tmp_path, kvm=False)
    assert argv[:3] == ["vng", "--run", "/boot/k"]
    assert "--disable-kvm" in argv and "--qemu-opts=-accel tcg,tb-size=128" in argv
    assert argv[-2:] == ["--exec", "true"] and f"--rwdir={tmp_path}" in argv
    assert "--disable-kvm" not in vng_command(Path("/boot/k"), "true", tmp_path, kvm=True)


def test_kvm_detection_gives_a_reason() -> None:
    usable, why = kvm_usable()
    assert isinstance(usable, bool) and why
    if Path("/sys/module/kvm_pvm").exists():
        assert not usable and "paravirtual" in why


def test_a_result_survives_the_trip_through_json() -> None:
    sent = Result("vlan", Status.FAIL, "s", [Step("a", Status.PASS), Step("b", Status.FAIL, "d")],
                  "h20:eth0.20 is VLAN 10, not 20", 1.5, "vlan.yaml")
    data = sent.to_dict()
    data["steps"][1]["evidence"] = "FAIL: probe 1 never reached h10:eth0.10"
    back = result_from_dict(data)
    for key in ("check", "status", "summary", "diagnosis", "duration", "topology"):
        assert back.to_dict()[key] == data[key]
    assert [(s.name, s.status, s.detail) for s in back.steps] == [
        (s.name, s.status, s.detail) for s in sent.steps]
    assert "    FAIL: probe 1 never reached h10:eth0.10" in back.evidence()


def test_a_result_keeps_its_steps_not_run_and_their_ids_through_json() -> None:
    sent = Result("bond", Status.FAIL, "s; 1 not run",
                  [Step("ping 10.0.0.1 before the cut", Status.FAIL, key="ping before")],
                  not_run=["ping after"])
    back = result_from_dict(sent.to_dict())
    assert back.not_run == ["ping after"]
    assert [s.id for s in back.steps] == ["ping before"]
    assert "1 not run: ping after" in back.evidence()


def test_a_case_is_plain_json() -> None:
    case = Case("x", "bond", "/t.yaml", {"lacp": ""}, (("sw", ("ip", "link")),))
    assert case.to_dict() == {"label": "x", "check": "bond", "topology": "/t.yaml",
                              "params": {"lacp": ""}, "sabotage": [["sw", ["ip", "link"]]],
                              "setup": ""}
