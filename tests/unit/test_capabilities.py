"""capabilities: the pure logic (no root, no namespaces).

Kernel probing itself is replaced by fakes here; tests/integration/test_capabilities.py
runs the real thing.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netprobe import _capabilities as capabilities
from netprobe import _privilege as privilege
from netprobe._capabilities import Capability
from netprobe.errors import SetupError

STATUS = "Name:\tpython3\nCapPrm:\t000001ffffffffff\nCapEff:\t{}\nCapBnd:\t000001ffffffffff\n"


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """Every test starts and ends with an empty probe cache."""
    capabilities.clear_cache()
    yield
    capabilities.clear_cache()


def fake_tool(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("capeff", "bit", "expected"),
    [
        ("000001fffeffffff", 12, True),  # this machine: all but CAP_SYS_RESOURCE
        ("000001fffeffffff", 24, False),
        ("0000000000001000", 12, True),
        ("0000000000000000", 12, False),
        ("00000000a80425fb", 12, False),  # docker's default set has no CAP_NET_ADMIN
    ],
)
def test_cap_eff_has_reads_the_effective_set(capeff: str, bit: int, expected: bool) -> None:
    assert privilege.cap_eff_has(STATUS.format(capeff), bit) is expected


def test_cap_eff_has_without_a_capeff_line_is_false() -> None:
    assert privilege.cap_eff_has("Name:\tx\nUid:\t0\t0\t0\t0\n", 12) is False


def test_describe_errno_names_the_missing_link_type() -> None:
    detail = capabilities.describe_errno(errno.EOPNOTSUPP, "'bond' link type")
    assert detail == "EOPNOTSUPP: kernel has no 'bond' link type"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.EAFNOSUPPORT, "EAFNOSUPPORT: kernel has no X"),
        (errno.ENODEV, "ENODEV: kernel has no X"),
        (errno.EPERM, "EPERM: not permitted to create X"),
        (errno.EINVAL, f"EINVAL: {os.strerror(errno.EINVAL)} (creating X)"),
    ],
)
def test_describe_errno_separates_missing_forbidden_and_rejected(code: int, expected: str) -> None:
    assert capabilities.describe_errno(code, "X") == expected


def test_describe_errno_survives_an_unknown_code() -> None:
    assert capabilities.describe_errno(4242, "X").startswith("errno 4242: ")


def test_require_names_every_missing_capability_with_its_remedy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bond_detail = "EOPNOTSUPP: kernel has no 'bond' link type"
    ovs_remedy = "apt-get install openvswitch-switch"
    fake = [
        Capability("veth", "kernel", True, "created a veth link", None),
        Capability("bond", "kernel", False, bond_detail, "modprobe bonding"),
        Capability("ovs-vsctl", "tool", False, "not found on PATH", ovs_remedy),
    ]
    asked: list[tuple[str, ...]] = []

    def fake_probe(names: tuple[str, ...]) -> list[Capability]:
        asked.append(tuple(names))
        return fake

    monkeypatch.setattr(capabilities, "probe", fake_probe)
    with pytest.raises(SetupError) as caught:
        capabilities.require("veth", "bond", "ovs-vsctl")
    assert asked == [("veth", "bond", "ovs-vsctl")]
    message = str(caught.value)
    assert "bond (kernel): EOPNOTSUPP: kernel has no 'bond' link type" in message
    assert "ovs-vsctl (tool): not found on PATH" in message
    assert "veth" not in message
    assert caught.value.remedy == (
        "bond: modprobe bonding; ovs-vsctl: apt-get install openvswitch-switch"
    )


def test_require_is_silent_when_everything_is_present(monkeypatch: pytest.MonkeyPatch) -> None:
    present = [Capability("veth", "kernel", True, "ok", None)]
    monkeypatch.setattr(capabilities, "probe", lambda names: present)
    capabilities.require("veth")


def test_require_root_explains_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    from netprobe import _privilege as privilege

    monkeypatch.setattr(privilege, "is_root", lambda: False)
    with pytest.raises(
        SetupError, match=r"netprobe needs root \(CAP_NET_ADMIN and CAP_SYS_ADMIN\)"
    ) as caught:
        privilege.require_root()
    assert caught.value.remedy


def test_iptables_is_both_a_kernel_feature_and_a_tool() -> None:
    resolve = capabilities._resolve
    assert resolve(["iptables"]) == [("kernel", "iptables"), ("tool", "iptables")]
    assert resolve(["tool:iptables", "kernel:iptables"]) == [
        ("tool", "iptables"),
        ("kernel", "iptables"),
    ]
    assert resolve("nft") == [("tool", "nft")]  # a bare string is one name, not characters
    assert resolve(["veth", "veth", "kernel:veth"]) == [("kernel", "veth")]


def test_all_names_resolve_in_declared_order() -> None:
    keys = capabilities._resolve(None)
    assert [n for kind, n in keys if kind == "kernel"] == list(capabilities.KERNEL_FEATURES)
    assert [n for kind, n in keys if kind == "tool"] == list(capabilities.TOOLS)


@pytest.mark.parametrize("name", ["vlan", "tool:veth", "kernel:nmap", "kernel:"])
def test_unknown_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unknown capability"):
        capabilities.probe([name])


def test_every_kernel_feature_has_a_probe_and_a_remedy() -> None:
    probed_in_ns = set(capabilities._FEATURES)
    assert probed_in_ns | {"tracefs drop reasons"} == set(capabilities.KERNEL_FEATURES)
    assert all(f.remedy for f in capabilities._FEATURES.values())


def test_probe_errors_become_details(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyroute2.netlink.exceptions import NetlinkError

    def fails(exc: Exception) -> capabilities._Feature:
        return capabilities._Feature("'bond' link type", "modprobe bonding", _raiser(exc))

    cases = {
        NetlinkError(errno.EOPNOTSUPP): "EOPNOTSUPP: kernel has no 'bond' link type",
        OSError(errno.EPERM, "nope"): "EPERM: not permitted to create 'bond' link type",
        capabilities._ProbeFailed("`nft -f -` failed: boom"): "`nft -f -` failed: boom",
    }
    for exc, detail in cases.items():
        monkeypatch.setitem(capabilities._FEATURES, "bond", fails(exc))
        cap = capabilities._try_feature("bond", scratch=None)  # type: ignore[arg-type]
        assert cap == Capability("bond", "kernel", False, detail, "modprobe bonding")


def _raiser(exc: Exception) -> Callable[[object], str]:
    def run(scratch: object) -> str:
        raise exc

    return run


def test_not_root_reports_every_kernel_feature_unprobed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capabilities, "is_root", lambda: False)
    caps = capabilities.probe(f"kernel:{n}" for n in capabilities.KERNEL_FEATURES)
    assert [c.name for c in caps] == list(capabilities.KERNEL_FEATURES)
    unprobed = (False, "not probed: needs root", "run as root")
    assert all((c.present, c.detail, c.remedy) == unprobed for c in caps)


def test_results_are_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_kernel(names: list[str]) -> dict[str, Capability]:
        calls.append(list(names))
        return {n: Capability(n, "kernel", True, "fake", None) for n in names}

    monkeypatch.setattr(capabilities, "_probe_kernel", fake_kernel)
    capabilities.probe(["veth"])
    capabilities.probe(["veth", "bridge"])
    assert calls == [["veth"], ["bridge"]]  # only what is not cached yet
    capabilities.clear_cache()
    capabilities.probe(["veth"])
    assert calls[-1] == ["veth"]


def test_tools_report_the_first_line_of_their_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_tool(tmp_path, "nmap", "echo 'Nmap version 9.99 ( fake )'; echo 'second line'")
    fake_tool(tmp_path, "ip", '[ "$1" = -V ] && echo "ip utility, iproute2-fake" >&2')
    monkeypatch.setenv("PATH", str(tmp_path))
    nmap, ip, ovs = capabilities.probe(["nmap", "ip", "ovs-vsctl"])
    assert nmap == Capability("nmap", "tool", True, "Nmap version 9.99 ( fake )", None)
    assert ip.detail == "ip utility, iproute2-fake"  # ip -V, and stderr counts
    assert ovs == Capability(
        "ovs-vsctl", "tool", False, "not found on PATH", "apt-get install openvswitch-switch"
    )


def test_a_hanging_tool_times_out_and_is_killed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_tool(tmp_path, "ethtool", f"echo $$ > {tmp_path}/pid; exec sleep 30")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setattr(capabilities, "_TOOL_TIMEOUT", 0.3)
    (cap,) = capabilities.probe(["ethtool"])
    assert (cap.present, cap.detail) == (False, "version query timed out")
    assert cap.remedy == "apt-get install ethtool"
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped, not left running


# -- tracefs: one owner mounts it ---------------------------------------------------------


def _fake_mount(
    monkeypatch: pytest.MonkeyPatch, outcome: Callable[[list[str]], object]
) -> list[list[str]]:
    import subprocess

    calls: list[list[str]] = []

    def run(argv: list[str], **_: object) -> object:
        calls.append(argv)
        return outcome(argv)

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def test_tracefs_already_there_is_not_mounted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "instances").mkdir()
    calls = _fake_mount(monkeypatch, lambda argv: pytest.fail("mounted again"))
    assert capabilities.mount_tracefs(str(tmp_path)) is None and not calls


def test_tracefs_mounted_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    def mounted(argv: list[str]) -> object:
        (tmp_path / "instances").mkdir()
        return subprocess.CompletedProcess(argv, 0, "", "")

    calls = _fake_mount(monkeypatch, mounted)
    assert capabilities.mount_tracefs(str(tmp_path)) == f"mounted tracefs at {tmp_path}"
    assert calls == [["mount", "-t", "tracefs", "nodev", str(tmp_path)]]


@pytest.mark.parametrize(
    ("outcome", "said"),
    [
        ("refused", "mount: permission denied"),
        ("missing", "No such file or directory"),
        ("silent", "mount failed"),
    ],
)
def test_tracefs_that_cannot_be_mounted_is_a_setup_error_with_the_remedy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcome: str, said: str
) -> None:
    import subprocess

    def run(argv: list[str]) -> object:
        if outcome == "missing":
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "mount")
        code = 32 if outcome == "refused" else 0
        return subprocess.CompletedProcess(argv, code, "", said if code else "")

    _fake_mount(monkeypatch, run)
    with pytest.raises(SetupError, match=said) as caught:
        capabilities.mount_tracefs(str(tmp_path))
    assert caught.value.remedy == f"run as root, or mount it: mount -t tracefs nodev {tmp_path}"


def test_explain_mounts_tracefs_through_capabilities() -> None:
    from netprobe.traffic import _tracefs as tracefs

    assert tracefs.mount_tracefs is capabilities.mount_tracefs
    assert tracefs.TRACEFS == capabilities.TRACEFS
