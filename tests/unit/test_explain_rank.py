"""Ranking: the top cause names the fault, from drops read against the state, from
counters when there is no drop trace, and from state alone last."""

from __future__ import annotations

import dataclasses
from typing import Any

from netprobe.explain._cause import Cause, Findings, HostFacts, LinkFacts, rank
from netprobe.explain._counters import Delta
from netprobe.explain._delivery import nat_rules
from netprobe.explain._facts import Delivery
from netprobe.explain._nfttrace import NftReport, parse_monitor
from netprobe.traffic._droptrace import Drop, DropReport, Hop

PROBE: dict[str, Any] = {
    "eth.dst": "02:00:00:00:00:02",
    "eth.type": 2048,
    "ip.src": "10.1.0.10",
    "ip.dst": "10.2.0.10",
    "ip.ttl": 64,
    "ip.proto": 17,
    "l4.dport": 9,
}
PATH = (Hop("net_dev_xmit", "eth0", "left"), Hop("netif_receive_skb", "eth0", "router"))
ROUTER_LINKS = {
    "eth0": LinkFacts("eth0", "aa:aa:aa:aa:aa:aa", addresses=("10.1.0.1",)),
    "eth1": LinkFacts("eth1", "bb:bb:bb:bb:bb:bb", addresses=("10.2.0.1",)),
}


def _drop(reason: str, host: str = "router", dev: str = "eth0") -> Drop:
    return Drop(reason, "somewhere+0x1/0x2", host, dev, 2048, "ab")


def _router(**sysctls: str) -> dict[str, HostFacts]:
    values = {"net.ipv4.ip_forward": "1", **{k.replace("_", "."): v for k, v in sysctls.items()}}
    return {"router": HostFacts("router", values, ROUTER_LINKS, ("10.1.0.1", "10.2.0.1"))}


def _top(found: Findings) -> Cause:
    return rank(found)[0]


def test_inaddrerrors_with_forwarding_off_is_forwarding_disabled() -> None:
    hosts = {"router": HostFacts("router", {"net.ipv4.ip_forward": "0"}, ROUTER_LINKS)}
    report = DropReport(True, (_drop("IP_INADDRERRORS"),), PATH)
    top = _top(Findings(PROBE, "left:eth0", report, hosts=hosts))
    assert top.text == "forwarding disabled on router (net.ipv4.ip_forward = 0)"
    assert top.evidence == ("kfree_skb reason IP_INADDRERRORS at somewhere+0x1/0x2 on router:eth0",)


def test_counters_name_it_without_the_trace() -> None:
    hosts = {"router": HostFacts("router", {"net.ipv4.ip_forward": "0"}, ROUTER_LINKS)}
    moved = (Delta("router", "snmp", "IpInAddrErrors", 1), Delta("left", "snmp", "IpOut", 1))
    found = Findings(PROBE, "left:eth0", DropReport(False), deltas=moved, hosts=hosts)
    assert _top(found).text == "forwarding disabled on router (net.ipv4.ip_forward = 0)"


def test_the_nft_verdict_outranks_its_counter() -> None:
    text = (
        "trace id 1 inet fw forward packet: iif eth0\n"
        "trace id 1 inet fw forward rule udp dport 9 counter packets 0 bytes 0 drop "
        "# handle 2 (verdict drop)\n"
    )
    nft = (NftReport("router", tuple(parse_monitor(text))),)
    moved = (Delta("router", "nft", "inet fw forward #2", 1, "udp dport 9 drop"),)
    report = DropReport(True, (_drop("NETFILTER_DROP"),), PATH)
    causes = rank(Findings(PROBE, "left:eth0", report, nft, moved, _router()))
    assert causes[0].text == (
        "nft rule `udp dport 9 drop` (chain inet fw forward, handle 2) on router gave `drop`"
    )
    assert "counter router `udp dport 9 drop` +1" in causes[0].evidence
    assert len(causes) == 1


