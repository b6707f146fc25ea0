"""Loading topology specs: the examples, every kind of bad input, and Python-built specs.

Bad inputs are written to tmp_path; the offending line of each is marked with `# <-`,
and the SpecError must name that file and exactly that line.
"""

from __future__ import annotations

import ipaddress
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.paths import EXAMPLES

import netprobe
from netprobe import (
    Bridge,
    Firewall,
    Host,
    Interface,
    Route,
    Spec,
    SpecError,
    Tap,
    Veth,
    Vlan,
)

MARK = "# <-"

EXPECTED_HOSTS = {
    "bond": ["server", "client", "switch", "lacp1", "lacp2"],
    "docker-bridge": ["c1", "c2", "c3", "c4", "dockerhost", "outside"],
    "dhcp": ["lan", "sw", "c1", "c2"],
    "exposure": ["client", "web"],
    "filter": ["client", "fw", "router", "outside"],
    "lxc": ["lxchost", "c1", "outside"],
    "mac-learning": ["h1", "h2", "h3", "h4", "switch"],
    "nat-gateway": ["vm1", "pve", "internet"],
    "ovs-bond": ["h1", "h2", "hv", "tor"],
    "ovs-lacp": ["c1", "c2", "server", "switch"],
    "ovs-flows": ["h1", "h2", "bad", "switch"],
    "ovs-vlan": ["h1", "h2", "h3", "core", "switch"],
    "proxmox-bridged": ["pve", "lan"],
    "redblue": ["red", "blue", "switch"],
    "rootless": ["host", "uplink", "container", "neighbour", "sibling"],
    "router": ["left", "right", "router"],
    "sdn": ["good", "server", "bad", "switch"],
    "tenants": ["a1", "a2", "b1", "b2", "hv"],
    "vlan": ["router", "h10", "h20", "switch"],
    "vlan-bridge": ["vm1", "vm2", "upstream", "pve"],
    "vxlan": ["hv1", "hv2", "g1", "g2", "b1", "b2"],
    "vxlan-ovs": ["hv1", "hv2", "g1", "g2", "b1", "b2"],
}


def marked_line(text: str) -> int:
    """The 1-based number of the one line carrying the `# <-` marker."""
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if MARK in line]
    assert len(lines) == 1, "each bad input marks exactly one line"
    return lines[0]


def write_spec(directory: Path, text: str, name: str = "topo.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


# -- the examples --------------------------------------------------------------------------


def test_every_example_has_an_expectation() -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.yaml")) == sorted(EXPECTED_HOSTS)


@pytest.mark.parametrize("stem", sorted(EXPECTED_HOSTS))
def test_example_loads_with_its_hosts(stem: str) -> None:
    path = EXAMPLES / f"{stem}.yaml"
    spec = netprobe.load(path)
    assert isinstance(spec, Spec)
    assert spec.name == stem
    assert [h.name for h in spec.hosts] == EXPECTED_HOSTS[stem]
    assert spec.source == str(path)
    assert netprobe.validate(spec) is spec


def test_redblue_red_eth0_is_a_veth_to_the_switch() -> None:
    red = netprobe.load(EXAMPLES / "redblue.yaml").host("red")
    eth0 = red.interface("eth0")
    assert eth0 is not None
    assert eth0.kind == Veth("switch:red")
    assert isinstance(eth0.kind, Veth)
    assert (eth0.kind.peer_host, eth0.kind.peer_ifname) == ("switch", "red")
    assert eth0.addresses == (
        ipaddress.ip_interface("10.0.0.1/24"),
        ipaddress.ip_interface("fd00::1/64"),
    )
    assert eth0.mac == "02:00:00:00:00:01"


def test_redblue_switch_ports_are_far_veth_ends_on_the_bridge() -> None:
    switch = netprobe.load(EXAMPLES / "redblue.yaml").host("switch")
    br0 = switch.interface("br0")
    assert br0 is not None and br0.kind == Bridge(stp=False, ageing=300)
    for port in ("red", "blue"):
        iface = switch.interface(port)
        assert iface is not None
        assert (iface.kind, iface.master) == (None, "br0")


def test_nat_gateway_firewall_path_is_relative_to_the_yaml_file() -> None:
    pve = netprobe.load(EXAMPLES / "nat-gateway.yaml").host("pve")
    assert pve.firewall == (Firewall("nft", str(EXAMPLES / "nat-gateway.nft")),)
    assert os.path.isabs(pve.firewall[0].path)


def test_firewall_path_follows_the_yaml_file_when_loaded_from_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "gw.nft").write_text("flush ruleset\n")
    path = write_spec(tmp_path / "conf", "hosts:\n  gw:\n    firewall: [{nft: gw.nft}]\n")
    monkeypatch.chdir(tmp_path)
    spec = netprobe.load(Path("conf") / "topo.yaml")
    assert spec.host("gw").firewall[0].path == str(path.parent / "gw.nft")


