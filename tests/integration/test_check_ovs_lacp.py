"""The ovs-lacp check passes on two OVS hosts bonded with LACP (the failover's loss and
gap in its evidence), and names the fault when LACP is off on one side or the members are
cabled to two different switches."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.paths import EXAMPLES
from support.results import diagnosis_of

from netprobe.check import Status, run_check

pytestmark = [pytest.mark.root, pytest.mark.netprobe_requires("ovs-vsctl")]

SWITCH2 = """\
      u3: {veth: spare:eth0, master: bond0}
  switch2:
    interfaces:
      br0: {ovs: {}, mac: "02:00:00:00:1a:c0"}
      bond0: {ovs_bond: {mode: balance-tcp, lacp: active, lacp_time: fast}, master: br0}
      u2: {master: bond0}
      u4: {veth: spare:eth1, master: bond0}
  spare:
    interfaces: {}
"""


def _variant(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ovs-lacp.yaml"
    path.write_text(text)
    return path


def test_ovs_lacp_passes_and_measures_the_failover() -> None:
    result = run_check("ovs-lacp")
    assert result.status is Status.PASS, result.evidence()
    assert result.not_run == []
    steps = {s.id: s for s in result.steps}
    negotiated = steps["server:bond0 negotiates LACP"].detail
    assert "b1 current attached, partner 02:00:00:00:1a:b0" in negotiated
    assert "u2 current attached, partner 02:00:00:00:1a:a0" in negotiated
    cut = steps["cutting a link moves its flows"].detail
    assert " of their frames lost, longest gap " in cut
    assert "the flows in turn" in cut
    assert result.duration < 15


def test_lacp_off_on_the_switch_is_named(tmp_path: Path) -> None:
    text = (EXAMPLES / "ovs-lacp.yaml").read_text()
    at = text.index("  switch:")
    path = _variant(tmp_path, text[:at] + text[at:].replace("lacp: active", "lacp: off", 1))
    result = run_check("ovs-lacp", path, max_negotiation="3")
    assert result.status is Status.FAIL
    assert "switch:bond0 has lacp=off: no partner for server:bond0 (b1: defaulted detached" \
        in diagnosis_of(result)
    assert len(result.not_run) == 4


def test_members_cabled_to_two_switches_are_named(tmp_path: Path) -> None:
    text = (EXAMPLES / "ovs-lacp.yaml").read_text()
    text = text.replace("b2: {veth: switch:u2", "b2: {veth: switch2:u2")
    text = text.replace("      u2: {master: bond0}\n", SWITCH2)
    result = run_check("ovs-lacp", _variant(tmp_path, text), max_negotiation="3")
    diagnosis = diagnosis_of(result)
    assert ("server:bond0's members end on different switches: b1 at switch:u1 "
            "(switch:bond0, system 02:00:00:00:1a:b0), b2 at switch2:u2 (switch2:bond0, "
            "system 02:00:00:00:1a:c0); LACP aggregates links to one partner only") \
        in diagnosis, diagnosis


def test_a_name_that_is_no_ovs_bond_is_bad_input() -> None:
    result = run_check("ovs-lacp", bond="server:br0")
    assert result.status is Status.ERROR
    assert "an ovs_bond of this topology" in result.summary