def test_a_declared_master_missing_outranks_otherhost() -> None:
    links = {"red": LinkFacts("red", "cc:cc:cc:cc:cc:cc", None, "br0")}
    hosts = {"switch": HostFacts("switch", {}, links)}
    report = DropReport(True, (_drop("OTHERHOST", "switch", "red"),), PATH)
    top = _top(Findings(PROBE, "red:eth0", report, hosts=hosts))
    assert top.text == "switch:red is not a port of br0: it has no master (missing master br0)"


def test_reasons_read_against_the_probe() -> None:
    def top_for(reason: str, probe: dict[str, Any] = PROBE, host: str = "router") -> str:
        report = DropReport(True, (_drop(reason, host),), PATH)
        return _top(Findings(probe, "left:eth0", report, hosts=_router())).text

    assert top_for("NO_SOCKET", host="right") == (
        "NO_SOCKET on right: nothing listens on udp port 9 of 10.2.0.10"
    )
    assert top_for("IP_INHDR", {**PROBE, "ip.ttl": 1}).startswith("IP_INHDR on router: TTL 1")
    assert top_for("UDP_CSUM") == "UDP_CSUM on router:eth0: the probe's UDP checksum is wrong"
    assert top_for("OTHERHOST").startswith("OTHERHOST on router:eth0: destination MAC")
    assert top_for("QDISC_DROP") == "QDISC_DROP on router:eth0"


def test_drops_not_on_the_probe_rank_last_and_nothing_found_says_so() -> None:
    other = Drop("NOT_SPECIFIED", "x", None, None, 2048, "cd")
    found = Findings(PROBE, "left:eth0", DropReport(True, (), PATH, (other,)))
    assert rank(found)[0].score < 0.5
    empty = Findings(PROBE, "left:eth0", DropReport(False))
    assert rank(empty)[0].text.startswith("no drop of the probe was found (no drop trace")


def test_causes_serialise_and_render() -> None:
    cause = Cause("forwarding disabled on router", ("IpInAddrErrors +1",), 0.97)
    assert cause.to_dict() == {
        "text": "forwarding disabled on router",
        "evidence": ["IpInAddrErrors +1"],
        "score": 0.97,
    }
    assert cause.render() == "[0.97] forwarding disabled on router\n    IpInAddrErrors +1"


# -- failures that are not drops, and state on the probe's own path ---------------------

SWITCH_LINKS = {
    "br0": LinkFacts("br0", "ee:ee:ee:ee:ee:ee", kind="bridge", ageing=300.0),
    "p1": LinkFacts("p1", "01:01:01:01:01:01", "br0", "br0", "forwarding", kind="veth"),
    "p2": LinkFacts("p2", "02:02:02:02:02:02", "br0", "br0", "forwarding", kind="veth"),
}
PEERS = {("h1", "eth0"): ("switch", "p1"), ("h2", "eth0"): ("switch", "p2")}
PEERS = {**PEERS, **{v: k for k, v in PEERS.items()}}


def _switch(**links: LinkFacts) -> dict[str, HostFacts]:
    return {"switch": HostFacts("switch", {}, {**SWITCH_LINKS, **links})}


def test_a_probe_that_arrived_where_it_must_not_is_a_delivery_not_a_drop() -> None:
    leak = Delivery(leaked=("b2:eth0",), devices={"b2:eth0": ("b2", "eth0")})
    crossing = (
        Hop("net_dev_xmit", "leak-a", "hv"),
        Hop("netif_receive_skb", "leak-b", "hv"),
        Hop("netif_receive_skb", "eth0", "b2"),
    )
    links = {
        "leak-a": LinkFacts("leak-a", master="br-a", kind="veth"),
        "leak-b": LinkFacts("leak-b", master="br-b", kind="veth"),
    }
    found = Findings(
        PROBE,
        "a1:eth0",
        DropReport(True, (_drop("NO_SOCKET", "b2"),), crossing),
        hosts={"hv": HostFacts("hv", {}, links)},
        delivery=leak,
        peers={("hv", "leak-a"): ("hv", "leak-b"), ("hv", "leak-b"): ("hv", "leak-a")},
    )
    top = _top(found)
    assert top.text == (
        "the probe was delivered, not dropped: it reached b2:eth0, where it must not (it "
        "crossed hv:leak-a, a port of hv:br-a, to its veth peer hv:leak-b, a port of hv:br-b)"
    )
    assert top.evidence[0].startswith("path: left by hv:leak-a")


