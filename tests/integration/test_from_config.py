"""The box after a reboot, without rebooting it: `topo from-config` of Proxmox's documented
interfaces files builds, and checks run on it (nat on NAT mode, a probe to the gateway on
bridged mode); each sabotaged file FAILs with the fault named. VLAN-aware and bonded
files give valid specs whose build, on a kernel without those features, stops with the
feature named (their traffic runs in the VM tier)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import netprobe
from netprobe._capabilities import probe as capabilities
from netprobe.check import Status, run_check
from netprobe.cli import cli
from netprobe.errors import SetupError
from netprobe.expect import Ending, probe

pytestmark = pytest.mark.root

DATA = Path(__file__).resolve().parent.parent / "data" / "interfaces"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "proxmox-nat" / "interfaces"
NAT = {"inside": "guest-vmbr0:eth0", "vm": "", "outside": "lan:eno1",
       "public_ip": "198.51.100.5", "forward": ""}  # fmt: skip
MASQUERADE = (
    "        post-up   iptables -t nat -A POSTROUTING -s '10.10.10.0/24' -o eno1 -j MASQUERADE\n"
)
FORWARDING = "        post-up   echo 1 > /proc/sys/net/ipv4/ip_forward\n"


def _from_config(tmp_path: Path, text: str, name: str = "afterboot") -> Path:
    """`netprobe topo from-config` of an interfaces file holding `text`: the spec's path."""
    (tmp_path / "interfaces").write_text(text)
    out = tmp_path / f"{name}.yaml"
    done = CliRunner().invoke(cli, ["topo", "from-config", str(tmp_path / "interfaces"),
                                    "-o", str(out)])  # fmt: skip
    assert done.exit_code == 0, done.output
    return out


def test_nat_mode_after_reboot_masquerades_its_guest(tmp_path: Path) -> None:
    result = run_check("nat", _from_config(tmp_path, EXAMPLE.read_text()), **NAT)
    assert result.status is Status.PASS, result.evidence()
    assert [s.name for s in result.steps] == [
        "guest-vmbr0:eth0 → 198.51.100.1: new flow leaves with source 198.51.100.5",
        "reply 198.51.100.1 → 198.51.100.5:40000: back to 10.10.10.2:40000",
        "guest-vmbr0:eth0 → 198.51.100.1: established flow keeps 198.51.100.5:40000",
    ]


def test_nat_mode_without_its_masquerade_line_fails_naming_it(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    assert MASQUERADE in text
    result = run_check("nat", _from_config(tmp_path, text.replace(MASQUERADE, "")), **NAT)
    assert result.status is Status.FAIL
    assert result.diagnosis == "no masquerade/SNAT rule for 10.10.10.0/24 out of eno1 on box"


def test_nat_mode_without_its_ip_forward_line_fails_naming_it(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    assert FORWARDING in text
    result = run_check("nat", _from_config(tmp_path, text.replace(FORWARDING, "")), **NAT)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None and result.diagnosis.startswith("ip_forward is 0 on box")


def test_bridged_box_reaches_its_gateway_through_the_bridge(tmp_path: Path) -> None:
    spec = netprobe.load(_from_config(tmp_path, (DATA / "bridged").read_text()))
    with netprobe.build(spec) as topo:
        result = probe(topo, "box", "192.168.10.1")
        assert result.ending is Ending.DELIVERED_ANSWERED, result.words
        assert [h.port for h in result.path][:2] == ["box:vmbr0", "box:eno1"]


def test_bridged_box_whose_nic_left_the_bridge_reaches_nothing(tmp_path: Path) -> None:
    text = (DATA / "bridged").read_text().replace("bridge-ports eno1", "bridge-ports none")
    spec = netprobe.load(_from_config(tmp_path, text))
    assert spec.host("lan").interface("eno1").addresses == ()  # type: ignore[union-attr]
    with netprobe.build(spec) as topo:
        result = probe(topo, "box", "192.168.10.1", hosts=["box", "guest-vmbr0", "lan"])
        assert result.ending is Ending.NO_NEIGHBOUR, result.words


@pytest.mark.parametrize(("name", "feature"), [
    ("vlan-aware", "bridge vlan_filtering"),
    ("bond-bridge-port", "bond"),
    ("vlan-bond-traditional", "bond"),
])
def test_vlan_and_bond_files_build_or_name_the_missing_feature(
    tmp_path: Path, name: str, feature: str
) -> None:
    spec = netprobe.load(_from_config(tmp_path, (DATA / name).read_text()))
    (capability,) = capabilities((feature,))
    if capability.present:
        pytest.skip(f"this kernel has {feature}: the build is the VM tier's to prove")
    with pytest.raises(SetupError) as caught:
        netprobe.build(spec)
    assert "this kernel has no" in str(caught.value) and "remedy:" in str(caught.value)
