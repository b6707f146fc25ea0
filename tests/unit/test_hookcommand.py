"""Hook commands (ifupdown's pre-up/up/post-up lines) read as the routes, sysctls and
firewall lines they set; what cannot be honoured is listed with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from netprobe.topology._model.hookcommand import interpret, unapplied
from netprobe.topology._model.ifupdown import read_interfaces
from netprobe.topology._model.persistent import Command, PersistentRoute, from_ifupdown
from netprobe.topology._model.sysctlfile import sysctl_name, sysctl_path

DATA = Path(__file__).parent.parent / "data" / "interfaces"


def _up(text: str, hook: str = "post-up") -> Command:
    return Command("eth0", hook, text, "interfaces:7")


def test_masquerading_hooks_give_ip_forward_and_the_masquerade_rule() -> None:
    config = from_ifupdown(read_interfaces(DATA / "masquerading"))
    effects = interpret(config.commands)
    assert [(k, v) for k, v, _ in effects.sysctls] == [("net.ipv4.ip_forward", "1")]
    assert effects.sysctls[0][2].endswith("masquerading:22")  # the post-up line itself
    (rule,) = effects.firewall  # the post-down -D twin is a down hook: not applied, not listed
    assert rule.tool == "iptables" and rule.family == "ip" and rule.file is None
    assert rule.argv == ("iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.10.10.0/24",
                         "-o", "eno1", "-j", "MASQUERADE")  # fmt: skip
    assert rule.command.hook == "post-up" and rule.command.where.endswith("masquerading:23")
    assert unapplied(config) == []


def test_routed_hooks_set_per_interface_sysctls() -> None:
    config = from_ifupdown(read_interfaces(DATA / "routed"))
    keys = [k for k, _, _ in interpret(config.commands).sysctls]
    assert keys == ["net.ipv4.ip_forward", "net.ipv4.conf.eno0.proxy_arp"]


@pytest.mark.parametrize(("text", "route"), [
    ("ip route add 10.20.0.0/16 via 192.168.1.254 dev $IFACE metric 10",
     PersistentRoute("10.20.0.0/16", "192.168.1.254", "eth0", 10, "interfaces:7")),
    ("ip -4 route replace 10/8 dev vmbr0 proto static",
     PersistentRoute("10.0.0.0/8", None, "vmbr0", None, "interfaces:7")),
    ("/sbin/ip -6 r a default via fe80::1 dev ${IFACE} onlink",
     PersistentRoute("default", "fe80::1", "eth0", None, "interfaces:7", family=6)),
    ("ip route add 2001:db8::/32 dev eth0",
     PersistentRoute("2001:db8::/32", None, "eth0", None, "interfaces:7", family=6)),
    ("route add -net 10.0.0.0 netmask 255.0.0.0 gw 192.168.1.1 dev eth0",
     PersistentRoute("10.0.0.0/8", "192.168.1.1", "eth0", None, "interfaces:7")),
    ("route add -host 10.1.2.3 gw 192.168.1.1 metric 5 eth0",
     PersistentRoute("10.1.2.3/32", "192.168.1.1", "eth0", 5, "interfaces:7")),
    ("route add default gw 192.168.1.1", PersistentRoute("default", "192.168.1.1", None, None,
                                                         "interfaces:7")),
])  # fmt: skip
def test_route_commands(text: str, route: PersistentRoute) -> None:
    effects = interpret([_up(text)])
    assert effects.routes == (route,) and effects.unapplied == ()


@pytest.mark.parametrize(("text", "expected"), [
    ("echo 1 > /proc/sys/net/ipv4/ip_forward", [("net.ipv4.ip_forward", "1")]),
    ('echo "0" >/proc/sys/net/ipv4/conf/vmbr0.5/rp_filter',
     [("net.ipv4.conf.vmbr0/5.rp_filter", "0")]),
    ("sysctl -w net.ipv4.ip_forward=1", [("net.ipv4.ip_forward", "1")]),
    ("sysctl -q net/ipv6/conf/all/forwarding=1 net.ipv4.conf.all.proxy_arp=1",
     [("net.ipv6.conf.all.forwarding", "1"), ("net.ipv4.conf.all.proxy_arp", "1")]),
])  # fmt: skip
def test_sysctl_commands(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(k, v) for k, v, _ in interpret([_up(text)]).sysctls] == expected


def test_firewall_commands_keep_their_words_and_family() -> None:
    effects = interpret([
        _up("iptables -A FORWARD -m comment --comment 'from lab' -j ACCEPT || true"),
        _up("ip6tables -t filter -I INPUT -p ipv6-icmp -j ACCEPT"),
        _up("iptables-restore < /etc/iptables/rules.v4", hook="pre-up"),
        _up("nft add rule inet filter forward iifname vmbr0 accept"),
        _up("nft -f /etc/nftables.conf"),
        _up("/usr/sbin/iptables-nft -t nat -A POSTROUTING -j MASQUERADE"),
    ])  # fmt: skip
    got = [(f.tool, f.family, f.file) for f in effects.firewall]
    assert got == [("iptables", "ip", None), ("ip6tables", "ip6", None),
                   ("iptables-restore", "ip", "/etc/iptables/rules.v4"), ("nft", "inet", None),
                   ("nft", None, "/etc/nftables.conf"), ("iptables", "ip", None)]  # fmt: skip
    assert effects.firewall[0].argv[-3:] == ("from lab", "-j", "ACCEPT")
    assert effects.unapplied == ()


def test_commands_in_one_line_are_read_in_turn() -> None:
    effects = interpret([_up("echo 1 > /proc/sys/net/ipv4/ip_forward; iptables -P FORWARD DROP"
                             " && ip route add 10.9.0.0/16 dev eth0")])  # fmt: skip
    assert len(effects.sysctls) == len(effects.firewall) == len(effects.routes) == 1


@pytest.mark.parametrize(("text", "reason"), [
    ("ip addr add 10.0.0.2/24 dev eth0", "ip addr is not a route command"),
    ("ip route add 10.0.0.1/8 dev eth0", "has host bits set"),
    ("ip route add 10.0.0.0/8 dev eth0 table 100", "table 100 (policy routing)"),
    ("ip route add blackhole 10.0.0.0/8", "blackhole route"),
    ("ip route add $NET dev eth0", "$NET"),
    ("echo 1 | tee /proc/sys/net/ipv4/ip_forward", "'|'"),
    ("echo 1 > /tmp/flag", "other than a sysctl"),
    ("sysctl -p /etc/sysctl.d/99-lab.conf", "pass a sysctl file"),
    ("/usr/local/bin/lab-setup eth0", "lab-setup is not a route, sysctl or firewall command"),
    ("iptables -A INPUT -j ACCEPT || logger failed", "`||`"),
    ("echo 'unclosed > /x", "unclosed single quote"),
    ("route add -net 10.0.0.0 gw 192.168.1.1", "no netmask"),
])  # fmt: skip
def test_what_cannot_be_honoured_is_listed_with_the_reason(text: str, reason: str) -> None:
    command = _up(text)
    effects = interpret([command])
    assert [c for c, _ in effects.unapplied] == [command]
    assert reason in effects.unapplied[0][1]


def test_a_partly_read_line_names_the_part_it_could_not() -> None:
    effects = interpret([_up("ip link set eth0 promisc on; sysctl -w net.ipv4.ip_forward=1")])
    assert len(effects.sysctls) == 1
    assert effects.unapplied[0][1].startswith("ip link set eth0 promisc on: ")


def test_down_hooks_are_neither_applied_nor_listed() -> None:
    commands = [_up("ip route del 10.0.0.0/8", hook=h) for h in ("down", "pre-down", "post-down")]
    effects = interpret(commands)
    assert effects.routes == () and effects.unapplied == ()


def test_keys_in_dotted_form() -> None:
    def dotted(key: str) -> str:  # one conversion, shared with sysctl files and drift
        return sysctl_name(sysctl_path(key))

    assert dotted("/proc/sys/net/ipv4/conf/eno1.50/forwarding") == \
        "net.ipv4.conf.eno1/50.forwarding"
    assert dotted("net/ipv4/conf/eno1.50/forwarding") == "net.ipv4.conf.eno1/50.forwarding"
    assert dotted(" net.ipv4.ip_forward ") == "net.ipv4.ip_forward"


@pytest.mark.parametrize("text", [
    "ip route add 10.9.0.0/16 via 192.168.1.254 > /dev/null",
    "ip route add 10.9.0.0/16 via 192.168.1.254 >/dev/null 2>&1",
    "ip route add 10.9.0.0/16 via 192.168.1.254 2>&1 || true",
    "ip route add 10.9.0.0/16 via 192.168.1.254 1>/dev/null 2>/dev/null",
])  # fmt: skip
def test_output_thrown_away_or_joined_leaves_the_line_readable(text: str) -> None:
    effects = interpret([_up(text)])
    assert effects.unapplied == () and [r.to for r in effects.routes] == ["10.9.0.0/16"]


def test_a_redirection_to_a_descriptor_other_than_1_or_2_is_not_read() -> None:
    (_, reason), = interpret([_up("ip route add 10.9.0.0/16 dev eth0 2>&3")]).unapplied
    assert "2>&3" in reason


def test_hooks_of_an_interface_boot_does_not_bring_up_set_nothing(tmp_path: Path) -> None:
    from netprobe.topology._model.hookcommand import with_hooks

    path = tmp_path / "interfaces"
    path.write_text("auto eth1\niface eth1 inet manual\n  post-up /usr/local/bin/net.sh\n"
                    "iface eth2 inet manual\n"
                    "  post-up echo 1 > /proc/sys/net/ipv4/ip_forward\n"
                    "  post-up /usr/local/bin/other.sh\n")
    config = with_hooks(from_ifupdown(read_interfaces(path)))
    assert config.sysctls == () and config.sysctl("net.ipv4.ip_forward") is None
    assert [(c.interface, c.text) for c, _ in unapplied(config)] == [
        ("eth1", "/usr/local/bin/net.sh")]
