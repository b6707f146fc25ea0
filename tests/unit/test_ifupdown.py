"""Reading /etc/network/interfaces: Proxmox VE's documented examples, sources, and bad input.

Bad inputs are written to tmp_path; the offending line of each is marked with `# <-`, and
the SpecError must name that file and exactly that line.
"""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from netprobe.errors import SpecError
from netprobe.topology._model.ifupdown import parse_interfaces, read_interfaces
from netprobe.topology._model.ifupdown_options import Stanza

DATA = Path(__file__).resolve().parent.parent / "data" / "interfaces"


def _by_name(path: Path) -> dict[str, Stanza]:
    return {s.name: s for s in parse_interfaces(path)}


def test_bridged_default() -> None:
    got = _by_name(DATA / "bridged")
    assert list(got) == ["lo", "eno1", "vmbr0"]
    assert (got["lo"].method, got["lo"].auto) == ("loopback", True)
    assert (got["eno1"].method, got["eno1"].auto) == ("manual", False)
    vmbr0 = got["vmbr0"]
    assert vmbr0.auto and vmbr0.family == "inet" and vmbr0.method == "static"
    assert vmbr0.addresses == (ipaddress.ip_interface("192.168.10.2/24"),)
    assert vmbr0.gateways == (ipaddress.ip_address("192.168.10.1"),)
    assert (vmbr0.bridge_ports, vmbr0.bridge_stp, vmbr0.bridge_fd) == (("eno1",), False, 0)
    assert vmbr0.line == 11 and vmbr0.file == str(DATA / "bridged")


def test_routed_bridge_without_ports() -> None:
    got = _by_name(DATA / "routed")
    assert got["vmbr0"].bridge_ports == ()  # `bridge-ports none`: a bridge all the same
    assert got["eno0"].bridge_ports is None
    assert got["eno0"].addresses == (ipaddress.ip_interface("198.51.100.5/29"),)
    assert got["eno0"].commands == (
        ("post-up", "echo 1 > /proc/sys/net/ipv4/ip_forward"),
        ("post-up", "echo 1 > /proc/sys/net/ipv4/conf/eno0/proxy_arp"),
    )


def test_masquerading_keeps_hook_commands_verbatim_in_order() -> None:
    vmbr0 = _by_name(DATA / "masquerading")["vmbr0"]
    assert vmbr0.addresses == (ipaddress.ip_interface("10.10.10.1/24"),)
    assert vmbr0.commands == (
        ("post-up", "echo 1 > /proc/sys/net/ipv4/ip_forward"),
        ("post-up", "iptables -t nat -A POSTROUTING -s '10.10.10.0/24' -o eno1 -j MASQUERADE"),
        ("post-down", "iptables -t nat -D POSTROUTING -s '10.10.10.0/24' -o eno1 -j MASQUERADE"),
    )


def test_vlan_aware_bridge_and_dotted_vlan() -> None:
    got = _by_name(DATA / "vlan-aware")
    assert got["vmbr0"].bridge_vlan_aware and got["vmbr0"].bridge_vids == ((2, 4094),)
    assert got["vmbr0"].method == "manual" and not got["vmbr0"].addresses
    vlan = got["vmbr0.5"]
    assert (vlan.vlan_raw_device, vlan.vlan_id, vlan.auto) == ("vmbr0", 5, True)
    assert got["eno1"].vlan_id is None


def test_bond_as_bridge_port() -> None:
    got = _by_name(DATA / "bond-bridge-port")
    bond0 = got["bond0"]
    assert (bond0.bond_slaves, bond0.bond_mode, bond0.bond_miimon) == (
        ("eno1", "eno2"), "802.3ad", 100)  # fmt: skip
    assert bond0.option("bond_xmit_hash_policy") == "layer2+3"  # untyped, kept
    assert got["vmbr0"].bridge_ports == ("bond0",)
    assert got["eno1"].bond_slaves is None


def test_vlan_on_bond_under_traditional_bridge() -> None:
    got = _by_name(DATA / "vlan-bond-traditional")
    assert (got["bond0.5"].vlan_raw_device, got["bond0.5"].vlan_id) == ("bond0", 5)
    assert got["vmbr0v5"].bridge_ports == ("bond0.5",)
    assert got["vmbr0v5"].vlan_id is None  # vmbr0v5 is a bridge, not a VLAN by its name
    assert got["vmbr0"].bridge_ports == ("bond0",)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_source_globs_relative_and_source_directory(tmp_path: Path) -> None:
    top = _write(tmp_path / "interfaces", """\
        auto lo
        iface lo inet loopback
        source interfaces.d/*.cfg
        source-directory parts
        allow-hotplug eth1
        """)
    _write(tmp_path / "interfaces.d" / "b.cfg", "iface eth1 inet dhcp\n")
    _write(tmp_path / "interfaces.d" / "a.cfg", "auto eth0\niface eth0 inet6 auto\n")
    _write(tmp_path / "interfaces.d" / "skip.bak", "iface never inet dhcp\n")
    _write(tmp_path / "parts" / "vlan10", "iface vlan10 inet manual\n  vlan-raw-device eth0\n")
    _write(tmp_path / "parts" / "x.cfg", "iface never inet dhcp\n")  # not a run-parts name
    config = read_interfaces(top)
    assert [s.name for s in config.stanzas] == ["lo", "eth0", "eth1", "vlan10"]
    got = {s.name: s for s in config.stanzas}
    assert got["eth0"].auto and got["eth0"].family == "inet6" and got["eth0"].method == "auto"
    assert got["eth1"].hotplug and not got["eth1"].auto
    assert (got["vlan10"].vlan_raw_device, got["vlan10"].vlan_id) == ("eth0", 10)
    assert got["eth1"].file == str(tmp_path / "interfaces.d" / "b.cfg")
    assert config.classes == {"auto": ("lo", "eth0"), "hotplug": ("eth1",)}
    assert len(config.files) == 4


