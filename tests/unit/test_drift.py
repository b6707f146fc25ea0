"""`netprobe drift`'s comparison on made-up live state: what each difference says, what is
left out (the kernel's own, DHCP's, a runtime's), and where it points."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from netprobe.diagnose import LiveState, drift, read_persistent
from netprobe.topology import LiveHost, LiveInterface, LiveRoute
from netprobe.topology._model.sysctlfile import sysctl_name, sysctl_path

BRIDGED = """auto lo
iface lo inet loopback

iface eno1 inet manual

auto vmbr0
iface vmbr0 inet static
        address 192.168.10.2/24
        gateway 192.168.10.1
        bridge-ports eno1
        bridge-stp off
        bridge-fd 0
"""


def _if(name: str, kind: str = "device", **kw: object) -> LiveInterface:
    addresses = tuple(ipaddress.ip_interface(a) for a in kw.pop("addresses", ()))  # type: ignore[attr-defined]
    fields = {"index": 0, "mac": "", "mtu": 1500, "up": True, "carrier": True, **kw}
    return LiveInterface(name, kind=kind, addresses=addresses, **fields)  # type: ignore[arg-type]


def _route(dst: str, gateway: str | None = None, dev: str = "vmbr0",
           proto: str = "boot") -> LiveRoute:
    return LiveRoute(ipaddress.ip_network(dst), gateway=gateway, dev=dev, proto=proto)


def _box(*extra: LiveInterface, routes: tuple[LiveRoute, ...] = (), **kw: object) -> LiveState:
    """The bridged box as its configuration makes it, plus `extra`."""
    interfaces = (
        _if("lo", "loopback", mtu=65536, addresses=("127.0.0.1/8", "::1/128")),
        _if("eno1", master="vmbr0", addresses=("fe80::1/64",)),
        _if("vmbr0", "bridge", addresses=("192.168.10.2/24", "fe80::2/64")),
        *extra,
    )
    default = (_route("0.0.0.0/0", "192.168.10.1"),
               _route("192.168.10.0/24", proto="kernel"),
               _route("fe80::/64", proto="kernel"))  # fmt: skip
    sysctls = {"net/ipv4/ip_forward": "0", "net/ipv6/conf/all/forwarding": "0",
               **kw.pop("sysctls", {})}  # type: ignore[dict-item]
    host = LiveHost("box", interfaces, default + routes)
    return LiveState(host, sysctls, **kw)  # type: ignore[arg-type]


@pytest.fixture
def config_of(tmp_path: Path):  # type: ignore[no-untyped-def]
    def write(text: str = BRIDGED, sysctl: str | None = None) -> object:
        path = tmp_path / "interfaces"
        path.write_text(text)
        files = [path]
        if sysctl is not None:
            (tmp_path / "sysctl.conf").write_text(sysctl)
            files.append(tmp_path / "sysctl.conf")
        return read_persistent(files)

    return write


def _lines(config: object, live: LiveState) -> list[str]:
    report = drift(config, live)  # type: ignore[arg-type]
    return [d.render() for d in report.items]


def _messages(config: object, live: LiveState) -> list[str]:
    return [d.message for d in drift(config, live).items]  # type: ignore[arg-type]


def test_the_box_as_configured_has_no_drift(config_of) -> None:  # type: ignore[no-untyped-def]
    report = drift(config_of(), _box())
    assert not report.drifted and not report.runtime
    assert report.render().startswith("no drift in box")


def test_mtu_configured_or_set_at_runtime(config_of) -> None:  # type: ignore[no-untyped-def]
    text = BRIDGED.replace("        bridge-fd 0\n", "        bridge-fd 0\n        mtu 9000\n")
    assert _messages(config_of(text), _box()) == [
        "vmbr0: MTU 1500 now; the configuration sets 9000"]
    live = _box()
    eno1 = live.host.interface("eno1")
    assert eno1 is not None
    jumbo = LiveState(LiveHost("box", tuple(
        _if("eno1", master="vmbr0", mtu=9000) if i is eno1 else i
        for i in live.host.interfaces), live.host.routes), live.sysctls)  # fmt: skip
    assert _messages(config_of(), jumbo) == [
        "eno1: MTU 9000 now; no configuration sets one: the default 1500 after a reboot"]


def test_kinds_ports_and_boot(config_of) -> None:  # type: ignore[no-untyped-def]
    text = BRIDGED + "\nauto bond0\niface bond0 inet manual\n  bond-slaves eno3\n" \
        "\niface eno3 inet manual\n\niface eno4 inet manual\n"
    live = _box(_if("eno3", master="vmbr0"), _if("eno4"), _if("bond0", "bridge", up=False))
    lines = _messages(config_of(text), live)
    assert lines == [
        "bond0: of kind bridge now; the configuration makes a bond",
        "bond0: down now; the configuration brings it up at boot",
        "eno3: a port of vmbr0 now; bond0's ports name it: a port of bond0 after a reboot",
        "eno4: up now; nothing brings it up at boot (no auto or allow-hotplug): down after "
        "a reboot",
    ]


def test_interfaces_in_no_configuration(config_of) -> None:  # type: ignore[no-untyped-def]
    live = _box(
        _if("eth9", addresses=("10.0.0.9/24",)),  # a NIC someone brought up by hand
        _if("eth8", up=False),  # a NIC left down: a reboot leaves it down too
        _if("sit0", "sit", up=False), _if("tunl0", "ipip", up=False),  # the kernel's own
        _if("docker0", "bridge", addresses=("172.17.0.1/16",)),
        _if("veth1a2b", "veth", master="docker0"),
        _if("tap100i0", "tap", master="vmbr0"),
        _if("vxlan7", "vxlan"),
    )
    report = drift(config_of(), live)
    assert [d.render() for d in report.items] == [
        "eth9: up now, in no configuration: down after a reboot",
        "address 10.0.0.9/24 on eth9: in no configuration (ip addr add?): gone after a reboot",
        "vxlan7 (vxlan): no configuration makes it: gone after a reboot",
    ]
    assert [d.subject for d in report.runtime] == ["docker0", "veth1a2b", "tap100i0"]
    assert "docker0 (bridge, named as a container or VM runtime names its own, 172.17.0.1/16)" \
        in report.render()
    assert report.render().splitlines()[-4] == (
        "not in the configuration (made at runtime; not counted):")


def test_addresses_dhcp_dynamic_and_link_local(config_of) -> None:  # type: ignore[no-untyped-def]
    text = BRIDGED.replace("iface eno1 inet manual", "auto eno2\niface eno2 inet dhcp\n"
                           "iface eno2 inet6 auto\n\niface eno1 inet manual")
    eno2 = _if("eno2", addresses=("10.1.1.5/24", "2001:db8::5/64", "fe80::5/64"))
    assert _lines(config_of(text), _box(eno2)) == []
    dynamic = frozenset({("vmbr0", ipaddress.ip_interface("2001:db8::9/64"))})
    vmbr0 = _if("vmbr0", "bridge", addresses=("192.168.10.9/24", "2001:db8::9/64"))
    live = _box(dynamic=dynamic)
    live = LiveState(LiveHost("box", tuple(vmbr0 if i.name == "vmbr0" else i
                                            for i in live.host.interfaces),
                              live.host.routes), live.sysctls, dynamic)  # fmt: skip
    lines = _messages(config_of(), live)
    assert lines == [
        "address 192.168.10.2/24 on vmbr0: configured, not there now: a reboot adds it",
        "address 192.168.10.9/24 on vmbr0: in no configuration (ip addr add?): gone after a "
        "reboot",
    ]


def test_dhcp_interface_without_an_address(config_of) -> None:  # type: ignore[no-untyped-def]
    text = BRIDGED + "\nauto eno2\niface eno2 inet dhcp\n"
    assert _messages(config_of(text), _box(_if("eno2"))) == [
        "eno2: asks DHCP for an address at boot; it has no IPv4 address now"]


def test_routes(config_of) -> None:  # type: ignore[no-untyped-def]
    text = BRIDGED + "        post-up ip route add 10.8.0.0/16 via 192.168.10.254\n"
    live = _box(routes=(_route("10.9.0.0/16", "192.168.10.253"),
                        _route("10.7.0.0/16", dev="vmbr0", proto="kernel"),
                        _route("2001:db8::/64", dev="vmbr0", proto="ra")))  # fmt: skip
    report = drift(config_of(text), live)
    assert [(d.kind, d.message, d.where is not None) for d in report.items] == [
        ("route", "route 10.8.0.0/16 via 192.168.10.254: configured, not there now: a reboot "
         "adds it", True),
        ("route", "route 10.9.0.0/16 via 192.168.10.253 dev vmbr0: set at runtime, in no "
         "configuration: gone after a reboot", False),
    ]


def test_default_route_of_a_dhcp_interface_is_dhcps(config_of) -> None:  # type: ignore[no-untyped-def]
    text = BRIDGED + "\nauto eno2\niface eno2 inet dhcp\n"
    live = _box(_if("eno2", addresses=("10.1.1.5/24",)),
                routes=(_route("0.0.0.0/0", "10.1.1.1", dev="eno2"),))
    assert _lines(config_of(text), live) == []


def test_sysctls_persisted_defaulted_and_per_interface(config_of) -> None:  # type: ignore[no-untyped-def]
    config = config_of(sysctl="net.ipv4.ip_forward = 1\nnet.ipv4.conf.*.rp_filter = 2\n"
                              "net.ipv4.conf.vmbr0.rp_filter = 1\n")  # fmt: skip
    live = _box(sysctls={"net/ipv4/ip_forward": "1", "net/ipv6/conf/all/forwarding": "1",
                         "net/ipv4/conf/vmbr0/rp_filter": "2",
                         "net/ipv4/conf/eno1/forwarding": "0",
                         "net/ipv4/conf/vmbr0/forwarding": "1"})
    lines = _messages(config, live)
    assert lines == [
        "sysctl net.ipv6.conf.all.forwarding = 1 now; nothing persists it: the kernel default "
        "0 after a reboot",
        "sysctl net.ipv4.conf.vmbr0.rp_filter = 2 now; the configuration sets 1 after a reboot",
        "sysctl net.ipv4.conf.eno1.forwarding = 0 now; nothing persists it: it follows "
        "net.ipv4.ip_forward, 1 after a reboot",
    ]


def test_forwarding_turned_on_is_said_once(config_of) -> None:  # type: ignore[no-untyped-def]
    live = _box(sysctls={"net/ipv4/ip_forward": "1", "net/ipv4/conf/eno1/forwarding": "1",
                         "net/ipv4/conf/vmbr0/forwarding": "1"})
    assert _lines(config_of(), live) == [
        "sysctl net.ipv4.ip_forward = 1 now; nothing persists it: the kernel default 0 after "
        "a reboot"]


def test_sysctl_names_and_paths() -> None:
    assert sysctl_path("net.ipv4.ip_forward") == "net/ipv4/ip_forward"
    assert sysctl_path("net.ipv4.conf.eno1/10.forwarding") == "net/ipv4/conf/eno1.10/forwarding"
    assert sysctl_path("net/ipv4/conf/eno1.10/forwarding") == "net/ipv4/conf/eno1.10/forwarding"
    assert sysctl_name("net/ipv4/conf/eno1.10/forwarding") == "net.ipv4.conf.eno1/10.forwarding"


def test_json_document(config_of) -> None:  # type: ignore[no-untyped-def]
    document = drift(config_of(), _box(_if("tap1", "tap"))).to_dict()
    assert (document["format"], document["version"], document["drift"]) == (
        "netprobe-drift", 1, False)
    assert document["items"] == []
    assert document["runtime"] == [{"kind": "link", "subject": "tap1", "where": None,
                                    "runtime": True,
                                    "message": "tap1 (tap): in no configuration, made at "
                                               "runtime"}]  # fmt: skip


def test_hooks_and_absence_of_what_boot_does_not_bring_up(config_of) -> None:  # type: ignore[no-untyped-def]
    text = BRIDGED + ("\niface eno2 inet manual\n  post-up echo 1 > /proc/sys/net/ipv4/ip_forward\n"
                      "\niface eth1 inet manual\n")  # a template for a NIC this box lacks
    live = _box(_if("eno2", up=False), sysctls={"net/ipv4/ip_forward": "1"})
    assert _messages(config_of(text), live) == [
        "sysctl net.ipv4.ip_forward = 1 now; nothing persists it: the kernel default 0 after "
        "a reboot"]


def test_what_cannot_be_read_is_not_compared_and_no_match_is_claimed(config_of) -> None:  # type: ignore[no-untyped-def]
    text = BRIDGED + "        post-up /usr/local/bin/net.sh\n" \
        "        post-up ip route del default\n"
    report = drift(config_of(text), _box())
    assert not report.drifted
    assert [n.reason.split(":")[0] for n in report.not_compared] == [
        "post-up /usr/local/bin/net.sh", "post-up ip route del default"]
    assert all(n.where.endswith((":13", ":14")) for n in report.not_compared)
    rendered = report.render()
    assert "it matches" not in rendered and "2 line(s) not compared" in rendered
    assert "not compared (what boot does there is not known here):" in rendered
    document = report.to_dict()
    assert document["minor"] == 1 and document["not_compared"][0]["reason"].startswith(
        "post-up /usr/local/bin/net.sh: ")


def test_a_runtime_route_through_a_configured_veth_is_drift(config_of) -> None:  # type: ignore[no-untyped-def]
    text = "auto eno1\niface eno1 inet static\n  address 192.168.10.2/24\n"
    live = LiveState(LiveHost("box", (
        _if("eno1", "veth", addresses=("192.168.10.2/24",)),
        _if("veth9", "veth"),
    ), (_route("192.168.10.0/24", dev="eno1", proto="kernel"),
        _route("10.50.0.0/16", "192.168.10.9", dev="eno1", proto="static"),
        _route("10.60.0.0/16", dev="veth9", proto="static"))),
        {"net/ipv4/ip_forward": "0"})  # fmt: skip
    assert _messages(config_of(text), live) == [
        "route 10.50.0.0/16 via 192.168.10.9 dev eno1: set at runtime, in no configuration: "
        "gone after a reboot"]


def test_an_address_with_a_lifetime_on_a_static_interface_is_drift(config_of) -> None:  # type: ignore[no-untyped-def]
    extra = ipaddress.ip_interface("192.168.10.77/24")
    vmbr0 = _if("vmbr0", "bridge", addresses=("192.168.10.2/24", str(extra)))
    live = _box()
    live = LiveState(LiveHost("box", tuple(vmbr0 if i.name == "vmbr0" else i
                                            for i in live.host.interfaces), live.host.routes),
                     live.sysctls, frozenset({("vmbr0", extra)}))  # fmt: skip
    assert _messages(config_of(), live) == [
        "address 192.168.10.77/24 on vmbr0: in no configuration (ip addr add?): gone after a "
        "reboot"]


def test_a_profile_matching_a_nic_by_mac_is_compared_with_that_nic(tmp_path: Path) -> None:
    profile = tmp_path / "lan.nmconnection"
    profile.write_text("[connection]\nid=lan\ntype=ethernet\n[ethernet]\n"
                       "mac-address=52:54:00:12:34:56\n[ipv4]\nmethod=manual\n"
                       "address1=10.3.0.2/24,10.3.0.1\n")
    config = read_persistent([profile])
    nic = _if("enp1s0", mac="52:54:00:12:34:56", addresses=("10.3.0.2/24",))
    routes = (_route("0.0.0.0/0", "10.3.0.1", dev="enp1s0"),
              _route("10.3.0.0/24", dev="enp1s0", proto="kernel"))
    live = LiveState(LiveHost("box", (nic,), routes), {"net/ipv4/ip_forward": "0"})
    report = drift(config, live)
    assert report.items == () and report.not_compared == ()
    other = LiveState(LiveHost("box", (_if("enp1s0", mac="52:54:00:00:00:01"),), ()),
                      {"net/ipv4/ip_forward": "0"})
    report = drift(config, other)
    assert [n.reason for n in report.not_compared] == [
        "a profile for the NIC with MAC 52:54:00:12:34:56: no interface here has that MAC"]
    assert [d.subject for d in report.items] == ["enp1s0"]  # up, in no configuration
