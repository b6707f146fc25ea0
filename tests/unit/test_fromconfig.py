"""A box's configuration → the lab of the box after a reboot (`topo from-config`): every
Proxmox fixture, hook firewall lines replayed, what is not applied, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from netprobe.cli import cli
from netprobe.errors import SpecError
from netprobe.topology import Bond, Bridge, BridgeVlan, Route, Spec, Veth, Vlan, loads
from netprobe.topology._model.config import read_config
from netprobe.topology._model.fromconfig import Lab, from_config, lab_yaml
from netprobe.topology._model.fromconfig_rules import rulesets
from netprobe.topology._model.hookcommand import interpret
from netprobe.topology._model.persistent import Command

DATA = Path(__file__).resolve().parent.parent / "data" / "interfaces"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "proxmox-nat" / "interfaces"


def _lab(path: Path, **kw: str) -> Lab:
    return from_config(read_config([path]), **kw)


def _written(lab: Lab, folder: Path) -> Spec:
    """The lab as `topo from-config -o` leaves it, read back by the topology loader."""
    for name, text in lab.rulesets.items():
        (folder / name).write_text(text)
    (folder / "lab.yaml").write_text(lab_yaml(lab))
    return loads((folder / "lab.yaml").read_text(), source=str(folder / "lab.yaml"))


def _kinds(spec: Spec, host: str) -> dict[str, object]:
    return {i.name: i.kind for i in spec.host(host).interfaces}


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.iterdir()))
def test_every_fixture_makes_a_spec_the_loader_reads_back_equal(name: str, tmp_path: Path) -> None:
    lab = _lab(DATA / name)
    assert _written(lab, tmp_path).hosts[0].name == "box"
    back = _written(lab, tmp_path)
    assert [h.name for h in back.hosts] == [h.name for h in lab.spec.hosts]
    for host in lab.spec.hosts:
        mine, theirs = host, back.host(host.name)
        assert mine.interfaces == theirs.interfaces and mine.routes == theirs.routes
        assert mine.sysctls == theirs.sysctls


def test_masquerading_is_nat_mode_with_a_guest_and_the_masquerade_rule() -> None:
    lab = _lab(DATA / "masquerading", name="nat")
    box = lab.spec.host("box")
    assert _kinds(lab.spec, "box") == {
        "eno1": Veth("lan:eno1"), "vmbr0": Bridge(stp=False, forward_delay=0), "veth100i0": None,
    }  # fmt: skip
    assert [str(a) for a in box.interface("eno1").addresses] == ["198.51.100.5/24"]  # type: ignore[union-attr]
    assert box.routes == (Route("default", via="198.51.100.1"),)
    assert dict(box.sysctls) == {"net.ipv4.ip_forward": "1"}
    assert [(f.kind, f.path) for f in box.firewall] == [("iptables", "nat.iptables")]
    rules = lab.rulesets["nat.iptables"]
    assert "*nat\n" in rules
    assert "\n-A POSTROUTING -s 10.10.10.0/24 -o eno1 -j MASQUERADE\n" in rules
    assert "-D" not in rules  # the post-down twin never runs at boot
    lan = lab.spec.host("lan")
    assert [str(a) for a in lan.interface("eno1").addresses] == ["198.51.100.1/24"]  # type: ignore[union-attr]
    guest = lab.spec.host("guest-vmbr0")
    assert guest.interface("eth0").kind == Veth("box:veth100i0")  # type: ignore[union-attr]
    assert [str(a) for a in guest.interface("eth0").addresses] == ["10.10.10.2/24"]  # type: ignore[union-attr]
    assert guest.routes == (Route("default", via="10.10.10.1"),)
    assert box.interface("veth100i0").master == "vmbr0"  # type: ignore[union-attr]
    assert lab.unapplied == ()


def test_the_readme_example_is_the_documented_masquerading_file() -> None:
    assert EXAMPLE.read_text() == (DATA / "masquerading").read_text()
    assert "pve-network.adoc" in EXAMPLE.read_text()  # where it came from


def test_bridged_puts_the_gateway_on_the_lan_behind_the_bridge_port() -> None:
    lab = _lab(DATA / "bridged")
    assert [h.name for h in lab.spec.hosts] == ["box", "lan"]  # vmbr0 has a NIC: no guest
    box = lab.spec.host("box")
    assert box.interface("eno1").master == "vmbr0"  # type: ignore[union-attr]
    assert box.interface("eno1").up  # type: ignore[union-attr]  # no auto, but vmbr0's port
    assert box.routes == (Route("default", via="192.168.10.1"),)
    assert [str(a) for a in lab.spec.host("lan").interface("eno1").addresses] == [  # type: ignore[union-attr]
        "192.168.10.1/24"
    ]


def test_routed_takes_the_proc_sys_hooks_as_sysctls_and_gives_vmbr0_a_guest() -> None:
    lab = _lab(DATA / "routed")
    assert dict(lab.spec.host("box").sysctls) == {
        "net.ipv4.ip_forward": "1", "net.ipv4.conf.eno0.proxy_arp": "1"}
    guest = lab.spec.host("guest-vmbr0")
    assert [str(a) for a in guest.interface("eth0").addresses] == ["203.0.113.18/28"]  # type: ignore[union-attr]


def test_vlan_aware_ports_carry_the_bridge_vids_and_the_lan_tags_the_gateway() -> None:
    lab = _lab(DATA / "vlan-aware")
    box = lab.spec.host("box")
    vmbr0 = box.interface("vmbr0")
    assert vmbr0 is not None and vmbr0.kind == Bridge(forward_delay=0, vlan_filtering=True)
    assert box.interface("vmbr0.5").kind == Vlan("vmbr0", 5)  # type: ignore[union-attr]
    vlans = box.interface("eno1").vlans  # type: ignore[union-attr]
    assert vlans[0] == BridgeVlan(1, pvid=True, untagged=True)
    assert [v.id for v in vlans[1:]] == list(range(2, 4095))
    lan = lab.spec.host("lan")
    assert lan.interface("eno1.5").kind == Vlan("eno1", 5)  # type: ignore[union-attr]
    assert [str(a) for a in lan.interface("eno1.5").addresses] == ["10.10.10.1/24"]  # type: ignore[union-attr]
    (note,) = lab.unapplied  # the bridge's own VLAN 5, which the spec cannot give
    assert note.where.endswith("vlan-aware:13") and "VLAN 5 on bridge vmbr0 itself" in note.what
    assert "[{id: 1, pvid: true, untagged: true}, 2, 3, 4," in lab_yaml(lab)  # ids in a row


def test_bond_under_the_bridge_is_mirrored_by_a_bond_on_the_lan() -> None:
    lab = _lab(DATA / "bond-bridge-port")
    box, lan = _kinds(lab.spec, "box"), _kinds(lab.spec, "lan")
    assert box["bond0"] == Bond("802.3ad", miimon=100) == lan["bond0"]
    assert box["eno1"] == Veth("lan:eno1") and box["eno2"] == Veth("lan:eno2")
    assert lab.spec.host("box").interface("bond0").master == "vmbr0"  # type: ignore[union-attr]
    assert lab.spec.host("lan").interface("eno2").master == "bond0"  # type: ignore[union-attr]
    assert [str(a) for a in lab.spec.host("lan").interface("bond0").addresses] == [  # type: ignore[union-attr]
        "10.10.10.1/24"
    ]


def test_vlan_on_a_bond_reaches_the_lan_on_the_same_vlan_of_its_bond() -> None:
    lab = _lab(DATA / "vlan-bond-traditional")
    box = lab.spec.host("box")
    assert box.interface("bond0.5").kind == Vlan("bond0", 5)  # type: ignore[union-attr]
    assert box.interface("bond0.5").master == "vmbr0v5"  # type: ignore[union-attr]
    lan = lab.spec.host("lan").interface("bond0.5")
    assert lan is not None and lan.kind == Vlan("bond0", 5)
    assert [str(a) for a in lan.addresses] == ["10.10.10.1/24"]
    assert box.routes == (Route("default", via="10.10.10.1"),)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "interfaces"
    path.write_text(text)
    return path


def test_what_is_not_applied_is_listed_with_its_line(tmp_path: Path) -> None:
    path = _config(tmp_path, """\
