"""DHCP servers and clients in the spec: loaded, dumped back, and every refusal pointing
at the file and line of the problem."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from support.paths import EXAMPLES

import netprobe
from netprobe import DhcpServer, Host, Interface, Spec, SpecError, Tap, Veth
from netprobe.topology._model.dump import dump

MARK = "# <-"

GOOD = """\
hosts:
  lan:
    interfaces:
      eth0: {veth: c1:eth0, addresses: [192.168.10.1/24]}
    dhcp_servers:
      - interface: eth0
        range: 192.168.10.100-192.168.10.199
        lease_time: 600
        dns: [192.168.10.1]
  c1:
    interfaces:
      eth0: {dhcp: true}
"""


def load_text(tmp_path: Path, text: str) -> Spec:
    path = tmp_path / "topo.yaml"
    path.write_text(textwrap.dedent(text))
    return netprobe.load(path)


def test_servers_and_clients_load(tmp_path: Path) -> None:
    spec = load_text(tmp_path, GOOD)
    assert spec.host("lan").dhcp_servers == (
        DhcpServer("eth0", ("192.168.10.100", "192.168.10.199"), 600, dns=("192.168.10.1",)),
    )
    assert spec.host("c1").interface("eth0") == Interface("eth0", dhcp=True)
    assert spec.host("lan").interface("eth0").dhcp is False  # type: ignore[union-attr]


def test_python_forms_match_yaml(tmp_path: Path) -> None:
    server = DhcpServer("eth0", range="10.0.0.10 - 10.0.0.20", router="10.0.0.1", dns="10.0.0.1")
    assert server == DhcpServer("eth0", ["10.0.0.10", "10.0.0.20"], 3600, "10.0.0.1",
                                ["10.0.0.1"])
    assert server.range == ("10.0.0.10", "10.0.0.20") and server.dns == ("10.0.0.1",)


@pytest.mark.parametrize("path", [EXAMPLES / "dhcp.yaml"], ids=["example"])
def test_dump_reads_back_equal(tmp_path: Path, path: Path) -> None:
    spec = netprobe.load(path)
    again = netprobe.loads(dump(spec), source=str(path))
    assert again == spec
    assert "range: 192.168.20.50-192.168.20.59" in dump(spec)
    assert len(spec.host("lan").dhcp_servers) == 2


BAD = {
    "lease-too-short": (
        GOOD.replace("lease_time: 600", "lease_time: 60  # <-"), "dnsmasq's least"
    ),
    "lease-not-a-number": (
        GOOD.replace("lease_time: 600", "lease_time: 1h  # <-"), "lease_time must be int"
    ),
    "range-reversed": (
        GOOD.replace("range: 192.168.10.100-192.168.10.199",
                     "range: 192.168.10.199-192.168.10.100  # <-"),
        "first address is above the last",
    ),
    "range-not-addresses": (
        GOOD.replace("range: 192.168.10.100-192.168.10.199", "range: a-b  # <-"),
        "IPv4 address",
    ),
    "range-one-end": (
        GOOD.replace("range: 192.168.10.100-192.168.10.199", "range: [192.168.10.5]  # <-"),
        "FIRST-LAST or [first, last]",
    ),
    "range-ipv6": (
        GOOD.replace("range: 192.168.10.100-192.168.10.199", "range: [fd00::1, fd00::9]  # <-"),
        "IPv4 address",
    ),
    "range-outside-subnet": (
        GOOD.replace("range: 192.168.10.100-192.168.10.199",
                     "range: 192.168.10.100-192.168.11.9  # <-"),
        "not inside one subnet of the interface (192.168.10.0/24)",
    ),
    "range-holds-own-address": (
        GOOD.replace("range: 192.168.10.100-192.168.10.199",
                     "range: 192.168.10.1-192.168.10.9  # <-"),
        "own address 192.168.10.1",
    ),
    "range-holds-broadcast": (
        GOOD.replace("range: 192.168.10.100-192.168.10.199",
                     "range: 192.168.10.100-192.168.10.255  # <-"),
        "network or broadcast address",
    ),
    "unknown-interface": (
        GOOD.replace("- interface: eth0", "- interface: eth7  # <-"),
        "'eth7' is not an interface of 'lan'",
    ),
    "bad-router": (
        GOOD.replace("lease_time: 600", "lease_time: 600\n        router: 192.168.10  # <-"),
        "DHCP router must be an IPv4 address",
    ),
    "bad-dns": (
        GOOD.replace("dns: [192.168.10.1]", "dns: [192.168.10.1, nowhere]  # <-"),
        "DHCP dns server must be an IPv4 address",
    ),
    "unknown-key": (
        GOOD.replace("lease_time: 600", "lease_time: 600\n        gateway: 1.2.3.4  # <-"),
        "unknown key 'gateway' in a DHCP server",
    ),
    "no-range": (
        GOOD.replace("        range: 192.168.10.100-192.168.10.199\n", "").replace(
            "- interface: eth0", "- interface: eth0  # <-"),
        "needs range",
    ),
    "two-servers-one-interface": (
        GOOD.replace("dns: [192.168.10.1]", "dns: [192.168.10.1]\n"
                     "      - {interface: eth0, range: 192.168.10.5-192.168.10.6}")
        .replace("    dhcp_servers:", "    dhcp_servers:  # <-"),
        "2 DHCP servers on lan:eth0",
    ),
    "no-address": (
        GOOD.replace("addresses: [192.168.10.1/24]", "mtu: 1500")
        .replace("- interface: eth0", "- interface: eth0  # <-"),
        "has no IPv4 address",
    ),
    "dhcp-not-bool": (
        GOOD.replace("eth0: {dhcp: true}", "eth0: {dhcp: yes please}  # <-"),
        "dhcp must be bool",
    ),
    "client-on-a-bridge-port": (
        GOOD.replace("eth0: {dhcp: true}",
                     "br0: {bridge: {}}\n      eth0: {master: br0, dhcp: true}  # <-"),
        "give `dhcp: true` to 'br0'",
    ),
    "client-in-adopted-host": (
        GOOD.replace("  c1:\n", "  c1:\n    adopt: somens\n")
        .replace("eth0: {dhcp: true}", "eth0: {dhcp: true}  # <-"),
        "only in a host netprobe makes ('c1' is adopted)",
    ),
    "server-in-root": (
        GOOD.replace("  lan:\n", "  lan:\n    root: true\n")
        .replace("- interface: eth0", "- interface: eth0  # <-"),
        "the root namespace is the machine's own",
    ),
    "server-on-a-port": (
        GOOD.replace("eth0: {veth: c1:eth0, addresses: [192.168.10.1/24]}",
                     "br0: {bridge: {}, addresses: [192.168.10.1/24]}\n"
                     "      eth0: {veth: c1:eth0, master: br0}")
        .replace("- interface: eth0", "- interface: eth0  # <-"),
        "serve 'br0' instead",
    ),
    "server-and-client-on-one-interface": (
        GOOD.replace("addresses: [192.168.10.1/24]}",
                     "addresses: [192.168.10.1/24], dhcp: true}  # <-"),
        "both a DHCP server and `dhcp: true`",
    ),
    "servers-not-a-list": (
        "hosts:\n  lan:\n    interfaces: {eth0: {tap: {}}}\n    dhcp_servers: eth0  # <-\n",
        "dhcp_servers must be a list",
    ),
}


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_bad_input_names_file_and_line(tmp_path: Path, bad: tuple[str, str]) -> None:
    text, message = bad
    line = next(n for n, s in enumerate(text.splitlines(), start=1) if MARK in s)
    with pytest.raises(SpecError) as caught:
        load_text(tmp_path, text)
    assert message in str(caught.value)
    assert caught.value.file == str(tmp_path / "topo.yaml")
    assert caught.value.line == line, str(caught.value)


def test_python_spec_is_validated_too() -> None:
    lan = Host("lan", interfaces=[Interface("eth0", Veth("c1:eth0"), ["10.0.0.1/24"])],
               dhcp_servers=[DhcpServer("eth0", ("10.0.1.2", "10.0.1.9"))])
    c1 = Host("c1", interfaces=[Interface("eth0", dhcp=True)])
    with pytest.raises(SpecError, match="not inside one subnet"):
        netprobe.validate(Spec("t", hosts=[lan, c1]))
    with pytest.raises(SpecError, match="must be DhcpServer objects"):
        Host("lan", dhcp_servers=[{"interface": "eth0"}])  # type: ignore[list-item]


def test_a_tap_may_say_its_vm_is_a_client() -> None:
    vmhost = Host("pve", adopt="x", interfaces=[Interface("tap0", Tap(), dhcp=True)])
    netprobe.validate(Spec("t", hosts=[vmhost]))
