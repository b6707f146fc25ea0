"""nft JSON → what a probe must be: the rules reached from the filter hooks (through jumps,
with the jumps' matches), and the reason when no probe can be built."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

import pytest

from netprobe.library.filter._covers import covers
from netprobe.library.filter.rules import Unprobeable, filter_rules, rule_texts, want


def _m(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _pl(proto: str, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": proto, "field": field}}


def _listing(*rules: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    chains = [
        {"chain": {"family": "inet", "table": "t", "name": "input", "type": "filter",
                   "hook": "input", "prio": 0, "policy": "drop"}},
        {"chain": {"family": "inet", "table": "t", "name": "sub"}},
    ]
    return {"nftables": chains + [
        {"rule": {"family": "inet", "table": "t", "chain": chain, "handle": i + 1, "expr": e}}
        for i, (chain, e) in enumerate(rules)]}


def test_rules_are_walked_through_jumps_with_the_jumps_matches() -> None:
    rules = filter_rules(_listing(
        ("input", [_m(_pl("ip", "saddr"), {"prefix": {"addr": "10.0.0.0", "len": 8}}),
                   {"jump": {"target": "sub"}}]),
        ("sub", [_m(_pl("tcp", "dport"), {"set": [22, {"range": [80, 90]}]}), {"accept": None}]),
        ("input", [{"counter": None}, {"drop": None}]),
    ))
    assert [(r.chain, r.handle, r.order, r.verdict) for r in rules] == [
        ("input", 1, 0, "jump sub"), ("sub", 2, 1, "accept"), ("input", 3, 2, "drop")]
    assert rules[-1].last and not rules[1].last
    found = want(rules[1])
    assert found.families == {4} and found.proto == "tcp"
    assert found.saddr == [([ipaddress.ip_network("10.0.0.0/8")], False)]
    assert found.port("dport", 9) == 22


def test_negations_ranges_states_and_icmp() -> None:
    rules = filter_rules(_listing(
        ("input", [_m(_pl("tcp", "dport"), 22, "!="), _m({"ct": {"key": "state"}}, "new", "in"),
                   {"accept": None}]),
        ("input", [_m({"meta": {"key": "l4proto"}}, "ipv6-icmp"),
                   _m(_pl("icmpv6", "type"), "echo-request"), {"accept": None}]),
        ("input", [_m({"ct": {"key": "state"}}, ["established", "related"], "in"),
                   {"accept": None}]),
        ("input", [_m(_pl("udp", "dport"), 1024, "<"), {"drop": None}]),
    ))
    first, icmp, established, low = (want(r) for r in rules)
    assert first.port("dport", 9) == 9 and first.port("dport", 22) == 23
    assert first.state == "new"
    assert icmp.proto == "icmp" and icmp.families == {6}
    assert established.state == "established"
    assert low.port("dport", 2000) == 1 and low.port("dport", 9) == 9


@pytest.mark.parametrize(("expr", "reason"), [
    (_m({"meta": {"key": "mark"}}, 1), "matches meta mark"),
    (_m(_pl("ip", "saddr"), "@allowed"), "matches the named set @allowed"),
    ({"xt": {"type": "match", "name": "conntrack"}}, "matches xt conntrack"),
    ({"limit": {"rate": 5, "per": "second"}}, "has a limit statement"),
])
def test_what_cannot_be_probed_says_why(expr: dict[str, Any], reason: str) -> None:
    (rule,) = filter_rules(_listing(("input", [expr, {"accept": None}])))
    with pytest.raises(Unprobeable, match=reason):
        want(rule)


def test_icmp_types_and_hop_limits_become_the_message_to_build() -> None:
    rules = filter_rules(_listing(
        ("input", [_m(_pl("icmp", "type"), "destination-unreachable"), {"accept": None}]),
        ("input", [_m(_pl("icmpv6", "type"), "nd-neighbor-solicit"),
                   _m(_pl("ip6", "hoplimit"), 255), {"accept": None}]),
        ("input", [_m(_pl("icmpv6", "type"), ["echo-request", "nd-redirect"], "!="),
                   {"accept": None}]),
        ("input", [_m(_pl("icmp", "type"), "source-quench"), {"accept": None}]),
    ))
    unreach, solicit, other, quench = (want(r) for r in rules)
    assert unreach.families == {4} and unreach.icmp_type(4) == 3
    assert solicit.families == {6} and solicit.icmp_type(6) == 135 and solicit.hops(64) == 255
    assert other.icmp_type(6) == 129  # the first built type the negation leaves
    with pytest.raises(Unprobeable, match="matches icmp type source-quench"):
        quench.icmp_type(4)


def test_the_conntrack_state_of_each_icmp_message() -> None:
    from netprobe.library.filter import _icmp

    assert [_icmp.state(k, 4) for k in (8, 0, 3, 11, 12)] == [
        "new", "established", "related", "related", "related"]
    assert [_icmp.state(k, 6) for k in (128, 129, 1, 2, 135, 136, 133)] == [
        "new", "established", "related", "related", "untracked", "untracked", "untracked"]
    (rule,) = filter_rules(_listing(("input", [
        _m({"ct": {"key": "state"}}, "new"), _m(_pl("icmpv6", "type"), "nd-neighbor-solicit"),
        {"accept": None}])))
    with pytest.raises(Unprobeable, match="type 135 is untracked"):
        _icmp.kind_of(want(rule), 6)


def test_an_icmp_message_carries_its_identifier_in_bytes_4_5_checksummed() -> None:
    from netprobe.library.filter import _icmp
    from netprobe.traffic import checksum

    macs = ("02:00:00:00:00:01", "02:00:00:00:00:02")
    for family, src, dst, kind in ((4, "10.0.0.10", "10.0.0.1", 3),
                                   (6, "fd00::10", "fd00::1", 135),
                                   (6, "fd00::10", "fd00::1", 2)):
        data, nonce = _icmp.message(kind, family, macs, src, dst, 4242, 255)
        at = _icmp.transport_at(data)
        assert data[at] == kind and data[at + 4:at + 6] == (4242).to_bytes(2, "big")
        assert nonce in data
        pseudo = b"" if family == 4 else data[22:54] + struct.pack("!IxxxB", len(data) - at, 58)
        assert checksum(pseudo + data[at:]) == 0  # the checksum holds


def test_chains_not_at_a_filter_hook_are_left_out() -> None:
    listing = _listing(("input", [{"accept": None}]))
    listing["nftables"][0]["chain"].update(type="nat", hook="prerouting")
    assert filter_rules(listing) == []


def test_rule_texts_come_from_the_listing_with_handles() -> None:
    text = ("table inet filter { # handle 1\n\tchain input { # handle 1\n"
            "\t\ttype filter hook input priority filter; policy drop;\n"
            "\t\ttcp dport 22 counter packets 3 bytes 180 accept # handle 4\n\t}\n}\n")
    assert rule_texts(text) == {("inet", "filter", "input", 4): "tcp dport 22 accept"}


def _want(*exprs: dict[str, Any], family: str = "inet") -> Any:
    listing = _listing(("input", [*exprs, {"accept": None}]))
    for item in listing["nftables"]:
        for kind in ("chain", "rule"):
            if kind in item:
                item[kind]["family"] = family
    return want(filter_rules(listing)[0])


_SADDR = _pl("ip", "saddr")
_NET8 = {"prefix": {"addr": "10.0.0.0", "len": 8}}
_SSH = _m(_pl("tcp", "dport"), 22)


def test_a_rule_covers_another_only_when_each_of_its_matches_is_implied() -> None:
    host, net, ssh = _want(_m(_SADDR, "10.0.0.5"), _SSH), _want(_m(_SADDR, _NET8), _SSH), \
        _want(_SSH)
    assert covers(ssh, net) and covers(net, host) and covers(ssh, ssh)
    assert not covers(host, net)  # one sample packet from 10.0.0.5 proves nothing of 10/8
    assert not covers(net, ssh) and not covers(ssh, _want(_m(_pl("tcp", "dport"), 23)))
    ports = _want(_m(_pl("tcp", "dport"), {"set": [22, {"range": [80, 90]}]}))
    assert covers(_want(_m(_pl("tcp", "dport"), {"range": [1, 100]})), ports)
    assert not covers(ssh, ports)
    # a negated test: covered by a positive one disjoint from it, never by nothing
    not_ssh = _want(_m(_pl("tcp", "dport"), 22, "!="))
    assert covers(not_ssh, _want(_m(_pl("tcp", "dport"), 80))) and not covers(not_ssh, ssh)
    assert not covers(not_ssh, _want(_m({"meta": {"key": "l4proto"}}, "tcp")))
    # families, states, interfaces (globs)
    assert covers(ssh, _want(_SSH, family="ip")) and not covers(_want(_SSH, family="ip"), ssh)
    new = _want(_m({"ct": {"key": "state"}}, "new", "in"), _SSH)
    assert covers(ssh, new) and not covers(new, ssh)
    eth = _want(_m({"meta": {"key": "iifname"}}, "eth*"), _SSH)
    eth0 = _want(_m({"meta": {"key": "iifname"}}, "eth0"), _SSH)
    assert covers(eth, eth0) and not covers(eth0, eth)


def test_covers_is_false_when_a_want_is_not_all_its_rule_matches() -> None:
    both = _want(_m({"meta": {"key": "l4proto"}}, {"set": ["tcp", "udp"]}))
    tcp = _want(_m({"meta": {"key": "l4proto"}}, "tcp"))
    assert both.lossy and not covers(tcp, both)  # the udp of `both` is not tcp
    counted = _want({"ct count": {"val": 3}}, _SSH)
    assert counted.lossy and not covers(counted, _want(_SSH))
    ping = _want(_m(_pl("icmp", "type"), "echo-request"))
    assert covers(ping, ping) and not covers(ping, _want(_m(_pl("icmp", "type"), 5)))


def test_verdict_maps_are_unprobeable_and_their_chains_walked() -> None:
    vmap = {"vmap": {"key": {"meta": {"key": "l4proto"}}, "data": {"set": [
        ["tcp", {"jump": {"target": "sub"}}], ["udp", {"goto": {"target": "sub"}}]]}}}
    states = {"vmap": {"key": {"ct": {"key": "state"}}, "data": {"set": [
        ["established", {"accept": None}], ["invalid", {"drop": None}]]}}}
    rules = filter_rules(_listing(("input", [states]), ("input", [vmap]),
                                  ("sub", [_SSH, {"accept": None}]), ("sub", [{"return": None}]),
                                  ("input", [{"drop": None}])))
    assert [(r.chain, r.handle, r.verdict) for r in rules] == [
        ("input", 1, "vmap"), ("input", 2, "vmap"), ("sub", 3, "accept"),
        ("sub", 4, "return"), ("input", 5, "drop")]  # sub once, though two entries lead there
    assert rules[1].targets == ("sub",) and rules[3].ends_chain and not rules[2].ends_chain
    for rule, reason in ((rules[0], "has a verdict map"),
                         (rules[2], "is reached through a verdict map")):
        with pytest.raises(Unprobeable, match=reason):
            want(rule)
