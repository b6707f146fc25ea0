"""Derived mode of the filter check: a ruleset given without a policy (or `derive` on a
host's ruleset as found) has every rule probed, one step per rule naming the rule that
decided its probe; a shadowed accept FAILs naming the rule that shadows it; a rule no
probe can be built for says why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.filter_net import firewall
from support.handmade_net import HandMade
from support.paths import EXAMPLES

import netprobe
from netprobe.check import Result, Status, Step, run_check

pytestmark = pytest.mark.root

SECURE_HOST = (EXAMPLES / "filter-secure-host.nft").read_text()
SHADOWED = SECURE_HOST.replace("        ip saddr 10.0.0.0/8 tcp dport 22 accept",
                               "        tcp dport 22 drop\n"
                               "        ip saddr 10.0.0.0/8 tcp dport 22 accept")
IPTABLES = """\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 22 -j ACCEPT
-A INPUT -m mark --mark 0x1 -j ACCEPT
-A INPUT -s 10.0.0.0/8 -p udp --dport 53 -j DROP
-A FORWARD -i eth0 -o eth1 -p tcp --dport 443 -j ACCEPT
COMMIT
"""


def _rows(result: Result) -> dict[str, Step]:
    return {s.name: s for s in result.steps if " rule " in s.name}


def _reference_rows(result: Result) -> None:
    rows = _rows(result)
    assert len(rows) == 10  # every rule of the three chains, one step each
    statuses = {name.split(": ", 1)[1]: s.status for name, s in rows.items()}
    assert set(statuses.values()) == {Status.PASS}, result.evidence()
    lo = next(s for n, s in rows.items() if n.endswith('iifname "lo" accept'))
    assert "from a socket of fw, by lo" in lo.detail  # out and back in by lo
    assert "reached, it decides (accept)" in lo.detail
    assert "reached the host's stack (it arrived)" in lo.detail
    drop25 = next(s for n, s in rows.items() if n.endswith("tcp dport 25 drop"))
    assert "decided by `tcp dport 25 drop`" in drop25.detail
    assert "never reached the host's egress (decided by a barrier" in drop25.detail


def test_derived_mode_probes_every_rule_of_the_reference_ruleset() -> None:
    result = run_check("filter", ruleset=str(EXAMPLES / "filter-secure-host.nft"))
    assert result.status is Status.PASS, result.evidence()
    _reference_rows(result)
    established = next(s for n, s in _rows(result).items() if n.startswith("FORWARD rule 11"))
    assert "the flow opened the other way first" in established.detail
    assert "reached, it decides (accept)" in established.detail


def test_a_shadowed_accept_fails_naming_the_rule_that_shadows_it(tmp_path: Path) -> None:
    (tmp_path / "shadowed.nft").write_text(SHADOWED)
    result = run_check("filter", ruleset=str(tmp_path / "shadowed.nft"))
    assert result.status is Status.FAIL
    failed = [n for n, s in _rows(result).items() if s.status is Status.FAIL]
    assert failed == ["INPUT rule 10 of inet filter input: ip saddr 10.0.0.0/8 tcp dport 22 "
                      "accept", "INPUT rule 11 of inet filter input: ip6 saddr fd00::/8 tcp "
                      "dport 22 accept"]
    assert result.diagnosis is not None
    assert ("`ip saddr 10.0.0.0/8 tcp dport 22 accept` (inet filter input, handle 10) is "
            "shadowed by `tcp dport 22 drop` (inet filter input, handle 9) (its accept never "
            "happens)") in result.diagnosis


def test_an_iptables_restore_file_is_probed_and_a_mark_is_not(tmp_path: Path) -> None:
    (tmp_path / "fw.rules").write_text(IPTABLES)
    result = run_check("filter", ruleset=str(tmp_path / "fw.rules"))
    rows = {n.split(": ", 1)[1]: s for n, s in _rows(result).items()}
    mark = rows["meta mark 0x00000001 accept"]
    assert mark.status is Status.SKIP and mark.detail == "not probed: matches meta mark"
    for text in ("tcp dport 22 accept", 'iifname "eth0" oifname "eth1" tcp dport 443 accept'):
        assert rows[text].status is Status.PASS, rows[text].detail
        assert "reached, it decides (accept)" in rows[text].detail
    drop = next(s for t, s in rows.items() if "udp dport 53" in t)
    assert drop.status is Status.PASS and "reached, it decides (drop)" in drop.detail
    assert result.status is Status.PASS  # the mark rule said so and skipped; nothing failed


@pytest.fixture
def hand() -> Iterator[HandMade]:
    with HandMade() as net:
        yield net


def _adopted(net: HandMade) -> Result:
    with netprobe.build(net.spec("filter-derive-by-hand")) as topo:
        return run_check("filter", topo, derive=True)


def test_derive_on_an_adopted_host_probes_the_ruleset_it_has(hand: HandMade) -> None:
    firewall(hand)
    result = _adopted(hand)
    assert result.status is Status.PASS, result.evidence()
    _reference_rows(result)


def test_a_shadowed_accept_loaded_by_hand_fails_with_derive(hand: HandMade) -> None:
    firewall(hand, SHADOWED)
    result = _adopted(hand)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None
    assert "is shadowed by `tcp dport 22 drop` (inet filter input, handle" in result.diagnosis
