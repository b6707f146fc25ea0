"""The filter check on filter.yaml's network made by hand (plain `ip`, `sysctl`, and the
ruleset loaded with `nft -f` or `iptables-restore`) and adopted: the ruleset that is there
is the one probed. Healthy it passes; each sabotage of test_check_filter.py fails with the
same diagnosis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.filter_net import firewall
from support.frontends import SHADOWED_SSH, WRONG_INTERFACE, Frontend, firewalld, ufw
from support.handmade_net import HandMade
from support.paths import EXAMPLES
from support.results import failed_steps

import netprobe
from netprobe.check import Result, Status, run_check

pytestmark = pytest.mark.root

SECURE_HOST = (EXAMPLES / "filter-secure-host.nft").read_text()


@pytest.fixture
def hand() -> Iterator[HandMade]:
    with HandMade() as net:
        yield net


def _run(net: HandMade, **params: str) -> Result:
    with netprobe.build(net.spec("filter-by-hand")) as topo:
        return run_check("filter", topo, **params)


def test_filter_passes_on_a_firewall_made_by_hand(hand: HandMade) -> None:
    firewall(hand)
    result = _run(hand)
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 23 and result.not_run == []


def test_a_shadowing_drop_loaded_by_hand_is_named(hand: HandMade) -> None:
    firewall(hand, SECURE_HOST.replace("        ip saddr 10.0.0.0/8 tcp dport 22 accept",
                                       "        tcp dport 22 drop\n"
                                       "        ip saddr 10.0.0.0/8 tcp dport 22 accept"))
    result = _run(hand)
    assert result.status is Status.FAIL
    assert failed_steps(result) == ["line 13: INPUT tcp/22 from 10.0.0.0/8 IPv4: expect accept",
                                    "line 13: INPUT tcp/22 from fd00::/8 IPv6: expect accept"]
    assert result.diagnosis == (
        "policy line 13 (INPUT tcp/22 from 10.0.0.0/8, fd00::/8: accept) is shadowed over "
        "IPv4, IPv6: `tcp dport 22 drop` (inet filter input) drops it before "
        "`ip saddr 10.0.0.0/8 tcp dport 22 accept` / `ip6 saddr fd00::/8 tcp dport 22 accept`, "
        "which would accept it, is reached")


def test_an_accepting_forward_policy_set_by_hand_is_named(hand: HandMade) -> None:
    firewall(hand, SECURE_HOST.replace("hook forward priority filter; policy drop;",
                                       "hook forward priority filter; policy accept;"))
    result = _run(hand)
    assert result.status is Status.FAIL
    assert [n.split(" from")[0] for n in failed_steps(result)] == ["line 18: FORWARD tcp/22"] * 2
    assert result.diagnosis is not None and "is accepted over IPv4, IPv6 (expected drop): by " \
        "the policy of inet filter forward (accept)" in result.diagnosis


def _ufw(net: HandMade, fixture: Frontend) -> str:
    """The firewall with the rules real ufw wrote (captures/firewalls/) restored by hand;
    the policy file's path."""
    firewall(net, None)
    for path in fixture.files:
        net.iptables_restore("fw", path.read_text(), six=path.suffix == ".ip6tables")
    return str(fixture.policy)


def test_filter_passes_on_ufw_rules_restored_by_hand(hand: HandMade) -> None:
    result = _run(hand, policy=_ufw(hand, ufw("ufw-ssh")))
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 16


def test_a_shadowed_ufw_allow_restored_by_hand_is_named(hand: HandMade) -> None:
    result = _run(hand, policy=_ufw(hand, SHADOWED_SSH))
    assert failed_steps(result) == ["line 3: INPUT tcp/22 IPv4: expect accept"]
    assert result.diagnosis == (
        "policy line 3 (INPUT tcp/22: accept) is shadowed over IPv4: `ip saddr 10.0.0.0/8 "
        "tcp dport 22 drop` (ip filter ufw-user-input) drops it before `tcp dport 22 "
        "accept`, which would accept it, is reached")


