"""The filter check passes when a ruleset does what its policy says, on nft and on the
iptables rules real ufw wrote, and names the policy line (and the rules) when it does not."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.frontends import SHADOWED_SSH, ufw
from support.paths import EXAMPLES
from support.results import delivered_cause, failed_steps

from netprobe.check import Status, run_check

pytestmark = pytest.mark.root

SECURE_HOST = (EXAMPLES / "filter-secure-host.nft").read_text()
POLICY = str(EXAMPLES / "filter-policy.yml")  # a ruleset without a policy: derived mode


def test_filter_passes_on_its_reference_topology() -> None:
    result = run_check("filter")
    assert result.status is Status.PASS, result.evidence()
    names = [s.name for s in result.steps]
    assert len(names) == 23  # 13 policy lines, over IPv4 and IPv6 or the one they name
    assert result.not_run == []  # every planned step was taken, under the name planned
    assert names[0] == "line 13: INPUT tcp/22 from 10.0.0.0/8 IPv4: expect accept"
    assert {n.split(": ")[1].split()[0] for n in names} == {"INPUT", "FORWARD", "OUTPUT"}


def test_a_drop_before_the_accept_is_named_as_shadowing_the_policy_line(tmp_path: Path) -> None:
    shadowed = SECURE_HOST.replace("        ip saddr 10.0.0.0/8 tcp dport 22 accept",
                                   "        tcp dport 22 drop\n"
                                   "        ip saddr 10.0.0.0/8 tcp dport 22 accept")
    (tmp_path / "shadowed.nft").write_text(shadowed)
    result = run_check("filter", ruleset=str(tmp_path / "shadowed.nft"), policy=POLICY)
    assert result.status is Status.FAIL
    assert failed_steps(result) == ["line 13: INPUT tcp/22 from 10.0.0.0/8 IPv4: expect accept",
                                    "line 13: INPUT tcp/22 from fd00::/8 IPv6: expect accept"]
    assert result.diagnosis is not None
    assert result.diagnosis == (
        "policy line 13 (INPUT tcp/22 from 10.0.0.0/8, fd00::/8: accept) is shadowed over "
        "IPv4, IPv6: `tcp dport 22 drop` (inet filter input) drops it before "
        "`ip saddr 10.0.0.0/8 tcp dport 22 accept` / `ip6 saddr fd00::/8 tcp dport 22 accept`, "
        "which would accept it, is reached")
    assert result.explanation[0]["text"].startswith(
        "nft rule `tcp dport 22 drop` (chain inet filter input")


def test_an_accepting_forward_policy_is_named(tmp_path: Path) -> None:
    (tmp_path / "open.nft").write_text(
        SECURE_HOST.replace("hook forward priority filter; policy drop;",
                            "hook forward priority filter; policy accept;"))
    result = run_check("filter", ruleset=str(tmp_path / "open.nft"), policy=POLICY)
    assert result.status is Status.FAIL
    assert [n.split(" from")[0] for n in failed_steps(result)] == ["line 18: FORWARD tcp/22"] * 2
    assert result.diagnosis is not None and "policy line 18" in result.diagnosis
    assert "is accepted over IPv4, IPv6 (expected drop): by the policy of inet filter " \
           "forward (accept)" in result.diagnosis
    # the reference masquerades: the nat postrouting chain's accept is no filtering decision
    assert "fw's ruleset let it through: the policy of chain inet filter forward (accept)" in \
        delivered_cause(result)


# -- the rulesets real ufw wrote (captures/firewalls/): "allow 22/tcp", and a deny above it


def test_filter_passes_on_the_rules_ufw_writes() -> None:
    fixture = ufw("ufw-ssh")
    result = run_check("filter", ruleset=fixture.ruleset, policy=str(fixture.policy))
    assert result.status is Status.PASS, result.evidence()
    assert "ufw-ssh.iptables (iptables-restore), ufw-ssh.ip6tables (ip6tables-restore)" in \
        result.steps[0].detail
    assert len(result.steps) == 1 + 16


def test_a_shadowed_ufw_allow_is_named_with_its_chain() -> None:
    fixture = SHADOWED_SSH  # ufw insert 1 deny from 10.0.0.0/8 to any port 22 proto tcp
    result = run_check("filter", ruleset=fixture.ruleset, policy=str(fixture.policy))
    assert result.status is Status.FAIL
    assert failed_steps(result) == ["line 3: INPUT tcp/22 IPv4: expect accept"]
    assert result.diagnosis == (
        "policy line 3 (INPUT tcp/22: accept) is shadowed over IPv4: `ip saddr 10.0.0.0/8 "
        "tcp dport 22 drop` (ip filter ufw-user-input) drops it before `tcp dport 22 "
        "accept`, which would accept it, is reached")


def test_ipv6_left_unfiltered_is_named() -> None:
    fixture = ufw("ufw-ssh", v6=False)  # ufw-ssh.iptables loaded, .ip6tables forgotten
    result = run_check("filter", ruleset=fixture.ruleset, policy=str(fixture.policy))
    assert result.status is Status.FAIL
    assert all(name.endswith("IPv6: expect drop") for name in failed_steps(result))
    assert result.diagnosis is not None
    assert "policy line 4 (INPUT tcp/23: drop) is accepted over IPv6 (expected drop): no " \
           "chain of fw's ruleset filters IPv6 at the input hook" in result.diagnosis
    # the first probed (not only recorded) failure is the FORWARD line's
    assert "nft trace: no chain of fw's ruleset saw it" in delivered_cause(result)


def test_filter_runs_on_a_users_topology(tmp_path: Path) -> None:
    policy = tmp_path / "router-policy.yaml"
    policy.write_text("""\
- {proto: tcp, port: 22, from: [10.1.0.0/24, "fd01::/64"], expect: accept}
- {proto: tcp, port: 23, from: [10.2.0.0/24, "fd02::/64"], expect: drop}
- {proto: udp, port: 5353, expect: drop}
- {proto: tcp, port: 80, chain: forward, expect: accept}
- {proto: tcp, port: 80, chain: forward, from: 10.2.0.10/32, to: 10.1.0.0/24, expect: drop}
- {proto: tcp, port: 25, chain: output, to: [10.2.0.0/24, "fd02::/64"], expect: drop}
""")
    result = run_check("filter", EXAMPLES / "router.yaml", host="router", client="left",
                       behind="right", ruleset=str(EXAMPLES / "filter-secure-host.nft"),
                       policy=str(policy))
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 1 + 11


def test_a_bad_policy_is_bad_input_naming_its_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("- {proto: tcp, port: 22, expect: accept}\n"
                                       "- {proto: sctp, port: 22, expect: accept}\n")
    result = run_check("filter", policy=str(tmp_path / "bad.yaml"))
    assert result.status is Status.ERROR
    assert "bad.yaml:2: proto must be one of tcp, udp, icmp, icmpv6, any" in result.summary


def test_unknown_hosts_are_bad_input() -> None:
    result = run_check("filter", host="gateway")
    assert result.status is Status.ERROR
    assert "no host 'gateway' to filter in topology 'filter'" in result.summary
    result = run_check("filter", client="laptop")
    assert result.status is Status.ERROR
    assert "no host 'laptop' in this topology: name one with the client parameter" in \
        result.summary
