"""Policy lines as people write them: ICMP, interfaces, conntrack state, NAT. Each
sabotage fails naming the rule that decided, on the lab and on the same network made by
hand and adopted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.filter_net import firewall
from support.handmade_net import HandMade
from support.paths import EXAMPLES
from support.results import failed_steps

import netprobe
from netprobe.check import Result, Status, run_check

pytestmark = pytest.mark.root

SECURE_HOST = (EXAMPLES / "filter-secure-host.nft").read_text()
NO_ICMP = SECURE_HOST.replace("        meta l4proto { icmp, ipv6-icmp } accept\n        ip saddr",
                              "        ip protocol icmp drop\n"
                              "        meta l4proto { icmp, ipv6-icmp } accept\n        ip saddr")
# The classic: the web server behind fw is published on 8080 (DNAT to :80), but the
# forward rule names 8080, which forward never sees: DNAT rewrote it at prerouting.
DNAT = SECURE_HOST.replace(
    '        iifname "eth0" oifname "eth1" accept\n',
    '        iifname "eth0" oifname "eth1" accept\n        tcp dport 8080 accept\n') + """
table ip publish {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "eth1" tcp dport 8080 dnat to 10.0.0.10:80
    }
}
"""
PING = "- {proto: icmp, in: eth0, expect: accept}\n"
PUBLISHED = ("- {proto: tcp, port: 8080, chain: forward, from: 198.51.100.0/24, "
             "to: 192.0.2.1/32, dnat: '10.0.0.10:80', expect: accept}\n")


def _lab(tmp_path: Path, rules: str, policy: str) -> Result:
    (tmp_path / "rules.nft").write_text(rules)
    (tmp_path / "policy.yml").write_text(policy)
    return run_check("filter", ruleset=str(tmp_path / "rules.nft"),
                     policy=str(tmp_path / "policy.yml"))


def _by_hand(tmp_path: Path, rules: str, policy: str) -> Result:
    (tmp_path / "policy.yml").write_text(policy)
    with HandMade() as net:
        firewall(net, rules)
        with netprobe.build(net.spec("filter-lines")) as topo:
            return run_check("filter", topo, policy=str(tmp_path / "policy.yml"))


RUNS: list[Callable[[Path, str, str], Result]] = [_lab, _by_hand]


@pytest.fixture(params=RUNS, ids=["lab", "by-hand"])
def run(request: pytest.FixtureRequest) -> Iterator[Callable[[Path, str, str], Result]]:
    yield request.param


def test_a_blocked_echo_names_the_drop_rule(run: Callable[..., Result], tmp_path: Path) -> None:
    result = run(tmp_path, NO_ICMP, PING)
    assert result.status is Status.FAIL, result.evidence()
    assert failed_steps(result) == ["line 1: INPUT icmp echo-request in eth0 IPv4: expect accept"]
    assert result.diagnosis == (
        "policy line 1 (INPUT icmp echo-request in eth0: accept) is dropped over IPv4 "
        "(expected accept): by `ip protocol icmp drop` (inet filter input)")


def test_a_forward_accept_of_the_public_port_never_matches_after_dnat(
        run: Callable[..., Result], tmp_path: Path) -> None:
    result = run(tmp_path, DNAT, PUBLISHED)
    assert result.status is Status.FAIL, result.evidence()
    assert len(failed_steps(result)) == 1
    assert result.diagnosis is not None
    assert result.diagnosis.startswith(
        "policy line 1 (FORWARD tcp/8080 from 198.51.100.0/24 to 192.0.2.1/32 dnat "
        "10.0.0.10:80: accept) is dropped over IPv4 (expected accept): by the policy of "
        "inet filter forward (drop), after `iifname \"eth1\" tcp dport 8080 dnat to "
        "10.0.0.10:80` (ip publish prerouting) had rewritten its destination")


def test_a_forward_accept_of_the_dnat_target_passes_with_the_rewrite_shown(
        tmp_path: Path) -> None:
    result = _lab(tmp_path, DNAT.replace("tcp dport 8080 accept", "tcp dport 80 accept"),
                  PUBLISHED)
    assert result.status is Status.PASS, result.evidence()
    assert "rewritten on the way: dst 192.0.2.1 → 10.0.0.10, dport 8080 → 80" in \
        result.steps[-1].detail


def test_a_masquerade_other_than_the_stated_snat_fails_naming_what_was_seen(
        tmp_path: Path) -> None:
    result = _lab(tmp_path, SECURE_HOST,
                  "- {proto: tcp, port: 80, chain: forward, from: eth0, out: eth1, "
                  "snat: 192.0.2.99, expect: accept}\n")
    assert result.status is Status.FAIL
    assert result.diagnosis is not None and "came out at router:eth0 as src 10.0.0.10 → " \
        "192.0.2.1, not as the line states" in result.diagnosis


def test_replies_come_back_only_through_the_established_rule(tmp_path: Path) -> None:
    policy = ("- {proto: tcp, port: 443, state: established, from: 198.51.100.0/24, "
              "expect: accept}\n"
              "- {proto: udp, port: 53, state: established, in: eth0, expect: accept}\n"
              "- {proto: icmp, type: echo-reply, state: established, in: eth0, expect: accept}\n"
              "- {proto: icmp, type: echo-reply, in: eth0, expect: drop}\n")
    assert _lab(tmp_path, SECURE_HOST, policy).status is Status.PASS
    result = _lab(tmp_path, SECURE_HOST.replace("        ct state established,related accept\n",
                                                "", 1), policy)
    assert result.status is Status.FAIL
    assert [n.split(":")[0] for n in failed_steps(result)] == ["line 1", "line 2", "line 2"]
    assert "by the policy of inet filter input (drop)" in (result.diagnosis or "")


def test_any_protocol_and_loopback_lines(tmp_path: Path) -> None:
    policy = ("- {proto: any, in: eth0, expect: drop}\n"
              "- {proto: tcp, port: 23, from: lo, expect: accept}\n"
              "- {proto: any, chain: forward, in: eth0, out: eth1, expect: accept}\n")
    result = _lab(tmp_path, SECURE_HOST, policy)
    assert [s.status for s in result.steps[1:]] == [Status.PASS] * 6, result.evidence()
    assert "line 2: INPUT tcp/23 in lo IPv6: expect accept" in [s.name for s in result.steps]
    # IPv4 lo: the host's own socket sends it to itself (a crafted frame there is refused)
    assert "sent from fw's own socket to 127.0.0.1 by lo" in result.steps[3].detail
    result = _lab(tmp_path, SECURE_HOST.replace('iifname "lo" accept', "ip daddr 127.0.0.1 "
                                                "tcp dport 23 drop\n        iifname \"lo\" "
                                                "accept"), policy)
    assert failed_steps(result) == ["line 2: INPUT tcp/23 in lo IPv4: expect accept"]
    assert "`ip daddr 127.0.0.1 tcp dport 23 drop` (inet filter input)" in (
        result.diagnosis or ""), result.evidence()


def test_an_interface_the_host_lacks_is_bad_input_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "policy.yml").write_text("- {proto: tcp, port: 22, expect: accept}\n"
                                         "- {proto: tcp, port: 22, in: wlan0, expect: drop}\n")
    result = run_check("filter", policy=str(tmp_path / "policy.yml"))
    assert result.status is Status.ERROR
    assert "policy.yml:2: fw has no interface 'wlan0'" in result.summary


def test_a_loopback_drop_is_decided_by_a_mark_sent_into_lo(tmp_path: Path) -> None:
    """No drop on silence: the IPv6 probe from lo (a crafted frame) is closed by a frame
    of a local ethertype sent into lo behind it; opened, both families FAIL."""
    policy = "- {proto: tcp, port: 24, from: lo, expect: drop}\n"
    closed = SECURE_HOST.replace('iifname "lo" accept',
                                 'tcp dport 24 drop\n        iifname "lo" accept')
    result = _lab(tmp_path, closed, policy)
    assert result.status is Status.PASS, result.evidence()
    six = next(s for s in result.steps if s.name.endswith("in lo IPv6: expect drop"))
    assert "decided by a barrier: a frame sent behind it arrived" in six.detail, six.detail
    result = _lab(tmp_path, SECURE_HOST, policy)
    assert failed_steps(result) == ["line 1: INPUT tcp/24 in lo IPv4: expect drop",
                                    "line 1: INPUT tcp/24 in lo IPv6: expect drop"]