def test_ipv6_left_unfiltered_by_hand_is_named(hand: HandMade) -> None:
    result = _run(hand, policy=_ufw(hand, ufw("ufw-ssh", v6=False)))
    assert result.status is Status.FAIL
    assert all(name.endswith("IPv6: expect drop") for name in failed_steps(result))
    assert result.diagnosis is not None
    assert "policy line 4 (INPUT tcp/23: drop) is accepted over IPv6 (expected drop): no " \
           "chain of fw's ruleset filters IPv6 at the input hook" in result.diagnosis


def test_filter_will_not_replace_the_ruleset_of_an_adopted_host(hand: HandMade) -> None:
    firewall(hand)
    result = _run(hand, ruleset=str(EXAMPLES / "filter-secure-host.nft"))
    assert result.status is Status.ERROR
    assert "fw is not netprobe's: filter does not replace its ruleset" in result.summary
    assert "tcp dport 22" in hand.exec("fw", "nft", "list", "ruleset")  # left as it was


def _firewalld(net: HandMade, fixture: Frontend) -> str:
    """The firewall with the ruleset real firewalld wrote, loaded by hand with `nft -f`."""
    firewall(net, None)
    for path in fixture.files:
        net.nft("fw", path.read_text())
    return str(fixture.policy)


def test_firewalld_zones_loaded_by_hand_pass(hand: HandMade) -> None:
    result = _run(hand, policy=_firewalld(hand, firewalld("firewalld-zones")))
    assert result.status is Status.PASS, result.evidence()


def test_a_firewalld_zone_bound_to_the_wrong_interface_by_hand_is_named(hand: HandMade) -> None:
    result = _run(hand, policy=_firewalld(hand, WRONG_INTERFACE))
    assert failed_steps(result)[:2] == [
        "line 4: INPUT tcp/8080 from 10.0.0.0/8 IPv4: expect accept",
        "line 4: INPUT tcp/8080 from fd00::/8 IPv6: expect accept"]
    assert result.diagnosis is not None and result.diagnosis.startswith(
        "policy line 4 (INPUT tcp/8080 from 10.0.0.0/8, fd00::/8: accept) is dropped over "
        "IPv4, IPv6 (expected accept): by `reject with icmpx admin-prohibited` "
        "(inet firewalld filter_IN_public)")


@pytest.mark.parametrize(("hop", "family"), [("192.0.2.2", 4), ("2001:db8:2::2", 6)])
def test_an_adopted_host_learns_its_next_hop_from_the_hop_itself(
        hand: HandMade, hop: str, family: int) -> None:
    """Priming a forward probe's next hop writes nothing into a host netprobe does not
    own: the next hop asks for the host's address (ARP, or a solicitation carrying its
    MAC) and the host notes it, as real traffic would have it."""
    from netprobe.library.filter.net import Planner

    firewall(hand)
    hand.ip("fw", "neigh", "flush", "dev", "eth1")
    with netprobe.build(hand.spec("filter-prime")) as topo:
        planner = Planner(topo, "fw", "client", "outside")
        ran: list[list[str]] = []
        run = topo.run

        def recorded(host: str, argv: list[str], **options: Any) -> Any:
            ran.append(list(argv))
            return run(host, argv, **options)

        topo.run = recorded  # type: ignore[method-assign]
        dst = "198.51.100.10" if family == 4 else "2001:db8:100::10"
        port, macs = planner.hop("fw", dst)
        assert not [n for n in topo.live("fw").neighbours if n.ip == hop and n.mac]
        assert planner.prime(port, dst, macs[1]) and planner.primed(port, dst)
        entry = next(n for n in topo.live("fw").neighbours if n.ip == hop)
        # learned from the asker: STALE, or DELAY once fw's answer used it
        assert entry.mac == macs[1] and entry.state.lower() in ("stale", "delay"), entry
        assert not [argv for argv in ran if argv[:2] == ["ip", "neigh"]], ran
