"""The persistent-configuration model read from Proxmox's documented interfaces files."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from netprobe.topology._model.ifupdown import read_interfaces
from netprobe.topology._model.persistent import from_ifupdown

DATA = Path(__file__).parent.parent / "data" / "interfaces"


def test_bridged_setup_has_a_bridge_with_its_port() -> None:
    config = from_ifupdown(read_interfaces(DATA / "bridged"))
    bridge = config.interface("vmbr0")
    assert bridge is not None and bridge.kind == "bridge" and bridge.method == "static"
    assert bridge.boot and bridge.addresses == (ipaddress.ip_interface("192.168.10.2/24"),)
    assert bridge.gateways == (ipaddress.ip_address("192.168.10.1"),)
    assert config.ports("vmbr0") == ("eno1",)
    nic = config.interface("eno1")
    assert nic is not None and nic.kind == "ethernet" and nic.method == "manual"
    assert nic.master == "vmbr0" and bridge.where.endswith("bridged:" + bridge.where.split(":")[-1])


def test_masquerading_setup_keeps_its_hook_commands_in_order() -> None:
    config = from_ifupdown(read_interfaces(DATA / "masquerading"))
    hooks = [(c.interface, c.hook) for c in config.commands]
    assert ("vmbr0", "post-up") in hooks and ("vmbr0", "post-down") in hooks
    assert any("MASQUERADE" in c.text for c in config.commands)
    assert all(":" in c.where for c in config.commands)


def test_bond_and_vlans_are_typed() -> None:
    config = from_ifupdown(read_interfaces(DATA / "vlan-bond-traditional"))
    kinds = {i.name: i.kind for i in config.interfaces}
    assert "bond" in kinds.values() and "vlan" in kinds.values()
    vlan = next(i for i in config.interfaces if i.kind == "vlan")
    assert vlan.vlan_parent is not None and vlan.vlan_id is not None
    bond = next(i for i in config.interfaces if i.kind == "bond")
    assert config.ports(bond.name) and bond.bond_mode is not None


def test_a_port_named_only_by_its_bridge_is_an_interface(tmp_path: Path) -> None:
    path = tmp_path / "interfaces"
    path.write_text("auto vmbr0\niface vmbr0 inet static\n  address 10.0.0.1/24\n"
                    "  bridge-ports eno1 eno2\n")
    config = from_ifupdown(read_interfaces(path))
    assert config.ports("vmbr0") == ("eno1", "eno2")
    port = config.interface("eno2")
    assert port is not None and port.kind == "ethernet" and port.boot
    assert port.where == f"{path}:2" and port.addresses == ()


def test_stanzas_of_one_name_and_family_are_merged_in_order(tmp_path: Path) -> None:
    path = tmp_path / "interfaces"
    path.write_text("auto eth0\niface eth0 inet static\n  address 192.168.1.5/24\n"
                    "  gateway 192.168.1.1\n  mtu 1400\n  post-up echo one\n"
                    "\niface eth0 inet static\n  address 10.0.0.5/24\n  mtu 9000\n"
                    "  post-up echo two\n"
                    "\niface eth0 inet6 static\n  address 2001:db8::5\n  netmask 64\n")
    config = from_ifupdown(read_interfaces(path))
    (eth0,) = config.interfaces
    assert eth0.addresses == tuple(ipaddress.ip_interface(a) for a in (
        "192.168.1.5/24", "10.0.0.5/24", "2001:db8::5/64"))  # fmt: skip
    assert eth0.gateways == (ipaddress.ip_address("192.168.1.1"),)
    assert eth0.mtu == 9000 and eth0.where == f"{path}:2" and eth0.method6 == "static"
    assert [c.text for c in config.commands] == ["echo one", "echo two"]


def test_brought_up_is_auto_and_what_it_needs(tmp_path: Path) -> None:
    path = tmp_path / "interfaces"
    path.write_text("auto vmbr0\niface vmbr0 inet manual\n  bridge-ports eno1\n"
                    "iface eno1 inet manual\niface eno2 inet manual\n"
                    "auto eno3.5\niface eno3.5 inet manual\niface eno3 inet manual\n")
    config = from_ifupdown(read_interfaces(path))
    assert config.brought_up() == {"vmbr0", "eno1", "eno3.5", "eno3"}


def test_one_interface_per_name_the_first_read() -> None:
    from netprobe.topology._model.persistent import PersistentConfig, PersistentInterface

    first = PersistentInterface("eth0", "ethernet", "a:1")
    config = PersistentConfig((first, PersistentInterface("eth0", "ethernet", "b:1"),
                               PersistentInterface("eth1", "ethernet", "a:3")))
    assert config.interface("eth0") is first
    assert [i.where for i in config.named()] == ["a:1", "a:3"]
