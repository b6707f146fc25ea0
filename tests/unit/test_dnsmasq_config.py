"""Reading a dnsmasq from its command line, its configuration files and its lease file,
and the lease netprobe's udhcpc script writes down (pure logic: no process runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netprobe import DhcpServer, Host, Interface, SetupError, Spec, Veth
from netprobe.topology._kernel import dhcp
from netprobe.topology._kernel.dnsmasq import (
    DEFAULT_CONF,
    DEFAULT_LEASES,
    ClientLease,
    DhcpLease,
    argv_options,
    dhcp_range_ends,
    parse_leases,
    read_client_lease,
    server_from,
)


def test_long_short_and_separate_values_are_read_as_dnsmasq_reads_them() -> None:
    argv = ["/usr/sbin/dnsmasq", "-k", "--interface", "eth0", "-ieth1", "-I", "lo",
            "--dhcp-range=10.0.0.5,10.0.0.9,1h", "-l", "/x/leases", "--dhcp-lease=/y",
            "--port=0"]  # fmt: skip
    assert argv_options(argv) == [
        ("interface", "eth0"), ("interface", "eth1"), ("except-interface", "lo"),
        ("dhcp-range", "10.0.0.5,10.0.0.9,1h"), ("dhcp-leasefile", "/x/leases"),
        ("dhcp-leasefile", "/y"), ("port", "0"),
    ]  # fmt: skip


def test_conf_files_are_read_nested_and_the_default_one_without_conf_file() -> None:
    files = {
        "/a.conf": "# comment\ninterface=br0,br1\nconf-file=/b.conf\n\nlog-facility=/l\n",
        "/b.conf": "dhcp-range=tag:x,set:y,10.1.0.10,10.1.0.20,255.255.255.0\nleasefile-ro\n",
        DEFAULT_CONF: "dhcp-range=10.9.0.2,10.9.0.3\n",
    }
    server = server_from(7, ["dnsmasq", "-C", "/a.conf"], files.get)
    assert server.interfaces == ("br0", "br1") and server.ranges == (("10.1.0.10", "10.1.0.20"),)
    assert server.lease_file is None and server.log == "/l" and server.pid == 7
    default = server_from(8, ["dnsmasq"], files.get)
    assert default.ranges == (("10.9.0.2", "10.9.0.3"),) and default.lease_file == DEFAULT_LEASES
    assert default.interfaces == () and default.log is None  # every interface, syslog
    assert server_from(9, ["dnsmasq", "--conf-file="], files.get).ranges == ()  # no file at all


def test_listen_addresses_are_read_as_lxc_net_gives_them() -> None:
    """lxc-net's command line: `--listen-address 10.0.3.1` (a separate value), or `-a`."""
    argv = ["dnsmasq", "--conf-file=/dev/null", "--listen-address", "10.0.3.1", "-a10.0.4.1",
            "--dhcp-range", "10.0.3.2,10.0.3.254", "--except-interface=lo"]  # fmt: skip
    server = server_from(5, argv, {"/dev/null": ""}.get)
    assert server.listen_addresses == ("10.0.3.1", "10.0.4.1")
    assert server.interfaces == () and server.except_interfaces == ("lo",)
    assert server.ranges == (("10.0.3.2", "10.0.3.254"),)


@pytest.mark.parametrize(
    ("value", "ends"),
    [
        ("10.0.0.5,10.0.0.9,12h", ("10.0.0.5", "10.0.0.9")),
        ("red,10.0.0.5,10.0.0.9", ("10.0.0.5", "10.0.0.9")),  # the old bare network-id
        ("10.0.0.0,static,255.255.255.0", ("10.0.0.0", "10.0.0.0")),
        ("fd00::10,fd00::20,64,1h", ("fd00::10", "fd00::20")),
        ("tag:only", None),
    ],
)
def test_range_ends(value: str, ends: tuple[str, str] | None) -> None:
    assert dhcp_range_ends(value) == ends


def test_lease_file_lines() -> None:
    text = (
        "1700000000 0A:00:00:00:00:01 10.0.0.5 box *\n"
        "0 0a:00:00:00:00:02 10.0.0.6 * 01:0a:00:00:00:00:02\n"
        "garbage\n"
        "duid 00:01:00:01\n"
        "1700000000 1234 fd00::5 v6 *\n"
    )
    assert parse_leases(text) == [
        DhcpLease("0a:00:00:00:00:01", "10.0.0.5", 1700000000, "box"),
        DhcpLease("0a:00:00:00:00:02", "10.0.0.6", 0, None),
    ]


