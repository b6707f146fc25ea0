"""NetworkManager keyfiles (nm-settings-keyfile(5)) read into the persistent model, on the
man page's and NetworkManager's own examples and on cloud-init's generated ones."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from netprobe.errors import SpecError
from netprobe.topology._model.keyfile_syntax import parse_keyfile
from netprobe.topology._model.nmkeyfile import read_keyfiles

DATA = Path(__file__).parent.parent / "data" / "networkmanager"


def test_ethernet_dhcp_profile_matched_by_mac() -> None:
    config = read_keyfiles([str(DATA / "ethernet-dhcp.nmconnection")])
    (nic,) = config.interfaces
    assert nic.kind == "ethernet" and nic.method == "dhcp" and nic.method6 == "auto"
    assert nic.boot and nic.mac == "00:23:5a:47:1f:71"
    assert nic.stand_in and nic.name == "nic00235a471f71"  # no interface-name: matched by MAC
    assert nic.where.endswith("ethernet-dhcp.nmconnection:5")


def test_ethernet_manual_profile_addresses_routes_dns() -> None:
    config = read_keyfiles([str(DATA / "ethernet-manual.nmconnection")])
    (nic,) = config.interfaces
    assert nic.method == "static" and nic.method6 == "static" and not nic.boot
    assert nic.addresses[:2] == (ipaddress.ip_interface("192.168.0.5/24"),
                                 ipaddress.ip_interface("1.2.3.4/8"))  # fmt: skip
    assert nic.gateways == (ipaddress.ip_address("192.168.0.1"),) and nic.mtu == 900
    assert ipaddress.ip_address("1::cafe") in nic.dns
    first = config.routes[0]
    assert (first.to, first.via, first.dev, first.metric) == ("10.10.10.0/24", "10.10.10.1",
                                                              nic.name, 3)  # fmt: skip
    assert config.routes[3].via is None  # 0.0.0.0: no next hop
    assert [r.family for r in config.routes].count(6) == 4


def test_bridge_and_its_port_from_the_man_page() -> None:
    config = read_keyfiles([str(DATA / "bridge-MainBridge.nmconnection"),
                            str(DATA / "bridge-port-em1.nmconnection")])  # fmt: skip
    bridge, port = config.interface("MainBridge"), config.interface("em1")
    assert bridge is not None and bridge.kind == "bridge"
    assert bridge.bridge_stp is True and bridge.bridge_fd == 15  # NetworkManager's defaults
    assert port is not None and port.master == "MainBridge" and port.method == "manual"
    assert config.ports("MainBridge") == ("em1",)


def test_bridge_port_by_controller_and_static_bridge() -> None:
    directory = DATA / "bridge-br0"
    config = read_keyfiles(sorted(str(p) for p in directory.iterdir()))
    bridge = config.interface("br0")
    assert bridge is not None and bridge.addresses == (ipaddress.ip_interface("1.2.3.4/24"),)
    assert bridge.gateways == (ipaddress.ip_address("1.1.1.1"),)
    assert len(config.ports("br0")) == 1


def test_bond_ports_and_vlan_resolved_by_uuid() -> None:
    config = read_keyfiles(sorted(str(p) for p in (DATA / "bond").iterdir()))
    bond = config.interface("bond0")
    assert bond is not None and bond.bond_mode == "active-backup" and bond.bond_miimon == 100
    assert bond.method == "dhcp"  # no [ipv4]: NetworkManager's default, auto
    assert sorted(config.ports("bond0")) == ["nicaad69f2ce880", "nicc0bb9f2ce880"]
    vlan = config.interface("bond0.200")
    assert vlan is not None and (vlan.vlan_parent, vlan.vlan_id) == ("bond0", 200)


def test_vlan_on_a_nic_without_a_profile() -> None:
    (vlan,) = read_keyfiles([str(DATA / "vlan-4A.nmconnection")]).interfaces
    assert (vlan.name, vlan.kind, vlan.vlan_parent, vlan.vlan_id) == ("VLAN-4A", "vlan",
                                                                      "eth0", 4)  # fmt: skip


def test_glib_syntax_escapes_and_lists(tmp_path: Path) -> None:
    path = tmp_path / "x.nmconnection"
    path.write_text("# c\n[connection]\nid=a\\sb\\\\c\n  [ipv4]\ndns=1.1.1.1;8.8.8.8;\n"
                    "key[de]=übersetzt\n")
    keyfile = parse_keyfile(path)
    assert keyfile.groups["connection"]["id"].text() == "a b\\c"
    assert keyfile.groups["ipv4"]["dns"].items() == ["1.1.1.1", "8.8.8.8"]
    assert "key[de]" not in keyfile.groups["ipv4"]


def test_wifi_profile_is_skipped_and_a_second_profile_for_a_nic_loses(tmp_path: Path) -> None:
    (tmp_path / "wifi.nmconnection").write_text("[connection]\nid=w\ntype=wifi\n")
    for n, priority in (("a", 0), ("b", 10)):
        (tmp_path / f"{n}.nmconnection").write_text(
            f"[connection]\nid={n}\ntype=ethernet\ninterface-name=eth0\n"
            f"autoconnect-priority={priority}\n")
    config = read_keyfiles(sorted(str(p) for p in tmp_path.iterdir()))
    assert [i.where.split("/")[-1] for i in config.interfaces] == ["b.nmconnection:1"]
    reasons = [why for _, why in config.skipped]
    assert "a wifi profile: not modelled" in reasons
    assert any("is the profile eth0 comes up with" in why for why in reasons)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("[connection]\nid=x\ntype=ethernet\nthis line is broken\n", 4, "not a key=value line"),
    ("id=x\n[connection]\n", 1, "comes before any [group]"),
    ("[connection\nid=x\n", 1, "malformed group header"),
    ("[connection]\nid=x\ntype=ethernett\n", 3, "unknown connection type 'ethernett'"),
    ("[connection]\ntype=ethernet\ninterface-name=eth0\n[ipv4]\nmethod=manual\n"
     "address1=10.0.0.300/24\n", 6, "'10.0.0.300/24' is not an IP address"),
    ("[connection]\ntype=ethernet\ninterface-name=eth0\n[ipv4]\nmethod=manual\n", 5,
     "method=manual with no ipv4.addresses"),
    ("[connection]\ntype=ethernet\ninterface-name=eth0\nmaster=br9\nslave-type=bridge\n", 4,
     "port of 'br9', but no profile read is that bridge"),
    ("[connection]\ntype=ethernet\nautoconnect=perhaps\n", 3, "expected true or false"),
    ("[connection]\ntype=ethernet\nid=a\\qb\n", 3, "invalid escape sequence '\\q'"),
    ("[connection]\ntype=vlan\ninterface-name=v\n[vlan]\nid=5000\nparent=eth0\n", 5,
     "from 0 to 4094"),
    ("[connection]\ntype=ethernet\ninterface-name=eth0\n[ipv4]\nmethod=automatic\n", 5,
     "unknown ipv4.method 'automatic'"),
])  # fmt: skip
def test_bad_keyfile_names_file_and_line(tmp_path: Path, text: str, line: int,
                                         message: str) -> None:
    path = tmp_path / "bad.nmconnection"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        read_keyfiles([str(path)])
    assert (caught.value.file, caught.value.line) == (str(path), line)
    assert message in caught.value.reason
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_routes_in_another_table_are_set_aside_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "eth0.nmconnection"
    path.write_text("[connection]\ntype=ethernet\ninterface-name=eth0\n[ipv4]\nmethod=manual\n"
                    "address1=10.0.0.5/24,10.0.0.1\nroute1=10.9.0.0/16,10.0.0.9\n"
                    "route1_options=table=100\nroute2=10.8.0.0/16,10.0.0.8\n"
                    "[ipv6]\nmethod=manual\naddress1=2001:db8::5/64,2001:db8::1\n"
                    "route-table=200\n")
    config = read_keyfiles([str(path)])
    assert [r.to for r in config.routes] == ["10.8.0.0/16"]
    assert config.interfaces[0].gateways == (ipaddress.ip_address("10.0.0.1"),)
    assert config.skipped == (
        (f"{path}:7", "route 10.9.0.0/16 in table 100 (policy routing): not modelled"),
        (f"{path}:13", "the default route via 2001:db8::1 in table 200 (policy routing): not "
                       "modelled"))
