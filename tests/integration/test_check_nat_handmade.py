"""The nat check on the same gateway made by hand (plain `ip`, `nft`, `sysctl`) and adopted:
it passes when healthy, and each sabotage of test_check_nat.py, made by hand too, fails
with the same diagnosis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.handmade_net import HandMade
from support.results import failed_steps

import netprobe
from netprobe.check import Result, Status, reference_path, run_check

pytestmark = pytest.mark.root

MASQUERADE = reference_path("nat-gateway.nft").read_text()
NO_VM = {"vm": ""}  # a TAP made by hand has no descriptor netprobe holds


def nat_gateway(net: HandMade, rules: str | None = MASQUERADE) -> None:
    """nat-gateway.yaml without its TAP: vm1 ── vmbr1 [pve] uplink ═══ internet."""
    for host in ("vm1", "pve", "internet"):
        net.ns(host)
    net.veth("vm1", "eth0", "pve", "veth101i0")
    net.veth("pve", "uplink", "internet", "eth0")
    net.ip("vm1", "link", "set", "eth0", "address", "02:10:10:10:00:65")
    net.addr("vm1", "eth0", "10.10.10.101/24")
    net.route("vm1", "default", "via", "10.10.10.1")
    net.bridge("pve", "vmbr1", "veth101i0")
    net.addr("pve", "vmbr1", "10.10.10.1/24")
    net.addr("pve", "uplink", "203.0.113.10/24")
    net.route("pve", "default", "via", "203.0.113.1")
    net.sysctl("pve", "net.ipv4.ip_forward", "1")
    if rules is not None:
        net.nft("pve", rules)
    net.addr("internet", "eth0", "203.0.113.1/24")


@pytest.fixture
def hand() -> Iterator[HandMade]:
    with HandMade() as net:
        yield net


def _run(net: HandMade, **params: str) -> Result:
    with netprobe.build(net.spec("nat-by-hand")) as topo:
        return run_check("nat", topo, **{**NO_VM, **params})


def test_nat_passes_on_a_gateway_made_by_hand(hand: HandMade) -> None:
    nat_gateway(hand)
    result = _run(hand)
    assert result.status is Status.PASS, result.evidence()
    assert [s.name for s in result.steps][-1] == (
        "203.0.113.1 → 203.0.113.10:2222/tcp: forwarded to 10.10.10.101:22")


def test_nat_by_hand_without_any_ruleset_says_no_masquerade_rule(hand: HandMade) -> None:
    nat_gateway(hand, None)
    result = _run(hand)
    assert result.status is Status.FAIL
    assert failed_steps(result)[0] == (
        "vm1:eth0 → 203.0.113.1: new flow leaves with source 203.0.113.10")
    assert result.diagnosis is not None and result.diagnosis.startswith(
        "no masquerade/SNAT rule for 10.10.10.0/24 out of uplink on pve; no DNAT rule for tcp "
        "dport 2222 on pve")


def test_nat_by_hand_with_the_nat_table_flushed(hand: HandMade) -> None:
    nat_gateway(hand)
    hand.exec("pve", "nft", "flush", "table", "ip", "nat")
    result = _run(hand)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None
    assert "no masquerade/SNAT rule for 10.10.10.0/24 out of uplink" in result.diagnosis


def test_nat_by_hand_with_ip_forward_off_says_so(hand: HandMade) -> None:
    nat_gateway(hand)
    hand.sysctl("pve", "net.ipv4.ip_forward", "0")
    result = _run(hand)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None and result.diagnosis.startswith("ip_forward is 0 on pve")
    assert "never reached internet:eth0" in result.summary


@pytest.mark.parametrize("oifname", ["vmbr1", "eth9"])
def test_nat_by_hand_with_masquerade_on_the_wrong_interface(hand: HandMade, oifname: str) -> None:
    nat_gateway(hand, MASQUERADE.replace('oifname "uplink"', f'oifname "{oifname}"'))
    result = _run(hand)
    assert result.status is Status.FAIL
    assert result.diagnosis == (
        f'the masquerade/SNAT rule for 10.10.10.0/24 on pve matches oifname "{oifname}", but '
        "traffic to 203.0.113.1 leaves through uplink: the rule never applies")


PORT_FORWARD = """
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "uplink" tcp dport 8080 dnat to %s
    }
}
"""


def test_nat_by_hand_port_forward_that_publishes_one(hand: HandMade) -> None:
    nat_gateway(hand, MASQUERADE + PORT_FORWARD % "10.10.10.101:80")
    result = _run(hand, forward="8080->vm1:eth0:80")
    assert result.status is Status.PASS, result.evidence()


def test_nat_by_hand_port_forward_to_the_wrong_port_is_named(hand: HandMade) -> None:
    nat_gateway(hand, MASQUERADE + PORT_FORWARD % "10.10.10.101:81")
    result = _run(hand, forward="8080->vm1:eth0:80")
    assert result.status is Status.FAIL
    assert failed_steps(result) == [
        "203.0.113.1 → 203.0.113.10:8080/tcp: forwarded to 10.10.10.101:80"]
    assert result.diagnosis == ("the DNAT rule for tcp dport 8080 on pve sends it to "
                                "10.10.10.101:81, not 10.10.10.101:80")


def test_nat_by_hand_port_forward_missing_is_named(hand: HandMade) -> None:
    nat_gateway(hand)
    result = _run(hand, forward="8080->vm1:eth0:80")
    assert result.status is Status.FAIL
    assert result.diagnosis is not None
    assert result.diagnosis.startswith("no DNAT rule for tcp dport 8080 on pve")