# -- bad input: one case per kind of problem ------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A bad topology file and a fragment its error message must contain."""

    yaml: str
    message: str


BAD = {
    "unknown-top-level-key": Bad(
        """\
        name: t
        colour: red  # <-
        hosts:
          a:
        """,
        "unknown key 'colour' in the topology",
    ),
    "unknown-host-key": Bad(
        """\
        hosts:
          a:
            interfaces: {eth0: {tap: {}}}
            gateway: 10.0.0.1  # <-
        """,
        "unknown key 'gateway' in host 'a'",
    ),
    "unknown-interface-key": Bad(
        """\
        hosts:
          a:
            interfaces:
              eth0:
                tap: {}
                speed: 1000  # <-
        """,
        "unknown key 'speed' in interface 'eth0'",
    ),
    "unknown-bridge-option": Bad(
        """\
        hosts:
          a:
            interfaces:
              br0:
                bridge:
                  stp: true
                  hello_time: 2  # <-
        """,
        "unknown key 'hello_time' in bridge",
    ),
    "veth-to-missing-host": Bad(
        """\
        hosts:
          a:
            interfaces:
              eth0: {veth: nowhere:eth0}  # <-
        """,
        "goes to unknown host 'nowhere'",
    ),
    "typeless-interface-no-veth-leads-to": Bad(
        """\
        hosts:
          a:
            interfaces:
              eth0: {veth: b:eth1}
          b:
            interfaces:
              eth0: {addresses: [10.0.0.2/24]}  # <-
        """,
        "interface 'eth0' of 'b' has no type and no veth leads to it",
    ),
    "duplicate-interface": Bad(
        """\
        hosts:
          a:
            interfaces:
              eth0: {tap: {}}
              eth0: {bridge: {}}  # <-
        """,
        "duplicate key 'eth0' in interfaces of 'a'",
    ),
    "duplicate-host": Bad(
        """\
        hosts:
          a:
            interfaces: {eth0: {tap: {}}}
          a:  # <-
            interfaces: {eth1: {tap: {}}}
        """,
        "duplicate key 'a' in hosts",
    ),
    "bad-cidr": Bad(
        """\
        hosts:
          a:
            interfaces:
              eth0: {tap: {}, addresses: [10.0.0.1/24, 10.0.0.300/24]}  # <-
        """,
        "bad address '10.0.0.300/24'",
    ),
    "interface-name-16-chars": Bad(
        """\
        hosts:
          a:
            interfaces:
              abcdefghijklmnop: {tap: {}}  # <-
        """,
        "interface name 'abcdefghijklmnop' must be 1-15 characters",
    ),
    "root-interface-name-too-long-once-prefixed": Bad(
        """\
        hosts:
          machine:
            root: true
            interfaces:
              uplink0123: {veth: b:eth0}  # <-
          b:
        """,
        "must be 1-9 characters of letters, digits, '_', '-', '.' (root-namespace names get "
        "a 6-character prefix)",
    ),
    "root-veth-peer-name-too-long-once-prefixed": Bad(
        """\
        hosts:
          machine:
            root: true
          b:
            interfaces:
              eth0: {veth: machine:uplink0123}  # <-
        """,
        "veth peer name 'uplink0123' must be 1-9 characters",
    ),
    "missing-ruleset-file": Bad(
        """\
        hosts:
          a:
            firewall:
              - nft: rules.nft
              - nft: missing.nft  # <-
        """,
        "cannot read ruleset file",
    ),
    "ruleset-path-is-a-directory": Bad(
        """\
        hosts:
          a:
            firewall:
              iptables: .  # <-
        """,
        "cannot read ruleset file",
    ),
    "ruleset-path-with-nul": Bad(
        """\
        hosts:
          a:
            firewall:
              nft: "rules\\0.nft"  # <-
        """,
        "cannot read ruleset file",
    ),
    "invalid-yaml-syntax": Bad(
        """\
        name: t
        hosts:
          a: b: c  # <-
        """,
        "invalid YAML: mapping values are not allowed here",
    ),
    "tab-indentation": Bad(
        "hosts:\n\ta: {}  # <-\n",
        "invalid YAML",
    ),
    "list-at-top-level": Bad(
        """\
        # a list of hosts is not a topology
        - red  # <-
        - blue
        """,
        "the topology must be a mapping",
    ),
    "scalar-at-top-level": Bad(
        "just some words  # <-\n",
        "the topology must be a mapping",
    ),
    "no-hosts": Bad(
        "name: t  # <-\n",
        "the topology has no `hosts`",
    ),
    "zero-hosts": Bad(
        """\
        name: t
        hosts: {}  # <-
        """,
        "a topology needs at least one host",
    ),
    "two-types-on-one-interface": Bad(
        """\
        hosts:
          a:
            interfaces:
              eth0: {tap: {}, bridge: {}}  # <-
        """,
        "interface 'eth0' has two types: tap and bridge",
    ),
    "master-not-bridge-or-bond": Bad(
        """\
        hosts:
          a:
            interfaces:
              eth0: {tap: {}}
              eth1: {tap: {}, master: eth0}  # <-
        """,
        "master 'eth0' of 'eth1' is not a bridge or bond of 'a'",
    ),
    "learning-without-bridge-master": Bad(
        """\
        hosts:
          a:
            interfaces:
              bond0: {bond: {}}
              eth0: {tap: {}, master: bond0, learning: false}  # <-
        """,
        "`learning` applies to bridge ports; 'eth0' has no bridge master",
    ),
    "macvlan-parent-missing": Bad(
        """\
        hosts:
          a:
            interfaces:
              mv0: {macvlan: {parent: eth9}}  # <-
        """,
        "parent 'eth9' of 'mv0' is not an interface of 'a'",
    ),
    "macvlan-without-parent": Bad(
        """\
        hosts:
          a:
            interfaces:
              mv0: {macvlan: {mode: bridge}}  # <-
        """,
        "parent",
    ),
    "vlan-id-out-of-range": Bad(
        """\
        hosts:
          a:
            interfaces:
              eth0: {tap: {}}
              eth0.5000: {vlan: {parent: eth0, id: 5000}}  # <-
        """,
        "vlan id must be an integer 1..4094, not 5000",
    ),
    "sysctl-outside-net": Bad(
        """\
        hosts:
          a:
            sysctls:
              net.ipv4.ip_forward: 1
              kernel.panic: 1  # <-
        """,
        "sysctl 'kernel.panic': only per-namespace net.* sysctls can be set",
    ),
    "route-dev-missing": Bad(
        """\
        hosts:
          a:
            interfaces:
              eth0: {tap: {}}
            routes:
              - {to: default, dev: eth0}
              - {to: 10.9.0.0/16, dev: eth9}  # <-
        """,
        "route to 10.9.0.0/16 uses dev 'eth9', not an interface of 'a'",
    ),
    "route-without-via-or-dev": Bad(
        """\
        hosts:
          a:
            routes:
              - {to: 10.9.0.0/16}  # <-
        """,
        "a route needs `via` or `dev`",
    ),
    "root-host-with-sysctls": Bad(
        """\
        hosts:
          machine:  # <-
            root: true
            sysctls: {net.ipv4.ip_forward: 1}
        """,
        "the root namespace is the machine's own",
    ),
    "adopted-host-with-firewall": Bad(
        """\
        hosts:
          a:
            adopt: existing
            firewall:  # <-
              nft: rules.nft
        """,
        "netprobe does not load firewall rules into a namespace it adopted",
    ),
    "veth-peer-wrong-format": Bad(
        """\
        hosts:
          a:
            interfaces:
              eth0: {veth: b-eth0}  # <-
        """,
        "veth peer must be HOST:IFNAME, not 'b-eth0'",
    ),
    "veth-end-claimed-twice": Bad(
        """\
        hosts:
          a:
            interfaces:
              eth0: {veth: c:x}
          b:
            interfaces:
              eth0: {veth: c:x}  # <-
          c:
        """,
        "c:x is the end of two veth pairs",
    ),
    "tagged-scalar-pyyaml-cannot-construct": Bad(
        """\
        name: t
        hosts:
          a:
            root: !!bool maybe  # <-
        """,
        "bad value for root",
    ),
}


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    """A directory with one readable ruleset file, rules.nft, for specs to point at."""
    (tmp_path / "rules.nft").write_text("flush ruleset\n")
    return tmp_path


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_bad_input_names_the_problem_the_file_and_the_line(spec_dir: Path, bad: Bad) -> None:
    path = write_spec(spec_dir, bad.yaml)
    with pytest.raises(SpecError) as caught:
        netprobe.load(path)
    exc = caught.value
    assert bad.message in exc.reason
    assert exc.file == str(path)
    assert exc.line == marked_line(textwrap.dedent(bad.yaml))
    assert str(exc).startswith(f"{path}:{exc.line}: ")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError, match="the topology file is empty") as caught:
        netprobe.load(path)
    assert caught.value.file == str(path)
    assert caught.value.line is None


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(SpecError, match="cannot read topology file") as caught:
        netprobe.load(path)
    assert (caught.value.file, caught.value.line) == (str(path), None)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\nhosts:\n  a:\n")
    with pytest.raises(SpecError, match="cannot read topology file") as caught:
        netprobe.load(path)
    assert caught.value.file == str(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_ruleset_file(spec_dir: Path) -> None:
    (spec_dir / "secret.nft").write_text("flush ruleset\n")
    (spec_dir / "secret.nft").chmod(0)
    path = write_spec(spec_dir, "hosts:\n  a:\n    firewall: {nft: secret.nft}\n")
    with pytest.raises(SpecError, match="cannot read ruleset file") as caught:
        netprobe.load(path)
    assert caught.value.line == 3


def test_root_interface_name_of_nine_characters_is_fine(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        hosts:
          machine:
            root: true
            interfaces:
              uplink012: {veth: b:eth0}
          b:
        """,
    )
    spec = netprobe.load(path)
    assert spec.host("machine").root
    assert not spec.host("machine").owned


def test_interface_name_of_fifteen_characters_is_fine(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "hosts:\n  a:\n    interfaces:\n      abcdefghijklmno: {tap: {}}\n")
    assert netprobe.load(path).host("a").interfaces[0].name == "abcdefghijklmno"


# -- loads: text without a file -------------------------------------------------------------


def test_loads_without_a_file() -> None:
    spec = netprobe.loads("hosts:\n  a:\n    interfaces:\n      t0: {tap: true}\n")
    assert spec.name == "topology"
    assert spec.source is None
    assert spec.host("a").interface("t0") == Interface("t0", Tap())


def test_loads_errors_have_no_file_but_a_line() -> None:
    with pytest.raises(SpecError, match="unknown key 'colour'") as caught:
        netprobe.loads("name: t\nhosts:\n  a:\ncolour: red\n")
    assert caught.value.file is None
    assert caught.value.line == 4
    assert str(caught.value) == caught.value.reason


def test_loads_resolves_rulesets_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fw.rules").write_text("*filter\nCOMMIT\n")
    monkeypatch.chdir(tmp_path)
    spec = netprobe.loads("hosts:\n  a:\n    firewall: {iptables: fw.rules}\n")
    assert spec.host("a").firewall == (Firewall("iptables", str(tmp_path / "fw.rules")),)


# -- specs built in Python ------------------------------------------------------------------


def python_spec() -> Spec:
    return Spec(
        "x",
        hosts=[
            Host("a", interfaces=[Interface("eth0", Veth("b:eth0"), addresses=["10.0.0.1/24"])]),
            Host("b"),
        ],
    )


def test_python_spec_normalises_lists_and_strings() -> None:
    spec = python_spec()
    assert isinstance(spec.hosts, tuple)
    a = spec.host("a")
    assert isinstance(a.interfaces, tuple)
    assert a.interfaces[0].addresses == (ipaddress.IPv4Interface("10.0.0.1/24"),)
    assert spec.host("b").interfaces == ()


def test_python_spec_validates_and_is_returned_unchanged() -> None:
    spec = python_spec()
    assert netprobe.validate(spec) is spec


def test_python_spec_equals_the_same_spec_from_yaml() -> None:
    loaded = netprobe.loads("""\
name: x
hosts:
  a:
    interfaces:
      eth0: {veth: "b:eth0", addresses: [10.0.0.1/24]}
  b:
""")
    assert loaded == python_spec()


def test_python_host_sysctls_mapping_becomes_string_pairs() -> None:
    host = Host("r", sysctls={"net.ipv4.ip_forward": True, "net.ipv4.conf.all.rp_filter": 2})
    assert host.sysctls == (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "2"))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Interface("eth0", addresses="10.0.0.1/24"), "addresses must be a list"),
        (lambda: Interface("eth0", addresses=["nonsense"]), "bad address"),
        (lambda: Interface("eth0", mtu=10), "mtu must be an integer"),
        (lambda: Interface("eth0", mac="02:00:00:00:00"), "bad MAC address"),
        (lambda: Veth("b"), "veth peer must be HOST:IFNAME"),
        (lambda: Vlan("eth0", 0), "vlan id must be an integer 1..4094"),
        (lambda: Vlan("eth0", True), "vlan id must be an integer 1..4094"),
        (lambda: Route("default"), "a route needs `via` or `dev`"),
        (lambda: Route("10.0.0.0/33", dev="eth0"), "bad route destination"),
        (lambda: Route("default6", via="10.0.0.1"), "address family differs"),
        (lambda: Route("10.5.0.0/16", via="fd00::1"), "address family differs"),
        (lambda: Route("default", via="10.0.0.1", metric=True), "metric must be"),
        (lambda: Interface("e0", kind="veth"), "interface type must be"),  # type: ignore[arg-type]
        (lambda: Interface("e0", mac="01:00:5e:00:00:01"), "multicast"),
        (lambda: Host("a", interfaces=[None]), "must be Interface objects"),  # type: ignore[list-item]
        (lambda: Bridge(ageing=-1), "bridge ageing must be seconds, 0 to 1000000"),
        (lambda: Bridge(ageing=float("nan")), "bridge ageing must be seconds"),
        (lambda: Bridge(forward_delay=float("inf")), "bridge forward_delay must be seconds"),
        (lambda: Bridge(stp="yes"), "bridge stp must be true or false"),  # type: ignore[arg-type]
        (lambda: Host("a", sysctls={"net.x": [1]}), "sysctl value must be a number or a string"),
    ],
)
def test_python_constructors_refuse_bad_values(build: object, message: str) -> None:
    assert callable(build)
    with pytest.raises(SpecError, match=message) as caught:
        build()
    assert (caught.value.file, caught.value.line) == (None, None)


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        (Spec("x"), ("hosts",), "needs at least one host"),
        (Spec("bad name!", hosts=[Host("a")]), ("name",), "topology name"),
        (Spec("x", hosts=[Host("a"), Host("a")]), ("hosts", "a"), "defined 2 times"),
        (
            Spec("x", hosts=[Host("a", interfaces=[Interface("e", Tap()), Interface("e", Tap())])]),
            ("hosts", "a", "interfaces", "e"),
            "interface 'e' is defined 2 times",
        ),
        (
            Spec("x", hosts=[Host("a", interfaces=[Interface("eth0", Veth("z:eth0"))])]),
            ("hosts", "a", "interfaces", "eth0"),
            "unknown host 'z'",
        ),
        (
            Spec("x", hosts=[Host("a", routes=[Route("default", dev="eth0")])]),
            ("hosts", "a", "routes", "0"),
            "uses dev 'eth0'",
        ),
        (
            Spec("x", hosts=[Host("a", root=True), Host("b", root=True)]),
            ("hosts",),
            "only one host may be the root namespace",
        ),
        (
            Spec("x", hosts=[Host("a", root=True, adopt="ns")]),
            ("hosts", "a"),
            "either `root` or `adopt`",
        ),
        (
            Spec(
                "x",
                hosts=[
                    Host(
                        "a",
                        interfaces=[
                            Interface("e0", Tap(), addresses=["10.0.0.1/24"]),
                            Interface("e1", Tap(), addresses=["10.0.0.1/16"]),
                        ],
                    )
                ],
            ),
            ("hosts", "a", "interfaces", "e1"),
            "address 10.0.0.1 is on both 'e0' and 'e1'",
        ),
        (
            Spec("x", hosts=[Host("a", interfaces=[Interface("lo", Tap())])]),
            ("hosts", "a", "interfaces", "lo"),
            "'lo' is reserved",
        ),
    ],
)
def test_inconsistent_python_spec_fails_validate_with_a_path(
    spec: Spec, path: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        netprobe.validate(spec)
    assert caught.value.path == path
    assert message in caught.value.reason
    assert caught.value.file is None


@pytest.mark.parametrize(
    ("interface", "message"),
    [
        ("{macvlan: {mode: bridge}}", "macvlan needs parent"),
        ("{vlan: {parent: eth1}}", "vlan needs id"),
        ("{veth: {}}", "veth needs peer"),
    ],
)
def test_a_type_missing_its_required_setting_says_which(
    tmp_path: Path, interface: str, message: str
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(f"hosts:\n  a:\n    interfaces:\n      eth1: {{}}\n      x: {interface}\n")
    with pytest.raises(SpecError, match=message) as caught:
        netprobe.load(path)
    assert caught.value.line == 5


def test_a_bad_address_in_block_style_points_at_the_address_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "hosts:\n  a:\n    interfaces:\n      eth0:\n        veth: b:eth0\n"
        "        addresses:\n          - 10.0.0.1/24\n          - 10.0.0.999/24\n  b:\n"
    )
    with pytest.raises(SpecError, match=r"bad address '10\.0\.0\.999/24'") as caught:
        netprobe.load(path)
    assert caught.value.line == 8


def test_as_spec_takes_a_spec_as_it_is_and_loads_a_file(tmp_path: Path) -> None:
    from netprobe.topology import as_spec

    spec = Spec("pair", (Host("a"),))
    assert as_spec(spec) is spec
    path = tmp_path / "pair.yaml"
    path.write_text("name: pair\nhosts:\n  a: {}\n")
    for given in (path, str(path)):
        loaded = as_spec(given)
        assert loaded == spec and loaded.source == str(path)
    with pytest.raises(SpecError, match=r"no-such\.yaml"):
        as_spec(tmp_path / "no-such.yaml")


def test_a_spec_is_checked_once_however_often_it_is_validated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib

    module = importlib.import_module("netprobe.topology._model.validate")
    checked: list[Spec] = []
    real = module._check_spec
    monkeypatch.setattr(module, "_check_spec", lambda s: (checked.append(s), real(s))[1])
    spec = Spec("once", (Host("a"),))
    assert module.validate(spec) is spec and module.validate(spec) is spec
    twin = Spec("once", (Host("a"),))  # equal, but another object: checked on its own
    module.validate(twin)
    assert [id(s) for s in checked] == [id(spec), id(twin)]
    with pytest.raises(SpecError):  # a failing spec is never remembered as valid
        module.validate(Spec("bad name!", (Host("a"),)))
    with pytest.raises(SpecError):
        module.validate(Spec("bad name!", (Host("a"),)))