def test_a_flood_names_the_missing_fdb_entry_and_the_port_that_does_not_learn() -> None:
    probe = {"eth.dst": "02:4e:50:00:00:0a", "eth.type": 0x88B5}
    got = Delivery(("h1:eth0",), (), ("h2:eth0",), dests=(("h1", "eth0"),))
    path = (Hop("netif_receive_skb", "p1", "switch"),)
    links = {"p1": dataclasses.replace(SWITCH_LINKS["p1"], learning=False)}
    found = Findings(
        probe, "h3:eth0", DropReport(True, (), path), hosts=_switch(**links), delivery=got,
        peers=PEERS,
    )  # fmt: skip
    assert _top(found).text.endswith(
        "(switch:br0 has no FDB entry for 02:4e:50:00:00:0a: it floods it; "
        "switch:p1 has learning off: 02:4e:50:00:00:0a is never learned there)"
    )


def test_a_routed_probe_is_not_judged_by_its_first_mac_on_the_routers_bridges() -> None:
    """Addressed to dockerhost's eth0 and routed onto docker0: docker0 never saw that MAC
    (the routed frame has the container's), so no flood is named; a switch the frame
    crossed before reaching the router is still judged by it."""
    probe = {**PROBE, "eth.dst": "aa:aa:aa:aa:aa:aa"}
    got = Delivery(leaked=("c1:eth0",), devices={"c1:eth0": ("c1", "eth0")})
    path = (
        Hop("net_dev_xmit", "eth0", "outside"),
        Hop("netif_receive_skb", "p1", "switch"),
        Hop("net_dev_xmit", "p2", "switch"),
        Hop("netif_receive_skb", "eth0", "dockerhost"),
        Hop("net_dev_xmit", "vethc1", "dockerhost"),
        Hop("netif_receive_skb", "eth0", "c1"),
    )
    docker = {
        "eth0": LinkFacts("eth0", "aa:aa:aa:aa:aa:aa", kind="veth"),
        "docker0": LinkFacts("docker0", "cc:cc:cc:cc:cc:cc", kind="bridge"),
        "vethc1": LinkFacts("vethc1", "cc:cc:cc:cc:cc:cc", "docker0", kind="veth"),
    }
    hosts = {
        **_switch(),
        "dockerhost": HostFacts("dockerhost", {}, docker),
        "c1": HostFacts("c1", {}, {"eth0": LinkFacts("eth0", "02:42:ac:11:00:02")}),
    }
    wires = {("outside", "eth0"): ("switch", "p1"), ("switch", "p2"): ("dockerhost", "eth0"),
             ("dockerhost", "vethc1"): ("c1", "eth0")}  # fmt: skip
    peers = {**wires, **{v: k for k, v in wires.items()}}
    found = Findings(probe, "outside:eth0", DropReport(True, (), path), hosts=hosts,
                     delivery=got, peers=peers, sender=("outside", "eth0"))  # fmt: skip
    text = _top(found).text
    assert "dockerhost:docker0" not in text
    assert text.endswith("(switch:br0 has no FDB entry for aa:aa:aa:aa:aa:aa: it floods it)")