def test_the_client_lease_file(tmp_path: Path) -> None:
    path = tmp_path / "udhcpc-eth0.lease"
    assert read_client_lease(str(path)) is None
    path.write_text("ip=10.0.0.5\nprefix=24\nrouter=10.0.0.1\ndns=10.0.0.1 10.0.0.2\n"
                    "server=10.0.0.1\nlease=600\n")  # fmt: skip
    assert read_client_lease(str(path)) == ClientLease(
        "10.0.0.5", 24, "10.0.0.1", ("10.0.0.1", "10.0.0.2"), "10.0.0.1", 600
    )
    path.write_text("ip=10.0.0.5\nprefix=24\nrouter=\ndns=\nserver=\nlease=\n")
    assert read_client_lease(str(path)) == ClientLease("10.0.0.5", 24)


def test_the_config_netprobe_writes_reads_nothing_of_the_machine() -> None:
    text = dhcp.dnsmasq_config(
        DhcpServer("eth0", ("10.0.0.5", "10.0.0.9"), 600, router="10.0.0.254"), "eth0", "/d"
    )
    lines = text.splitlines()
    for line in ("interface=eth0", "bind-interfaces", "port=0", "no-hosts", "no-resolv",
                 "dhcp-authoritative", "log-facility=/d/dnsmasq-eth0.log",
                 "dhcp-leasefile=/d/dnsmasq-eth0.leases", "dhcp-range=10.0.0.5,10.0.0.9,600",
                 "dhcp-option=option:dns-server", "dhcp-option=option:router,10.0.0.254"):
        assert line in lines  # fmt: skip
    server = server_from(1, ["dnsmasq", "--conf-file=/d/c"], {"/d/c": text}.get)
    assert server.interfaces == ("eth0",) and server.lease_file == "/d/dnsmasq-eth0.leases"


def test_a_missing_program_is_a_setup_error_with_its_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = Spec("t", hosts=[
        Host("s", interfaces=[Interface("e", Veth("c:e"), ["10.0.0.1/24"])],
             dhcp_servers=[DhcpServer("e", ("10.0.0.5", "10.0.0.9"))]),
        Host("c", interfaces=[Interface("e", dhcp=True)]),
    ])  # fmt: skip
    monkeypatch.setattr(dhcp.shutil, "which", lambda name: None if name == "dnsmasq" else name)
    with pytest.raises(SetupError) as caught:
        dhcp.check_tools(spec)
    assert caught.value.remedy == "apt-get install dnsmasq-base"
    monkeypatch.setattr(dhcp.shutil, "which", lambda name: None if name == "busybox" else name)
    with pytest.raises(SetupError) as caught:
        dhcp.check_tools(spec)
    assert caught.value.remedy == "apt-get install busybox-static"


def test_dhcpv6_ranges_are_kept_apart_from_the_dhcpv4_ones() -> None:
    argv = ["dnsmasq", "--conf-file=", "--dhcp-range=10.0.0.5,10.0.0.9",
            "--dhcp-range=fd42::10,fd42::ff,64"]  # fmt: skip
    server = server_from(1, argv)
    assert server.ranges == (("10.0.0.5", "10.0.0.9"),)
    assert server.ranges6 == (("fd42::10", "fd42::ff"),)


def test_listen_address_limits_the_interfaces_served_as_dnsmasq_decides() -> None:
    server = server_from(1, ["dnsmasq", "--conf-file=", "--listen-address=10.2.0.1", "-z"])
    assert server.listen_addresses == ("10.2.0.1",) and server.bind == "interfaces"
    assert not server.serves("eth0", ["10.1.0.1"])
    assert server.serves("eth1", ["10.2.0.1"])
    both = server_from(2, ["dnsmasq", "--conf-file=", "-a", "10.2.0.1", "-i", "eth0",
                           "--bind-dynamic"])  # fmt: skip
    assert both.serves("eth0") and both.serves("eth1", ["10.2.0.1"]) and not both.serves("eth2")
    assert both.bind == "dynamic"
    every = server_from(3, ["dnsmasq", "--conf-file=", "-2", "eth0", "--interface=veth*"])
    assert every.bind == "wildcard" and every.serves("veth7") and not every.serves("eth0")
    assert not every.serves("eth1")


def test_the_server_reads_its_own_log(tmp_path: Path) -> None:
    log = tmp_path / "dnsmasq.log"
    log.write_text("dnsmasq-dhcp: DHCPDISCOVER(eth0) 02:00:00:00:01:00\nother line\n")
    server = server_from(1, ["dnsmasq", "--conf-file=", f"--log-facility={log}"])
    assert server.log_lines("02:00:00:00:01:00") == [
        "dnsmasq-dhcp: DHCPDISCOVER(eth0) 02:00:00:00:01:00"]
    assert server_from(2, ["dnsmasq", "--conf-file="]).log_lines("x") == []
