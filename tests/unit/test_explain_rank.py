"""Ranking: the top cause names the fault, from drops read against the state, from
counters when there is no drop trace, and from state alone last."""

from __future__ import annotations

from typing import Any

from netprobe.explain.cause import Cause, Findings, HostFacts, LinkFacts, rank
from netprobe.explain.counters import Delta
from netprobe.explain.droptrace import Drop, DropReport, Hop
from netprobe.explain.nfttrace import NftReport, parse_monitor

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
