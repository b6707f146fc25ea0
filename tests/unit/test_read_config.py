"""read_config: interfaces files, NetworkManager keyfiles and sysctl files (or directories
of them) merged into one persistent configuration, each kind told by name and content."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from netprobe.errors import SpecError
from netprobe.topology._model.config import kind_of, read_config

DATA = Path(__file__).parent.parent / "data"
INTERFACES = DATA / "interfaces"
NM = DATA / "networkmanager"


def test_interfaces_file_with_hooks_fills_sysctls_and_firewall() -> None:
    config = read_config([INTERFACES / "masquerading"])
    assert config.sysctl("net.ipv4.ip_forward") == "1"
    assert [f.argv[-1] for f in config.firewall] == ["MASQUERADE"]
    assert config.files == (str(INTERFACES / "masquerading"),)
    assert config.interface("vmbr0") is not None


def test_sysctl_files_then_hooks_in_boot_order(tmp_path: Path) -> None:
    sysctl_d = tmp_path / "sysctl.d"
    sysctl_d.mkdir()
    (sysctl_d / "10-net.conf").write_text("# forwarding off\nnet.ipv4.ip_forward = 0\n"
                                          "; comment\n-net/ipv4/conf/all/rp_filter=2\n")
    (sysctl_d / "99-late.conf").write_text("net.ipv4.conf.all.rp_filter = 1\n")
    (sysctl_d / "README.sysctl").write_text("not read: sysctl.d reads *.conf only\n")
    config = read_config([sysctl_d, INTERFACES / "masquerading"])
    assert config.sysctl("net.ipv4.conf.all.rp_filter") == "1"
    assert config.sysctl("net.ipv4.ip_forward") == "1"  # the post-up echo runs after
    assert config.sysctls[0] == ("net.ipv4.ip_forward", "0", f"{sysctl_d}/10-net.conf:2")
    assert str(sysctl_d / "README.sysctl") not in config.files


def test_kind_is_told_by_name_then_content(tmp_path: Path) -> None:
    shutil.copy(INTERFACES / "bridged", tmp_path / "proxmox.txt")
    (tmp_path / "lab.txt").write_text("# settings\nnet.ipv4.ip_forward=1\n")
    (tmp_path / "sysctl.conf").write_text("# all comments, as Debian ships it\n")
    assert kind_of(tmp_path / "proxmox.txt") == "interfaces"
    assert kind_of(tmp_path / "lab.txt") == "sysctl"
    assert kind_of(tmp_path / "sysctl.conf") == "sysctl"
    assert kind_of(INTERFACES / "routed") == "interfaces"


def test_neither_kind_is_a_spec_error_naming_the_file(tmp_path: Path) -> None:
    odd = tmp_path / "notes.txt"
    odd.write_text("hello world\n")
    with pytest.raises(SpecError, match=rf"^{odd}: not an interfaces file, NetworkManager "):
        read_config([odd])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.txt").write_text("x\n")
    with pytest.raises(SpecError, match=rf"^{empty}: a directory of neither"):
        read_config([empty])
    with pytest.raises(SpecError, match="no configuration file given"):
        read_config([])
    with pytest.raises(SpecError, match=rf"^{tmp_path}/absent: cannot read"):
        read_config([tmp_path / "absent"])


def test_a_malformed_sysctl_line_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "sysctl.conf"
    bad.write_text("net.ipv4.ip_forward = 1\nnet.ipv4 forwarding\n")
    with pytest.raises(SpecError, match=rf"^{bad}:2: expected 'key = value'"):
        read_config([bad])


def test_an_interface_in_two_interfaces_files_is_an_error(tmp_path: Path) -> None:
    shutil.copy(INTERFACES / "bridged", tmp_path / "interfaces")
    with pytest.raises(SpecError, match=rf"^{tmp_path}/interfaces:6: lo is configured again"):
        read_config([INTERFACES / "bridged", tmp_path / "interfaces"])


def test_a_directory_of_keyfiles_as_system_connections(tmp_path: Path) -> None:
    connections = tmp_path / "system-connections"
    shutil.copytree(NM / "bond", connections)
    (connections / "cloud-init-eth1.nmconnection~").write_text("an editor's backup\n")
    shutil.copy(NM / "vlan-4A.nmconnection", connections / "VLAN 4A")  # an older, bare name
    config = read_config([connections])
    names = {i.name for i in config.interfaces}
    assert {"bond0", "bond0.200", "VLAN-4A"} <= names
    assert not any(f.endswith("~") for f in config.files)
    assert kind_of(NM / "ethernet-dhcp.nmconnection") == "keyfile"
    assert kind_of(connections / "VLAN 4A") == "keyfile"


def test_ifupdown_wins_over_a_profile_for_the_same_interface(tmp_path: Path) -> None:
    profile = tmp_path / "eno1.nmconnection"
    profile.write_text("[connection]\nid=eno1\ntype=ethernet\ninterface-name=eno1\n")
    config = read_config([INTERFACES / "bridged", profile, NM / "vlan-4A.nmconnection"])
    eno1 = config.interface("eno1")
    assert eno1 is not None and eno1.master == "vmbr0"  # ifupdown's stanza
    assert any("eno1 is ifupdown's" in why for _, why in config.skipped)
    assert config.interface("VLAN-4A") is not None
    assert str(profile) in config.files and str(INTERFACES / "bridged") in config.files


def test_a_bad_keyfile_in_a_directory_names_file_and_line(tmp_path: Path) -> None:
    connections = tmp_path / "system-connections"
    connections.mkdir()
    bad = connections / "lan.nmconnection"
    bad.write_text("[connection]\ntype=bridge\n")
    with pytest.raises(SpecError, match=rf"^{bad}:1: a bridge profile needs connection\."):
        read_config([connections])