auto eth0
iface eth0 inet dhcp
    post-up logger up
    post-up iptables-restore < /etc/iptables.rules
iface eth1 inet static
    address 10.1.0.2/24
    post-up iptables -A INPUT -j DROP
auto eth2
iface eth2 inet static
    address 10.2.0.2/24
    gateway 10.2.0.1
    gateway 10.2.0.9
""")
    lab = from_config(read_config([path]))
    notes = {(n.where.rpartition(":")[2], n.what): n.why for n in lab.unapplied}
    assert ("2", "iface eth0 inet dhcp") not in notes  # a client, and a server on the lan
    assert lab.spec.host("box").interface("eth0").dhcp  # type: ignore[union-attr]
    assert [s.interface for s in lab.spec.host("lan").dhcp_servers] == ["eth0"]
    assert "logger is not a route" in notes[("3", "post-up logger up")]
    assert "a file of the box" in notes[("4", "iptables-restore < /etc/iptables.rules")]
    assert "boot does not bring up" in notes[("5", "addresses of eth1")] + notes[
        ("7", "iptables -A INPUT -j DROP")]
    assert "second default route" in notes[("9", "gateway 10.2.0.9 of eth2")]
    assert lab.rulesets == {}  # eth1's hook never runs
    assert not lab.spec.host("box").interface("eth1").up  # type: ignore[union-attr]
    header = lab_yaml(lab).split("name:")[0]
    assert "# Not applied" in header and f"{path}:3: post-up logger up" in header
    assert "stand-in DHCP server" in header


def _replayed(*lines: str) -> str:
    commands = [Command("eth0", "post-up", text, f"f:{n}") for n, text in enumerate(lines, 1)]
    found = rulesets(interpret(commands).firewall)
    assert found.skipped == (), found.skipped
    return found.texts["iptables"]


def test_iptables_lines_are_replayed_in_boot_order() -> None:
    text = _replayed(
        "iptables -N GUESTS", "iptables -A FORWARD -j GUESTS", "iptables -A GUESTS -j ACCEPT",
        "iptables -I FORWARD -i lo -j ACCEPT", "iptables -w -A FORWARD -j DROP",
        "iptables -D FORWARD -j DROP", "iptables -P FORWARD DROP",
        "iptables -A INPUT -m comment --comment 'two words' -j ACCEPT",
    )
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body == [
        "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]",
        ":GUESTS - [0:0]", '-A INPUT -m comment --comment "two words" -j ACCEPT',
        "-A FORWARD -i lo -j ACCEPT", "-A FORWARD -j GUESTS", "-A GUESTS -j ACCEPT", "COMMIT",
    ]


def test_iptables_lines_boot_would_refuse_are_not_applied() -> None:
    commands = [Command("eth0", "post-up", t, f"f:{n}") for n, t in enumerate(
        ["iptables -A NOPE -j ACCEPT", "iptables -t bogus -A INPUT -j ACCEPT",
         "iptables -F FORWARD", "nft add table inet f", "nft delete table inet f",
         "nft -f /etc/nftables.conf"], 1)]
    found = rulesets(interpret(commands).firewall)
    why = {line.command.where: reason for line, reason in found.skipped}
    assert "chain NOPE does not exist" in why["f:1"] and "unknown table 'bogus'" in why["f:2"]
    assert "nft delete" in why["f:5"] and "/etc/nftables.conf" in why["f:6"]
    assert "f:3" not in why and found.texts["nft"].endswith("add table inet f\n")


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("auto eth0\niface eth0 inet static\n  address 10.0.0.300/24\n", 3, "not an IP address"),
    ("auto br0\niface br0 inet static\n  bridge-ports none\n  bridge-stp on\n  bridge-fd 0\n",
     2, "forward_delay must be 2 to 30 seconds with stp"),
    ("auto v\niface v inet manual\n  vlan-raw-device eth0\n  vlan-id 0\n", 2, "vlan id"),
])
def test_bad_input_names_the_file_and_line(tmp_path: Path, text: str, line: int,
                                           reason: str) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        from_config(read_config([path]))
    assert (caught.value.file, caught.value.line) == (str(path), line)
    assert reason in caught.value.reason


def test_cli_writes_the_spec_and_rulesets_or_nothing(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "nat.yaml"
    done = runner.invoke(cli, ["topo", "from-config", str(EXAMPLE), "-o", str(out),
                               "--name", "pve"])
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nat.iptables", "nat.yaml"]
    spec = loads(out.read_text(), source=str(out))
    assert spec.name == "nat" and [h.name for h in spec.hosts] == ["pve", "lan", "guest-vmbr0"]
    bad = _config(tmp_path, "auto eth0\niface eth0 inet static\n  address 10.0.0.300/24\n")
    failed = runner.invoke(cli, ["topo", "from-config", str(bad), "-o", str(tmp_path / "b.yaml")])
    assert failed.exit_code == 2
    assert failed.output.strip().splitlines() == [
        f"netprobe: error: {bad}:3: address '10.0.0.300/24': not an IP address with an "
        "optional /prefix"
    ]
    assert not (tmp_path / "b.yaml").exists()


def test_cli_prints_the_spec_without_output(tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["topo", "from-config", str(DATA / "bridged")])
    assert done.exit_code == 0
    assert "name: box\nhosts:\n  box:\n" in done.stdout
    assert loads(done.stdout).host("lan").interface("eno1") is not None


def test_cli_reads_a_directory_of_networkmanager_keyfiles() -> None:
    keyfiles = DATA.parent / "networkmanager" / "bridge-br0"
    done = CliRunner().invoke(cli, ["topo", "from-config", str(keyfiles)])
    assert done.exit_code == 0, done.output
    spec = loads(done.stdout)
    box = spec.host("box")
    bridge = box.interface("br0")
    assert bridge is not None and isinstance(bridge.kind, Bridge) and bridge.kind.stp
    assert any(i.master == "br0" for i in box.interfaces)


def test_nothing_brought_up_at_boot_is_one_clear_error(tmp_path: Path) -> None:
    path = _config(tmp_path, "auto lo\niface lo inet loopback\niface vmbr0 inet static\n"
                             "  address 10.0.0.1/24\n  bridge-ports none\n")
    with pytest.raises(SpecError) as caught:
        _lab(path)
    assert caught.value.file == str(path)
    assert caught.value.reason.startswith("nothing is brought up at boot: no interface but lo "
                                          "is named by auto or allow-hotplug")


def test_cli_needs_output_for_rulesets_and_force_to_overwrite(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    done = runner.invoke(cli, ["topo", "from-config", str(EXAMPLE)])
    assert done.exit_code == 2 and list(tmp_path.iterdir()) == []
    assert "give -o FILE.yaml" in done.output and "box.iptables" in done.output
    (tmp_path / "nat.iptables").write_text("mine\n")
    done = runner.invoke(cli, ["topo", "from-config", str(EXAMPLE), "-o", "nat.yaml"])
    assert done.exit_code == 2 and "nat.iptables exist(s) already: give --force" in done.output
    assert (tmp_path / "nat.iptables").read_text() == "mine\n"
    assert not (tmp_path / "nat.yaml").exists()
    done = runner.invoke(cli, ["topo", "from-config", str(EXAMPLE), "-o", "nat.yaml", "--force"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "nat.iptables").read_text() != "mine\n"


def test_hooks_of_what_boot_does_not_bring_up_are_noted_not_run(tmp_path: Path) -> None:
    path = _config(tmp_path, "auto eth0\niface eth0 inet static\n  address 10.0.0.2/24\n"
                             "iface eth1 inet manual\n  post-up sysctl -w net.ipv4.ip_forward=1\n"
                             "  post-up ip route add 10.9.0.0/16 dev eth1\n")
    lab = _lab(path)
    assert dict(lab.spec.host("box").sysctls) == {}
    notes = {n.what: n.why for n in lab.unapplied}
    assert notes["sysctl net.ipv4.ip_forward=1"] == notes["route to 10.9.0.0/16"] == (
        "a hook of eth1, which boot does not bring up")
