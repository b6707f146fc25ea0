"""The filter check on rulesets real ufw 0.36.2 and firewalld 1.3.3 generated (committed in
captures/firewalls/, made by make_firewalls.py there): each passes against the policy that
says what its configuration means, and a firewalld zone bound to the wrong interface fails
naming the firewalld chain that turned the LAN's traffic away."""

from __future__ import annotations

import pytest
from support.frontends import HEALTHY, WRONG_INTERFACE, Frontend
from support.results import diagnosis_of, failed_steps

from netprobe.check import Status, run_check

pytestmark = pytest.mark.root


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
