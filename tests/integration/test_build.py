"""Building real topologies: every spec feature ends up in the kernel as specified."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.handmade_net import HandMade
from support.paths import EXAMPLES

import netprobe
from netprobe import Bond, Bridge, Host, Interface, Macvlan, Route, Spec, Tap, Veth, Vlan
from netprobe.topology._kernel import netns

pytestmark = pytest.mark.root



def _link(topo: netprobe.Topology, host: str, name: str) -> dict[str, object]:
    out = topo.run(host, ["ip", "-d", "-j", "link", "show", name], check=True).stdout
    link: dict[str, object] = json.loads(out)[0]
    return link


def _left(*hosts: str) -> list[str]:
    """Namespaces of these (test-unique) host names still present, whoever made them."""
    return [n for n in netns.list_names() if n.startswith("np-") and n.endswith(hosts)]


def _pair(a: str = "a", b: str = "b", **extra: object) -> list[Host]:
    return [
        Host(
            a, interfaces=[Interface("eth0", Veth(f"{b}:eth0"), addresses=["10.9.0.1/24"])], **extra
        ),  # type: ignore[arg-type]
        Host(b, interfaces=[Interface("eth0", addresses=["10.9.0.2/24"])]),
    ]


def test_redblue_hosts_reach_each_other_over_ipv4_and_ipv6() -> None:
    with netprobe.build(netprobe.load(EXAMPLES / "redblue.yaml")) as topo:
        assert topo.run("red", ["ping", "-c1", "-W2", "10.0.0.2"]).ok
        assert topo.run("blue", ["ping", "-c1", "-W2", "fd00::1"]).ok
        assert _link(topo, "red", "eth0")["address"] == "02:00:00:00:00:01"
        ns = {topo.namespace(h) for h in ("red", "blue", "switch")}
        assert all(n and n.startswith(f"np-{topo.runid}-") for n in ns)
        assert ns <= set(netns.list_names())
        for host, name in (("red", "eth0"), ("switch", "red")):  # a veth's two ends
            link = _link(topo, host, name)  # one queue each way
            assert (link["num_tx_queues"], link["num_rx_queues"]) == (1, 1), link
    assert not ns & set(netns.list_names())


NEEDS = {"vlan.yaml": "802.1Q vlan", "vlan-bridge.yaml": "bridge vlan_filtering",
         "bond.yaml": "bond"}


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_builds_and_passes_its_self_check(name: str) -> None:
    """Or, where this kernel lacks what the example needs, is refused with the reason."""
    from netprobe._capabilities import probe

    spec = netprobe.load(EXAMPLES / name)
    if name in NEEDS and not probe([NEEDS[name]])[0].present:
        with pytest.raises(netprobe.SetupError) as refused:
            netprobe.build(spec)
        assert refused.value.remedy
        return
    with netprobe.build(spec) as topo:
        assert set(topo.hosts) == {h.name for h in spec.hosts}


def test_examples_behave_as_their_comments_say() -> None:
    with netprobe.build(netprobe.load(EXAMPLES / "router.yaml")) as topo:
        assert topo.run("left", ["ping", "-c1", "-W2", "10.2.0.10"]).ok
        assert topo.run("left", ["ping", "-c1", "-W2", "fd02::10"]).ok
    with netprobe.build(netprobe.load(EXAMPLES / "tenants.yaml")) as topo:
        assert topo.run("a1", ["ping", "-c1", "-W2", "192.168.1.20"]).ok
        neigh = topo.run("a1", ["ip", "-j", "neigh", "show", "192.168.1.20"]).stdout
        assert json.loads(neigh)[0]["lladdr"] == "02:0a:00:00:00:20"  # a2, never b2
    with netprobe.build(netprobe.load(EXAMPLES / "docker-bridge.yaml")) as topo:
        assert topo.run("c1", ["ping", "-c1", "-W2", "198.51.100.1"]).ok  # masquerade
        assert not topo.run("c3", ["ping", "-c1", "-W1", "172.17.0.2"]).ok  # isolation


def test_bridge_options_and_per_port_learning() -> None:
    spec = Spec(
        "br",
        hosts=[
            Host(
                "sw",
                interfaces=[
                    Interface("br0", Bridge(stp=True, ageing=12.5, forward_delay=4)),
                    Interface("p1", Veth("h:eth0"), master="br0", learning=False),
                ],
            ),
            Host("h"),
        ],
    )
    with netprobe.build(spec) as topo:
        br = _link(topo, "sw", "br0")["linkinfo"]["info_data"]  # type: ignore[index]
        assert br["stp_state"] == 1 and br["ageing_time"] == 1250
        assert br["forward_delay"] == 400
        port = _link(topo, "sw", "p1")["linkinfo"]["info_slave_data"]  # type: ignore[index]
        assert port["learning"] is False


def test_tap_is_held_open_with_carrier_and_can_be_written() -> None:
    spec = Spec(
        "tap",
        hosts=[
            Host(
                "hv",
                interfaces=[
                    Interface("br0", Bridge()),
                    Interface("tap0", Tap(), master="br0", mac="02:00:00:00:aa:01", mtu=1400),
                ],
            )
        ],
    )
    with netprobe.build(spec) as topo:
        fd = topo.tap("hv", "tap0")
        link = _link(topo, "hv", "tap0")
        assert "LOWER_UP" in link["flags"] and link["mtu"] == 1400  # type: ignore[operator]
        assert link["address"] == "02:00:00:00:aa:01" and link["master"] == "br0"
        frame = bytes.fromhex("ffffffffffff02000000aa0188b5") + b"netprobe" * 8
        assert os.write(fd, frame) == len(frame)
        rx = json.loads(topo.run("hv", ["ip", "-s", "-j", "link", "show", "tap0"]).stdout)
        assert rx[0]["stats64"]["rx"]["packets"] >= 1  # the "VM" sent it into the host


def test_macvlan_addresses_routes_and_sysctls() -> None:
    spec = Spec(
        "l3",
        hosts=[
            Host(
                "a",
                interfaces=[
                    Interface("eth0", Veth("b:eth0"), addresses=["10.9.0.1/24", "fd09::1/64"]),
                    Interface("mv0", Macvlan("eth0", mode="bridge"), addresses=["10.9.1.1/24"]),
                ],
                routes=[
                    Route("default", via="10.9.0.2"),
                    Route("10.77.0.0/16", dev="mv0", metric=7),
                ],
                sysctls={"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 2},
            ),
            Host("b", interfaces=[Interface("eth0", addresses=["10.9.0.2/24"])]),
        ],
    )
    with netprobe.build(spec) as topo:
        assert _link(topo, "a", "mv0")["linkinfo"]["info_data"]["mode"] == "bridge"  # type: ignore[index]
        routes = topo.run("a", ["ip", "route"], check=True).stdout
        assert "default via 10.9.0.2 dev eth0" in routes
        assert "10.77.0.0/16 dev mv0" in routes and "metric 7" in routes
        sysctl = topo.run(
            "a", ["sysctl", "-n", "net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter"], check=True
        ).stdout.split()
        assert sysctl == ["1", "2"]
        addrs = topo.run("a", ["ip", "-6", "-j", "addr", "show", "eth0"]).stdout
        assert '"tentative"' not in addrs and "fd09::1" in addrs  # its link-local too
        quiet = ["all.accept_dad", "eth0.accept_dad", "eth0.router_solicitations"]
        argv = ["sysctl", "-n", *(f"net.ipv6.conf.{key}" for key in quiet)]
        assert topo.run("a", argv, check=True).stdout.split() == ["0", "0", "0"]


def test_nft_and_iptables_rulesets_load_inside_the_host(tmp_path: Path) -> None:
    nft = tmp_path / "r.nft"
    nft.write_text(
        "table inet np_test {\n chain input {\n"
        "  type filter hook input priority 0; policy accept;\n"
        "  tcp dport 23 drop\n }\n}\n"
    )
    ipt = tmp_path / "r.rules"
    ipt.write_text(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"
    )
    spec = Spec(
        "fw",
        hosts=[
            Host(
                "a",
                firewall=[
                    netprobe.Firewall("nft", str(nft)),
                    netprobe.Firewall("iptables", str(ipt)),
                ],
            )
        ],
    )
    with netprobe.build(spec) as topo:
        ruleset = topo.run("a", ["nft", "list", "ruleset"], check=True).stdout
        assert "table inet np_test" in ruleset and "tcp dport 23 drop" in ruleset
        assert "--dport 22 -j ACCEPT" in topo.run("a", ["iptables", "-S", "INPUT"]).stdout
    root = os.popen("nft list tables").read()
    assert "np_test" not in root  # the machine's own firewall was never touched


@pytest.mark.parametrize(
    ("kind", "feature"), [(Vlan("eth0", 10), "802.1Q VLAN"), (Bond("active-backup"), "bonding")]
)
def test_kernel_features_this_machine_lacks_raise_setup_error(kind: object, feature: str) -> None:
    from netprobe._capabilities import probe

    name = "802.1Q vlan" if isinstance(kind, Vlan) else "bond"
    if probe([name])[0].present:
        pytest.skip(f"this kernel has {name}")
    spec = Spec(
        "missing",
        hosts=[
            Host(
                "lacking-a",
                interfaces=[Interface("eth0", Veth("lacking-b:eth0")), Interface("x0", kind)],
            ),  # type: ignore[arg-type]
            Host("lacking-b"),
        ],
    )
    with pytest.raises(netprobe.SetupError, match=feature) as caught:
        netprobe.build(spec)
    assert caught.value.remedy
    assert not _left("-lacking-a", "-lacking-b")


def test_self_check_names_the_link_without_carrier() -> None:
    spec = Spec(
        "nocarrier",
        hosts=[
            Host("nc-a", interfaces=[Interface("eth0", Veth("nc-b:eth0"))]),
            Host("nc-b", interfaces=[Interface("eth0", up=False)]),
        ],
    )
    with pytest.raises(netprobe.TopologyError, match=r"nc-a:eth0 is up but has no carrier"):
        netprobe.build(spec)
    assert not _left("-nc-a", "-nc-b")


def test_an_exception_inside_the_with_block_still_tears_down() -> None:
    with pytest.raises(RuntimeError), netprobe.build(Spec("boom", hosts=_pair())) as topo:
        names = [topo.namespace("a"), topo.namespace("b")]
        raise RuntimeError("user code failed")
    assert not set(names) & set(netns.list_names())


def test_build_failure_midway_removes_what_was_made() -> None:
    spec = Spec(
        "midway",
        hosts=[
            Host(
                "mid-a",
                interfaces=[Interface("eth0", Veth("mid-b:eth0"), addresses=["10.9.0.1/24"])],
                sysctls={"net.ipv4.no_such_thing": 1},
            ),
            Host("mid-b", interfaces=[Interface("eth0")]),
        ],
    )
    with pytest.raises(netprobe.TopologyError, match="no_such_thing"):
        netprobe.build(spec)
    assert not _left("-mid-a", "-mid-b")


# Links netprobe gives an ifindex (in the namespaces it owns) are made in the right order
# whichever host's socket makes them; an end made by a host netprobe does not own gets
# the kernel's index, which netprobe then looks up.


def test_an_underlay_made_through_a_later_hosts_socket_exists_before_its_vxlan() -> None:
    # hv2 comes first, but its ul0 is the far end of the veth that hv1 (later) declares:
    # its queue goes out after hv2's, which holds the VXLAN on top of ul0.
    spec = netprobe.loads("""
