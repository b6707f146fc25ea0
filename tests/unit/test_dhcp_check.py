"""The dhcp check's pure logic: the answers it wants from its params, and which nft rules
it names as dropping DHCP (read from `nft -j list ruleset` as nft writes it)."""

from __future__ import annotations

import inspect
from typing import Any

from netprobe.library import _dhcp_faults as faults
from netprobe.library.dhcp import wanted
from netprobe.traffic import dhcp_client


def test_dns_servers_are_read_with_spaces_after_the_commas() -> None:
    want = wanted("10.0.0.5-10.0.0.9", "10.0.0.1", "192.168.10.1, 8.8.8.8 ,")
    assert want.dns == ("192.168.10.1", "8.8.8.8")


def _rule(family: str, chain: str, *exprs: dict[str, Any], handle: int = 1) -> dict[str, Any]:
    return {"rule": {"family": family, "table": "t", "chain": chain, "handle": handle,
                     "expr": [*exprs, {"drop": None}]}}


def _port(field: str, right: Any, op: str = "==", proto: str = "udp") -> dict[str, Any]:
    return {"match": {"op": op, "left": {"payload": {"protocol": proto, "field": field}},
                      "right": right}}


def _chain(family: str, name: str, hook: str | None) -> dict[str, Any]:
    chain: dict[str, Any] = {"family": family, "table": "t", "name": name}
    if hook:
        chain.update(type="filter", hook=hook, prio=0, policy="accept")
    return {"chain": chain}


NOT_DHCP = _rule("bridge", "fw", {"match": {"op": "==", "left": {"payload": {
    "protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.0.67.0", "len": 24}}}},
    _port("dport", 22, proto="tcp"), handle=2)


def test_only_rules_matching_a_dhcp_port_in_their_udp_port_match_are_named() -> None:
    items = [_chain("bridge", "fw", "forward"), NOT_DHCP,
             _rule("bridge", "fw", _port("dport", 68, op="!="), handle=3),
             _rule("bridge", "fw", _port("dport", {"set": [53, {"range": [60, 70]}]}), handle=4),
             _rule("bridge", "fw", _port("sport", {"set": ["bootpc"]}, proto="th"), handle=5),
             _rule("bridge", "fw", _port("dport", {"range": [100, 200]}), handle=6)]
    assert [r["handle"] for r in faults.dhcp_drops(items, bridge_nf=False)] == [4, 5]


def test_ip_and_inet_forward_chains_count_when_bridged_ipv4_goes_through_them() -> None:
    items = [_chain("inet", "fw", "forward"), _chain("inet", "in", "input"),
             _chain("inet", "sub", None),
             _rule("inet", "fw", _port("dport", 67), handle=7),
             _rule("inet", "in", _port("dport", 67), handle=8),
             _rule("inet", "sub", _port("dport", 67), handle=9)]
    assert faults.dhcp_drops(items, bridge_nf=False) == []
    assert [r["handle"] for r in faults.dhcp_drops(items, bridge_nf=True)] == [7, 9]


def test_the_client_message_builder_is_split_into_small_functions() -> None:
    lines, _ = inspect.getsourcelines(dhcp_client)
    assert len(lines) <= 40
