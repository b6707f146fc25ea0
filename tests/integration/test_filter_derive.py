"""Derived mode of the filter check: a ruleset given without a policy (or `derive` on a
host's ruleset as found) has every rule probed, one step per rule naming the rule that
decided its probe; a shadowed accept FAILs naming the rule that shadows it; a rule no
probe can be built for says why."""

from __future__ import annotations

import re
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


def _derived(tmp_path: Path, text: str) -> Result:
    (tmp_path / "fw.nft").write_text(text)
    return run_check("filter", ruleset=str(tmp_path / "fw.nft"))


def _by_text(result: Result) -> dict[str, Step]:
    return {n.split(": ", 1)[1]: s for n, s in _rows(result).items()}


def _handle(result: Result, text: str) -> str:
    name = next(n for n in _rows(result) if text in n)
    return name.split(" rule ", 1)[1].split()[0]


def _input(*rules: str, more: str = "") -> str:
    body = "".join(f"        {r}\n" for r in rules)
    return ("table inet filter {\n" + more + "    chain input {\n"
            "        type filter hook input priority filter; policy drop;\n"
            f"{body}    }}\n}}\n")


def test_a_rule_shadowed_on_one_packet_only_is_not_failed(tmp_path: Path) -> None:
    """The client (10.0.0.10) is dropped by the first rule, but 10/8 holds other sources
    the accept lets in: its one probe proves nothing of them."""
    result = _derived(tmp_path, _input("ip saddr 10.0.0.10 tcp dport 22 drop",
                                       "ip saddr 10.0.0.0/8 tcp dport 22 accept"))
    accept = _by_text(result)["ip saddr 10.0.0.0/8 tcp dport 22 accept"]
    assert accept.status is Status.INCONCLUSIVE, accept.detail
    assert accept.detail.endswith(
        "its probes were all decided by `ip saddr 10.0.0.10 tcp dport 22 drop` (inet filter "
        f"input, handle {_handle(result, 'ip saddr 10.0.0.10')}), which does not match all "
        "it matches: a packet that reaches it may exist"), accept.detail
    assert result.status is not Status.FAIL
    assert result.diagnosis is not None and "for part of its traffic" in result.diagnosis


def test_rules_fixing_both_ports_are_probed_in_rounds_of_their_own(tmp_path: Path) -> None:
    """ufw's dhcp rule (udp sport 67 dport 68) on two ways and in both families: every
    probe has the same ports, each is traced and decided alone."""
    result = _derived(tmp_path, _input('iifname "eth0" udp sport 67 udp dport 68 accept',
                                       'iifname "eth1" udp sport 67 udp dport 68 drop'))
    rows = _by_text(result)
    accept = rows['iifname "eth0" udp sport 67 udp dport 68 accept']
    drop = rows['iifname "eth1" udp sport 67 udp dport 68 drop']
    assert accept.status is Status.PASS and drop.status is Status.PASS, result.evidence()
    assert "reached, it decides (accept)" in accept.detail
    assert "reached the host's stack" in accept.detail and "never reached" not in accept.detail
    assert "reached, it decides (drop)" in drop.detail and "never reached the host's stack" \
        in drop.detail
    assert "into fw:eth1" not in accept.detail and "into fw:eth0" not in drop.detail


def test_a_return_mid_chain_and_a_mark_set_are_not_without_effect(tmp_path: Path) -> None:
    result = _derived(tmp_path, _input(
        "meta mark set 0x1", "jump sub", "tcp dport 2222 accept",
        more="    chain sub {\n        tcp dport 2222 return\n        tcp dport 2222 drop\n"
             "        return\n    }\n"))
    rows = _by_text(result)
    assert rows["meta mark set 0x00000001"].status is Status.PASS
    assert rows["meta mark set 0x00000001"].detail.endswith("reached; sets meta mark")
    middle = rows["tcp dport 2222 return"]
    assert middle.status is Status.PASS and middle.detail.endswith("reached, verdict return")
    assert rows["tcp dport 2222 accept"].status is Status.PASS
    assert result.diagnosis is not None
    assert "`tcp dport 2222 return` (inet filter sub, handle" not in result.diagnosis
    assert "`meta mark set" not in result.diagnosis
    assert re.search(r"`return` \(inet filter sub, handle \d+\) has no effect",
                     result.diagnosis)  # the last rule of its chain


def test_verdict_maps_are_not_probed_and_their_chains_are_listed(tmp_path: Path) -> None:
    result = _derived(tmp_path, _input(
        "ct state vmap { established : accept, related : accept, invalid : drop }",
        "meta l4proto vmap { tcp : jump tcp_in }", "udp dport 53 accept",
        more="    chain tcp_in {\n        tcp dport 22 accept\n    }\n"))
    rows = _rows(result)
    maps = [s for n, s in rows.items() if "vmap" in n]
    assert len(maps) == 2 and all(s.status is Status.SKIP for s in maps)
    assert {s.detail for s in maps} == {"not probed: has a verdict map"}
    behind = next(s for n, s in rows.items() if " of inet filter tcp_in (from input): tcp "
                  "dport 22 accept" in n)
    assert behind.status is Status.SKIP
    assert behind.detail == "not probed: is reached through a verdict map"
    udp = _by_text(result)["udp dport 53 accept"]
    assert udp.status is Status.PASS and "reached, it decides (accept)" in udp.detail


def test_derive_on_a_host_not_in_the_topology_names_the_hosts() -> None:
    """A SpecError before anything runs in a host that is not there: an ERROR naming the
    hosts, no traceback (a bug's)."""
    result = run_check("filter", host="nohost", derive=True)
    assert result.status is Status.ERROR and result.traceback is None
    assert result.summary == ("no host 'nohost' to filter in topology 'filter' (hosts: client, "
                              "fw, router, outside)"), result.summary
