"""The filter check on rulesets real ufw 0.36.2 and firewalld 1.3.3 generated (committed in
captures/firewalls/, made by make_firewalls.py there): each passes against the policy that
says what its configuration means, and a firewalld zone bound to the wrong interface fails
naming the firewalld chain that turned the LAN's traffic away. Where ufw and firewalld
are installed, the generator is run again and must give the committed files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.frontends import FIREWALLS, HEALTHY, SHADOWED_SSH, WRONG_INTERFACE, Frontend, ufw
from support.paths import EXAMPLES
from support.results import diagnosis_of, failed_steps

from netprobe.check import Result, Status, Step, run_check
from netprobe.cli import cli

pytestmark = pytest.mark.root


def _row(result: Result, chain: str, text: str) -> Step:
    """The derived step of the rule `text` in `chain` (the first, if several ways)."""
    return next(s for s in result.steps if f" {chain}" in s.name and s.name.endswith(text))


@pytest.mark.parametrize("fixture", HEALTHY, ids=lambda f: f.name)
def test_every_rule_the_frontend_generated_is_probed_without_a_policy(
        fixture: Frontend) -> None:
    """Derived mode: no rule of a healthy ruleset is shadowed; what cannot be probed
    says why; the rules that decide do."""
    result = run_check("filter", ruleset=fixture.ruleset)
    assert failed_steps(result) == [], result.evidence()
    rules = [s for s in result.steps if " rule " in s.name]
    assert len(rules) > 30
    assert all(s.detail.startswith("not probed: ") for s in rules if s.status is Status.SKIP)
    decisive = [s for s in rules if "reached, it decides" in s.detail]
    assert len(decisive) >= 5, result.evidence()


def test_ufw_allow_ssh_decides_and_the_shadowed_one_is_named_per_way_in() -> None:
    healthy = run_check("filter", ruleset=ufw("ufw-ssh").ruleset)
    allow = _row(healthy, "ufw-user-input", "tcp dport 22 accept")
    assert allow.status is Status.PASS and "reached, it decides (accept)" in allow.detail
    # `ufw insert 1 deny from 10.0.0.0/8 to any port 22`: the allow still decides for the
    # outside, and the LAN's way in is named as shadowed by the deny
    result = run_check("filter", ruleset=SHADOWED_SSH.ruleset)
    allow = _row(result, "ufw-user-input", "tcp dport 22 accept")
    assert allow.status is Status.PASS, allow.detail
    assert "reached, it decides (accept)" in allow.detail
    assert "sent by client:eth0 into fw:eth0" in allow.detail.split("on another way")[1]
    assert "shadowed by rule" in allow.detail
    assert result.status is not Status.FAIL and result.diagnosis is not None
    assert "`tcp dport 22 accept` (ip filter ufw-user-input, handle 99) is shadowed by `ip " \
           "saddr 10.0.0.0/8 tcp dport 22 drop` (ip filter ufw-user-input, handle 98) for " \
           "part of its traffic" in result.diagnosis


def test_ufws_lo_icmp_neighbour_discovery_and_established_rules_decide() -> None:
    """What ufw writes for every host: lo, ICMP echo, neighbour discovery with hop limit
    255, established flows (OUTPUT's opened by fw itself, INPUT's drop the opener the
    other way); ICMP errors are related and reach the established rule first."""
    result = run_check("filter", ruleset=ufw("ufw-ssh").ruleset)
    for chain, text in (("ufw-before-input", 'iifname "lo" accept'),
                        ("ufw6-before-input", 'iifname "lo" accept'),
                        ("ufw-before-output", 'oifname "lo" accept'),
                        ("ufw-before-input", "icmp type echo-request accept"),
                        ("ufw6-before-input", "nd-neighbor-solicit ip6 hoplimit 255 accept"),
                        ("ufw6-before-input", "nd-router-solicit ip6 hoplimit 255 accept"),
                        ("ufw-before-input", "ct state related,established accept"),
                        ("ufw-before-output", "ct state related,established accept"),
                        ("ufw6-before-output", "ct state related,established accept")):
        row = _row(result, chain, text)
        assert row.status is Status.PASS and "reached, it decides (accept)" in row.detail, \
            (chain, text, row.detail)
    unreachable = _row(result, "ufw-before-input", "icmp type destination-unreachable accept")
    assert unreachable.status is Status.PASS
    assert "(related: the datagram it quotes sent the other way first)" in unreachable.detail
    assert "shadowed by rule" in unreachable.detail  # by the related,established accept
    # FORWARD: the policy drops every opener, both ways, and the row says which
    forward = _row(result, "ufw-before-forward", "ct state related,established accept")
    assert forward.status is Status.SKIP
    assert forward.detail.startswith(
        "not probed: the flow it needs cannot be opened: the policy of ip filter FORWARD "
        "(drop) drops its first packet the other way, and the policy of ip filter FORWARD "
        "(drop) its first packet from the probe's own side"), forward.detail


def test_dockers_raw_drop_is_named_in_derived_mode() -> None:
    """Docker 28's rules, every rule probed: a neighbour's frame straight to a container
    dies in the raw table before the filter chains see it, and the step says where."""
    result = run_check("filter", str(EXAMPLES / "docker-bridge.yaml"), host="dockerhost",
                       client="outside", behind="c1", derive=True)
    direct = _row(result, "DOCKER", "ip daddr 172.17.0.2 tcp dport 80 accept")
    assert "sent by outside:eth0" in direct.detail
    assert "dropped before by rule" in direct.detail and "ip raw PREROUTING" in direct.detail


@pytest.mark.parametrize("fixture", HEALTHY, ids=lambda f: f.name)
def test_filter_passes_on_what_the_frontend_generated(fixture: Frontend) -> None:
    result = run_check("filter", ruleset=fixture.ruleset, policy=str(fixture.policy))
    assert result.status is Status.PASS, result.evidence()
    assert result.not_run == []
    loaded = ", ".join(f"{f.name} ({'nft' if f.suffix == '.nft' else f.suffix[1:] + '-restore'})"
                       for f in fixture.files)
    assert result.steps[0].detail == f"loaded {loaded}"


def test_a_firewalld_zone_bound_to_the_wrong_interface_is_named() -> None:
    """trusted on eth1 (the outside) instead of eth0: the LAN falls into public."""
    fixture = WRONG_INTERFACE
    result = run_check("filter", ruleset=fixture.ruleset, policy=str(fixture.policy))
    diagnosis = diagnosis_of(result)
    assert failed_steps(result)[:2] == [
        "line 4: INPUT tcp/8080 from 10.0.0.0/8 IPv4: expect accept",
        "line 4: INPUT tcp/8080 from fd00::/8 IPv6: expect accept"]
    # the LAN's traffic is turned away by the public zone, not accepted by trusted
    assert diagnosis.startswith(
        "policy line 4 (INPUT tcp/8080 from 10.0.0.0/8, fd00::/8: accept) is dropped over "
        "IPv4, IPv6 (expected accept): by `reject with icmpx admin-prohibited` "
        "(inet firewalld filter_IN_public)")
    # and the outside's is let in by trusted
    assert "policy line 8 (INPUT tcp/23 from 198.51.100.0/24, 2001:db8:100::/64: drop) is " \
           "accepted over IPv4, IPv6 (expected drop): by `accept` (inet firewalld " \
           "filter_IN_trusted)" in diagnosis
    assert result.explanation[0]["text"].startswith(
        "nft rule `reject with icmpx admin-prohibited` (chain inet firewalld filter_IN_public")


def _made_by(text: str) -> str:
    """The versions a fixture's header names, kernel left out."""
    line = next(line for line in text.splitlines() if line.startswith("# made by "))
    return re.sub(r", kernel [^)]*", "", line)