name: order
hosts:
  hv2:
    interfaces:
      ul0: {addresses: [192.168.77.2/24]}
      vx0: {vxlan: {id: 42, remote: 192.168.77.1, local: 192.168.77.2, dev: ul0}}
  hv1:
    interfaces:
      ul0: {veth: {peer: "hv2:ul0"}, addresses: [192.168.77.1/24]}
""")
    with netprobe.build(spec) as topo:
        vx0 = _link(topo, "hv2", "vx0")
        ul0 = _link(topo, "hv2", "ul0")
        assert vx0["linkinfo"]["info_data"]["link"] == "ul0", vx0  # type: ignore[index]
        assert ul0["ifindex"] >= 1000  # type: ignore[operator]  # given by netprobe


def test_a_veth_made_from_an_adopted_host_into_an_owned_one() -> None:
    with HandMade() as net:
        handmade = net.ns("outside")
        # The adopted host comes first and makes the pair: its end has the kernel's index, and
        # so (the kernel ties the two) has the owned end, which must then be looked up.
        spec = netprobe.loads(f"""
name: order
hosts:
  outside:
    adopt: {handmade}
    interfaces:
      v0: {{veth: {{peer: "inner:eth0"}}, addresses: [10.77.0.1/24]}}
  inner:
    interfaces:
      eth0: {{addresses: [10.77.0.2/24, "fd77::2/64"]}}
    routes:
      - {{to: default, via: 10.77.0.1}}
""")
        with netprobe.build(spec) as topo:
            eth0 = _link(topo, "inner", "eth0")
            assert eth0["ifindex"] < 1000, eth0  # type: ignore[operator]
            shown = topo.run("inner", ["ip", "-j", "addr", "show", "eth0"], check=True).stdout
            assert {a["local"] for a in json.loads(shown)[0]["addr_info"]} >= {
                "10.77.0.2",
                "fd77::2",
            }
            assert topo.run("inner", ["ping", "-c", "1", "-W", "2", "10.77.0.1"]).ok
        assert "v0" not in net.ip("outside", "-br", "link")  # netprobe's veth went with it