def test_a_missing_source_nat_names_the_rule_that_does_not_match() -> None:
    rule = 'ip saddr 10.0.0.0/24 oifname "vmbr1" masquerade'
    diff = "ip.src: expected 1.1.1.1, seen 10.0.0.2"
    got = Delivery(
        ("out:eth0",),
        altered={"out:eth0": (diff,)},
        rewrites={"ip.src": "1.1.1.1"},
        devices={"out:eth0": ("out", "eth0")},
    )
    path = (
        Hop("net_dev_xmit", "eth0", "vm"),
        Hop("netif_receive_skb", "eth0", "gw"),
        Hop("net_dev_xmit", "uplink", "gw"),
        Hop("netif_receive_skb", "eth0", "out"),
    )
    hosts = {"gw": HostFacts("gw", nat=(rule,)), "out": HostFacts("out")}
    found = Findings(PROBE, "vm:eth0", DropReport(True, (), path), hosts=hosts, delivery=got,
                     sender=("vm", "eth0"))  # fmt: skip
    assert _top(found).text == (
        "the probe was delivered, not dropped: it reached out:eth0 with ip.src: expected "
        f'1.1.1.1, seen 10.0.0.2 (gw\'s rule `{rule}` matches oifname "vmbr1", but the '
        "probe left by uplink)"
    )
    assert nat_rules(
        "table ip nat {\n chain post {\n  type nat hook postrouting priority srcnat;\n"
        f"  {rule} counter packets 0 bytes 0 # handle 3\n }}\n}}\n"
    ) == (rule,)


def test_a_missing_dnat_is_named_where_the_gateway_kept_the_probe() -> None:
    probe = {**PROBE, "ip.proto": 6, "l4.dport": 8080, "ip.dst": "203.0.113.10"}
    got = Delivery(("vm:eth0",), ("vm:eth0",), rewrites={"ip.dst": "10.0.0.2", "l4.dport": 80})
    hosts = {"gw": HostFacts("gw", addresses=("203.0.113.10",), nat=())}
    report = DropReport(True, (_drop("NO_SOCKET", "gw", "uplink"),), PATH)
    top = _top(Findings(probe, "out:eth0", report, hosts=hosts, delivery=got))
    assert top.text == (
        "no DNAT on gw: the probe to 203.0.113.10:8080 was not rewritten to 10.0.0.2:80; "
        "gw took it for itself (NO_SOCKET): gw has no DNAT rule for dport 8080"
    )


def test_an_answer_without_a_route_back_is_named() -> None:
    got = Delivery(("left:eth0",), ("left:eth0",), reply=True)
    routes = {"ip route get 10.1.0.10": "RTNETLINK answers: Network is unreachable"}
    hosts = {"right": HostFacts("right", addresses=("10.2.0.10",), routes=routes)}
    path = (*PATH, Hop("netif_receive_skb", "eth0", "right"))
    found = Findings(PROBE, "left:eth0", DropReport(True, (), path), hosts=hosts, delivery=got)
    assert _top(found).text.startswith("no route back: right has no route to 10.1.0.10")


def test_state_on_the_probe_path_names_down_links_and_small_mtus() -> None:
    probe = {"eth.dst": "02:02:02:02:02:02", "eth.type": 0x88B5}
    got = Delivery(("h2:eth0",), ("h2:eth0",), dests=(("h2", "eth0"),))
    down = {"p2": dataclasses.replace(SWITCH_LINKS["p2"], up=False)}
    found = Findings(probe, "h1:eth0", DropReport(True), hosts=_switch(**down), delivery=got,
                     peers=PEERS, sender=("h1", "eth0"), frame_len=1514)  # fmt: skip
    assert _top(found).text == "switch:p2 is down"
    small = {"p2": dataclasses.replace(SWITCH_LINKS["p2"], mtu=1280)}
    found = dataclasses.replace(found, hosts=_switch(**small))
    assert _top(found).text.startswith("switch:p2 has MTU 1280, smaller than the probe's 1500")