def _output(text: str) -> list[str]:
    """The tool's output: the lines that name the time of the run, and the versions, out."""
    return [line for line in text.splitlines()
            if not re.match(r"# (Generated by|Completed on|made by) ", line)]


@pytest.mark.skipif(not all(shutil.which(t) for t in ("ufw", "firewalld", "dbus-daemon")),
                    reason="ufw, firewalld or dbus-daemon not installed: the committed "
                    "fixtures are not regenerated here")
def test_the_tools_installed_here_generate_the_committed_fixtures(tmp_path: Path) -> None:
    """make_firewalls.py run again gives the same rulesets, but for timestamps."""
    subprocess.run([sys.executable, str(FIREWALLS / "make_firewalls.py"), "--out",
                    str(tmp_path)], check=True, capture_output=True)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(p.name for p in FIREWALLS.glob("*") if p.suffix in
                          (".iptables", ".ip6tables", ".nft"))
    for name in made:
        ours, theirs = (tmp_path / name).read_text(), (FIREWALLS / name).read_text()
        if _made_by(ours) != _made_by(theirs):
            pytest.skip(f"other tool versions here: {_made_by(ours)}")
        assert _output(ours) == _output(theirs), name


def test_the_command_line_takes_ufws_ipv4_and_ipv6_files(tmp_path: Path) -> None:
    """`--ruleset` repeated: ufw writes one file per family."""
    fixture = ufw("ufw-ssh")
    args = ["check", "filter", *(a for f in fixture.files for a in ("--ruleset", str(f))),
            "--policy", str(fixture.policy), "--no-bundle", "--json", str(tmp_path / "r.json")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "r.json").read_text())
    steps = saved["results"][0]["steps"]
    assert steps[0]["detail"] == ("loaded ufw-ssh.iptables (iptables-restore), "
                                  "ufw-ssh.ip6tables (ip6tables-restore)")