def test_continuations_comments_netmask_and_ifupdown2_forms(tmp_path: Path) -> None:
    path = _write(tmp_path / "interfaces", """\
        # comment \\
        iface hidden inet dhcp
        allow-ovs vmbr9
        iface eth0 inet static
            address 192.0.2.7
            netmask 255.255.255.0
            address 2001:db8::7/64
            bridge_ports eth1 \\
         eth2
            mtu 9000
            up ip route add 203.0.113.0/24 \\
               via 192.0.2.1
            bond-mode 4
        iface eth0.4094
        """)
    config = read_interfaces(path)
    eth0, vlan = config.stanzas
    assert eth0.addresses == (ipaddress.ip_interface("192.0.2.7/24"),
                              ipaddress.ip_interface("2001:db8::7/64"))  # fmt: skip
    assert eth0.bridge_ports == ("eth1", "eth2") and eth0.mtu == 9000
    assert eth0.commands == (("up", "ip route add 203.0.113.0/24        via 192.0.2.1"),)
    assert eth0.bond_mode == "802.3ad" and eth0.line == 4
    assert (vlan.family, vlan.method, vlan.vlan_id) == (None, None, 4094)
    assert config.classes == {"ovs": ("vmbr9",)}


BAD = {
    "option before any iface": ("""\
        auto lo
        address 10.0.0.1/24  # <-
        iface lo inet loopback
        """, "outside any iface stanza"),
    "option after auto": ("""\
        iface eth0 inet manual
        auto eth0
            mtu 1500  # <-
        """, "outside any iface stanza"),
    "unknown method": ("iface eth0 inet staticc  # <-\n", "unknown inet method 'staticc'"),
    "inet6 method in inet": ("iface eth0 inet auto  # <-\n", "unknown inet method 'auto'"),
    "unknown family": ("iface eth0 ipx static  # <-\n", "unknown address family 'ipx'"),
    "two words": ("iface eth0 inet  # <-\n", "expected 'iface NAME FAMILY METHOD'"),
    "bad address": ("""\
        iface eth0 inet static
            address 10.0.0.300/24  # <-
        """, "not an IP address"),
    "end-of-line comment": ("iface eth0 inet static\n  address 10.0.0.1 # lan  # <-\n",
                            "address"),
    "prefix over 32": ("""\
        iface eth0 inet static
            netmask 24
            gateway 10.0.0.254
            address 10.0.0.2/33  # <-
        """, "not an IP address"),
    "netmask too long for v4": ("iface eth0 inet static\n  netmask 64  # <-\n  address 10.0.0.1\n",
                                "netmask '64' does not fit the IPv4 address 10.0.0.1"),
    "netmask not contiguous": ("iface eth0 inet static\n  address 10.0.0.5\n"
                               "  netmask 255.255.0.255  # <-\n", "one bits must come first"),
    "bad netmask": ("iface eth0 inet static\n  netmask 255.0.255.0  # <-\n", "not a netmask"),
    "bad gateway": ("iface eth0 inet static\n  gateway fe80::1::2  # <-\n", "not an IP address"),
    "bad bond mode": ("iface bond0 inet manual\n  bond-mode lacp  # <-\n", "not a bonding mode"),
    "bad stp": ("iface br0 inet manual\n  bridge-stp maybe  # <-\n", "expected yes or no"),
    "bad vids": ("iface br0 inet manual\n  bridge-vids 10 30-20  # <-\n", "runs backwards"),
    "vid over 4094": ("iface br0 inet manual\n  bridge-vids 2-4095  # <-\n", "1 to 4094"),
    "vlan name over 4094": ("iface eth0.4095 inet manual  # <-\n", "over 4094"),
    "bad mtu": ("iface eth0 inet manual\n  mtu 9k  # <-\n", "68 to 65535"),
    "option without value": ("iface eth0 inet manual\n  bridge-ports  # <-\n", "no value"),
    "missing source": ("source missing.cfg  # <-\n", "cannot read interfaces file"),
    "missing source-directory": ("source-directory nowhere  # <-\n", "source-directory nowhere"),
    "auto naming nothing": ("auto  # <-\n", "auto names nothing"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_names_file_and_line(tmp_path: Path, case: str) -> None:
    text, message = BAD[case]
    text = textwrap.dedent(text)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.endswith("# <-"))
    text = text.replace("  # <-\n", "\n")
    path = _write(tmp_path / "interfaces", text)
    with pytest.raises(SpecError) as caught:
        parse_interfaces(path)
    assert (caught.value.file, caught.value.line) == (str(path), line), str(caught.value)
    assert message in str(caught.value)


def test_source_loop_names_the_directive(tmp_path: Path) -> None:
    top = _write(tmp_path / "interfaces", "iface lo inet loopback\nsource a\n")
    _write(tmp_path / "a", "source b\n")
    _write(tmp_path / "b", "# b\nsource ../" + tmp_path.name + "/a\n")
    with pytest.raises(SpecError, match="source loop") as caught:
        parse_interfaces(top)
    assert (caught.value.file, caught.value.line) == (str(tmp_path / "b"), 2)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not a regular file") as caught:
        parse_interfaces(tmp_path)
    assert caught.value.file == str(tmp_path)
    _write(tmp_path / "interfaces", "source sub\n")
    (tmp_path / "sub").mkdir()
    with pytest.raises(SpecError, match=r"source .*sub: cannot read") as caught:
        parse_interfaces(tmp_path / "interfaces")
    assert (caught.value.file, caught.value.line) == (str(tmp_path / "interfaces"), 1)