def test_inaddrerrors_reads_the_host_ipv6_and_a_missing_address() -> None:
    v6 = {"eth.type": 0x86DD, "ip6.src": "fd01::10", "ip6.dst": "fd02::10"}
    links = {n: dataclasses.replace(f, addresses6=(f"fd0{i}::1",))
             for i, (n, f) in enumerate(ROUTER_LINKS.items(), 1)}  # fmt: skip
    hosts = {"router": HostFacts("router", {"net.ipv6.conf.all.forwarding": "0"}, links)}
    report = DropReport(True, (_drop("IP_INADDRERRORS"),), PATH)
    assert _top(Findings(v6, "left:eth0", report, hosts=hosts)).text == (
        "IPv6 forwarding disabled on router (net.ipv6.conf.all.forwarding = 0)"
    )
    lone = {"blue": HostFacts("blue", {"net.ipv4.ip_forward": "0"}, {"eth0": LinkFacts("eth0")})}
    report = DropReport(True, (_drop("IP_INADDRERRORS", "blue"),), PATH)
    assert _top(Findings(PROBE, "red:eth0", report, hosts=lone)).text.startswith(
        "blue does not hold 10.2.0.10: blue:eth0 took the probe in"
    )


def test_unhandled_proto_is_a_delivery_and_ranks_below_state() -> None:
    probe = {"eth.dst": "ff:ff:ff:ff:ff:ff", "eth.type": 0x88B5}
    stray = {"p2": LinkFacts("p2", kind="veth")}  # declared nowhere, enslaved nowhere
    got = Delivery(("h2:eth0",), ("h2:eth0",), dests=(("h2", "eth0"),))
    report = DropReport(True, (_drop("UNHANDLED_PROTO", "switch", "br0"),), PATH)
    causes = rank(Findings(probe, "h1:eth0", report, hosts=_switch(**stray), delivery=got,
                           peers=PEERS))  # fmt: skip
    assert causes[0].text.startswith("switch:p2 is not a port of any bridge (missing master: br0)")
    assert causes[-1].text.startswith("UNHANDLED_PROTO on switch:br0: the frame reached")
    assert causes[-1].score < 0.5


def test_unicast_dst_is_the_one_test_of_a_unicast_destination() -> None:
    from netprobe.explain._facts import unicast_dst

    assert unicast_dst({"eth.dst": "02:AA:00:00:00:01"}) == "02:aa:00:00:00:01"
    for group in ("ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "33:33:00:00:00:01"):
        assert unicast_dst({"eth.dst": group}) is None
    assert unicast_dst({}) is None and unicast_dst({"eth.dst": ""}) is None


# The kernel NAT selftest's router: forwarding per interface, ip_forward left 0.
NS0_LINKS = {
    "veth0": LinkFacts("veth0", "aa:aa:aa:aa:aa:00", addresses=("10.0.1.1",)),
    "veth1": LinkFacts("veth1", "aa:aa:aa:aa:aa:01", addresses=("10.0.2.1",)),
}
FROM_NS2 = {**PROBE, "ip.src": "10.0.2.99", "ip.dst": "10.0.1.99", "l4.sport": 40000}
INTO_NS0 = (Hop("net_dev_xmit", "eth0", "ns2"), Hop("netif_receive_skb", "veth1", "ns0"))
THROUGH_NS0 = (*INTO_NS0, Hop("net_dev_xmit", "veth0", "ns0"),
               Hop("netif_receive_skb", "eth0", "ns1"))  # fmt: skip


def _ns0(ip_forward: str = "0", veth0: str = "1", veth1: str = "1", **more: Any) -> HostFacts:
    sysctls = {"net.ipv4.ip_forward": ip_forward, "net.ipv4.conf.veth0.forwarding": veth0,
               "net.ipv4.conf.veth1.forwarding": veth1}  # fmt: skip
    return HostFacts("ns0", sysctls, NS0_LINKS, ("10.0.1.1", "10.0.2.1"), **more)


def _texts(found: Findings) -> list[str]:
    return [c.text for c in rank(found)]


def test_forwarding_is_the_input_interfaces_own_switch() -> None:
    drop = _drop("IP_INADDRERRORS", "ns0", "veth1")
    for ip_forward in ("0", "1"):  # ip_forward says nothing once the interfaces differ
        hosts = {"ns0": _ns0(ip_forward, veth1="0")}
        found = Findings(FROM_NS2, "ns2:eth0", DropReport(True, (drop,), INTO_NS0), hosts=hosts)
        top = _top(found)
        assert top.text == (
            "forwarding disabled on ns0 for what arrives on veth1 "
            "(net.ipv4.conf.veth1.forwarding = 0)"
        )
        assert top.fix == (
            "in ns0: sysctl -w net.ipv4.conf.veth1.forwarding=1 (it is meant to route)"
        )
        assert not any("no router" in t for t in _texts(found))
    # no trace: the counter and the walk's input interface say it as well
    from netprobe.explain._facts import PathFacts
    from netprobe.explain._walk import Step

    walked = PathFacts((Step("ns0", "veth1", "forward"),), walked=True)
    moved = (Delta("ns0", "snmp", "IpInAddrErrors", 1),)
    found = Findings(FROM_NS2, "ns2:eth0", DropReport(False), deltas=moved,
                     hosts={"ns0": _ns0("1", veth1="0")}, path=walked)  # fmt: skip
    assert _top(found).text.startswith("forwarding disabled on ns0 for what arrives on veth1")


def test_a_router_the_probe_went_through_is_not_said_to_forward_nothing() -> None:
    got = Delivery(("ns1:eth0",), (), altered={"ns1:eth0": ("ip.src: expected 10.0.1.1",)},
                   rewrites={"ip.src": "10.0.1.1"}, dests=(("ns1", "eth0"),))  # fmt: skip
    found = Findings(FROM_NS2, "ns2:eth0", DropReport(True, (), THROUGH_NS0),
                     hosts={"ns0": _ns0("0")}, delivery=got)  # fmt: skip
    assert not any("forwarding disabled" in t for t in _texts(found))
    # the whole host off (ip_forward=0 sets every interface's switch): said so
    found = Findings(FROM_NS2, "ns2:eth0", DropReport(True, (), INTO_NS0),
                     hosts={"ns0": _ns0("0", "0", "0")})  # fmt: skip
    assert "forwarding disabled on ns0 (net.ipv4.ip_forward = 0)" in _texts(found)


def test_a_forwarding_drop_after_dnat_is_forwarding_not_a_missing_rewrite() -> None:
    probe = {**FROM_NS2, "ip.dst": "10.0.2.1", "l4.dport": 2000}
    got = Delivery(("ns1:eth0",), ("ns1:eth0",), rewrites={"ip.dst": "10.0.1.99"},
                   dests=(("ns1", "eth0"),))  # fmt: skip
    drop = Drop("IP_INADDRERRORS", "ip_error+0x94/0x220", "ns0", "veth1", 2048, "ab")
    nat = ("ip daddr 10.0.2.1 udp dport 2000 dnat to 10.0.1.99:2000",)
    found = Findings(probe, "ns2:eth0", DropReport(True, (drop,), INTO_NS0),
                     hosts={"ns0": _ns0(veth1="0", nat=nat)}, delivery=got)  # fmt: skip
    causes = rank(found)
    assert causes[0].text.startswith("forwarding disabled on ns0 for what arrives on veth1")
    assert any("a DNAT rewrite sent the probe on" in e for e in causes[0].evidence)
    assert not any(c.text.startswith("no DNAT") for c in causes)
    # a drop of the local stack still says the rewrite did not happen
    kept = Drop("NO_SOCKET", "__udp4_lib_rcv+0x4bc/0xd00", "ns0", "veth1", 2048, "ab")
    found = dataclasses.replace(found, drops=DropReport(True, (kept,), INTO_NS0))
    assert _top(found).text.startswith("no DNAT on ns0: the probe to 10.0.2.1:2000")


def test_no_socket_names_the_destination_after_dnat() -> None:
    probe = {**FROM_NS2, "ip.dst": "10.0.2.1", "l4.dport": 2000}
    entry = ("ipv4 2 udp 17 29 src=10.0.2.99 dst=10.0.2.1 sport=40000 dport=2000 [UNREPLIED] "
             "src=10.0.1.99 dst=10.0.2.99 sport=2001 dport=40000 mark=0 zone=0 use=2")
    other = entry.replace("sport=40000", "sport=40001").replace("sport=2001", "sport=2002")
    hosts = {"ns0": _ns0(conntrack=(other, entry)), "ns1": HostFacts("ns1")}
    drop = _drop("NO_SOCKET", "ns1", "eth0")
    found = Findings(probe, "ns2:eth0", DropReport(True, (drop,), THROUGH_NS0), hosts=hosts)
    top = _top(found)
    assert top.text == (
        "NO_SOCKET on ns1: nothing listens on udp port 2001 of 10.0.1.99 "
        "(ns0's DNAT rewrote 10.0.2.1:2000 to it)"
    )
    assert f"conntrack on ns0: {entry}" in top.evidence


def test_no_socket_at_the_expected_end_or_for_an_answer_is_no_cause() -> None:
    got = Delivery(("ns1:eth0",), (), altered={"ns1:eth0": ("ip.src: expected 10.0.1.1",)},
                   rewrites={"ip.src": "10.0.1.1"}, dests=(("ns1", "eth0"),))  # fmt: skip
    closed = _drop("NO_SOCKET", "ns1", "eth0")  # the discard port: nobody asked for a listener
    moved = (Delta("ns1", "snmp", "UdpNoPorts", 1),)
    found = Findings(FROM_NS2, "ns2:eth0", DropReport(True, (closed,), THROUGH_NS0),
                     deltas=moved, hosts={"ns0": _ns0()}, delivery=got)  # fmt: skip
    assert not any("NO_SOCKET" in t for t in _texts(found))
    assert _top(found).text.startswith("the probe was delivered, not dropped")
    # an echo reply the sender's stack drops (no ping socket takes it): not the probe's death
    echo = {**FROM_NS2, "ip.proto": 1, "icmp.type": 8}
    reply = Drop("NO_SOCKET", "ping_rcv+0xb3/0xe0", "ns2", "eth0", 2048, "cd")
    found = Findings(echo, "ns2:eth0", DropReport(True, (reply,), THROUGH_NS0),
                     hosts={"ns0": _ns0()}, sender=("ns2", "eth0"))  # fmt: skip
    assert not any("NO_SOCKET" in t for t in _texts(found))
    loose = dataclasses.replace(reply, host=None, device=None)
    found = dataclasses.replace(found, drops=DropReport(True, (), THROUGH_NS0, (loose,)))
    assert not any("NO_SOCKET" in t for t in _texts(found))
    # where the answer was the point (a reply expected), no listener is the cause
    asked = Delivery(("ns2:eth0",), ("ns2:eth0",), reply=True, dests=(("ns2", "eth0"),))
    found = Findings(FROM_NS2, "ns2:eth0", DropReport(True, (closed,), THROUGH_NS0),
                     hosts={"ns0": _ns0()}, delivery=asked, sender=("ns2", "eth0"))  # fmt: skip
    assert _top(found).text == "NO_SOCKET on ns1: nothing listens on udp port 9 of 10.0.1.99"


def test_other_traffics_drops_are_no_lead_once_the_probe_arrived() -> None:
    """The trace sees the whole machine: when the probe was followed to the host holding
    its destination, a drop of another buffer in the window is someone else's."""
    elsewhere = Drop("IP_CSUM", "ip_rcv_core+0x22c/0x350", None, None, 2048, "ef")
    hosts = {"ns0": _ns0(), "ns1": HostFacts("ns1", addresses=("10.0.1.99",))}
    found = Findings(FROM_NS2, "ns2:eth0", DropReport(True, (), THROUGH_NS0, (elsewhere,)),
                     hosts=hosts)  # fmt: skip
    assert not any("not attributed" in t for t in _texts(found))
    lost = dataclasses.replace(found, drops=DropReport(True, (), INTO_NS0, (elsewhere,)))
    assert any("not attributed" in t for t in _texts(lost))
