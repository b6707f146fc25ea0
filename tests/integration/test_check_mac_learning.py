"""The mac-learning check passes on a learning bridge and names the fault on sabotaged ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from support.handmade import Handmade
from support.networks import lan
from support.paths import EXAMPLES
from support.results import delivered_cause, failed_steps

import netprobe
from netprobe import Bridge, Spec
from netprobe.check import Status, run_check

pytestmark = pytest.mark.root

EXAMPLE = EXAMPLES / "mac-learning.yaml"


def _switch_variant(*, no_learning: str | None = None, ageing: float | None = None) -> Spec:
    """The reference topology with one port's learning off, or another ageing time."""
    spec = netprobe.load(EXAMPLE)
    switch = spec.host("switch")
    interfaces = []
    for iface in switch.interfaces:
        if iface.name == no_learning:
            iface = dataclasses.replace(iface, learning=False)
        if isinstance(iface.kind, Bridge) and ageing is not None:
            iface = dataclasses.replace(iface, kind=dataclasses.replace(iface.kind, ageing=ageing))
        interfaces.append(iface)
    hosts = [
        dataclasses.replace(h, interfaces=tuple(interfaces)) if h is switch else h
        for h in spec.hosts
    ]
    return dataclasses.replace(spec, hosts=tuple(hosts))


def test_mac_learning_passes_on_its_reference_topology() -> None:
    result = run_check("mac-learning")
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 10
    ageing = next(s for s in result.steps if "ages out" in s.name)
    assert ageing.detail.endswith("after the ageing time of 1 s")
    assert result.not_run == []  # every planned step was taken, under the name planned


def test_learning_off_on_port_1_is_named() -> None:
    result = run_check("mac-learning", _switch_variant(no_learning="p1"))
    assert result.status is Status.FAIL
    assert result.diagnosis is not None
    assert "switch:p1 has learning disabled" in result.diagnosis
    assert "p3" not in result.diagnosis
    assert failed_steps(result) == [
        "every port learns and floods",
        "the FDB holds X (02:4e:50:00:00:0a) on switch:p1",
        "unicast to X leaves h1:eth0 only",
    ]
    top = delivered_cause(result)
    assert "switch:br0 has no FDB entry for 02:4e:50:00:00:0a: it floods it" in top
    assert "switch:p1 has learning off" in top


def test_learning_off_where_the_mac_moves_to_is_named() -> None:
    result = run_check("mac-learning", _switch_variant(no_learning="p3"))
    assert result.status is Status.FAIL
    assert result.diagnosis is not None and "switch:p3 has learning disabled" in result.diagnosis
    assert failed_steps(result) == [
        "every port learns and floods",
        "the FDB holds X (02:4e:50:00:00:0a) on switch:p3",
        "unicast to the moved X leaves h3:eth0 only",
    ]
    top = delivered_cause(result)
    assert "by its FDB entry `02:4e:50:00:00:0a dev p1`" in top
    assert "switch:p3 has learning off" in top


def test_ageing_zero_is_diagnosed_as_forgetting_at_once() -> None:
    result = run_check("mac-learning", _switch_variant(ageing=0))
    assert result.status is Status.FAIL
    assert result.diagnosis is not None
    assert "switch:br0 has ageing time 0: FDB entries expire at once" in result.diagnosis
    assert "everything floods" in result.diagnosis
    assert failed_steps(result)  # the entries vanish within ~10 ms: lookups and unicast fail
    assert "switch:br0 has ageing time 0: it forgets every MAC at once" in delivered_cause(result)


def test_learning_turned_off_on_a_live_topology_is_named() -> None:
    with netprobe.build(netprobe.load(EXAMPLE)) as topo:
        topo.run(
            "switch",
            ["ip", "link", "set", "dev", "p1", "type", "bridge_slave", "learning", "off"],
            check=True,
        )
        result = run_check("mac-learning", topo)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None and "switch:p1 has learning disabled" in result.diagnosis
    assert "switch:p1 has learning off" in delivered_cause(result)


USER_TOPOLOGY = """\
name: userlan
hosts:
  web:
    interfaces:
      ens3: {veth: hv:vweb, mac: "02:aa:00:00:00:01"}
  db:
    interfaces:
      ens3: {veth: hv:vdb, mac: "02:aa:00:00:00:02"}
  hv:
    interfaces:
      lan0: {bridge: {ageing: %s}}
      vweb: {master: lan0}
      vdb: {master: lan0}
      tap5: {tap: {}, master: lan0}
"""


def test_it_runs_on_a_user_topology_with_a_vm_port(tmp_path: Path) -> None:
    path = tmp_path / "userlan.yaml"
    path.write_text(USER_TOPOLOGY % 2)
    result = run_check("mac-learning", path, ports="hv:tap5@vm,db:ens3,web:ens3")
    assert result.status is Status.PASS, result.evidence()
    names = [s.name for s in result.steps]
    assert "the FDB holds X (02:4e:50:00:00:0a) on hv:tap5" in names  # the TAP's port
    assert "unicast to the moved X leaves web:ens3 only" in names
    assert result.not_run == []


def test_a_long_ageing_time_is_not_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "userlan.yaml"
    path.write_text(USER_TOPOLOGY % 300)
    result = run_check("mac-learning", path, ports="web:ens3,db:ens3,hv:tap5@vm")
    assert result.status is Status.PASS, result.evidence()
    (skipped,) = [s for s in result.steps if s.status is Status.SKIP]
    assert "ageing time 300 s is too long to watch" in skipped.detail
    assert result.not_run == []  # the flood after ageing was never meant to run


def test_a_run_cut_short_lists_the_steps_it_did_not_run() -> None:
    with netprobe.build(netprobe.load(EXAMPLE)) as topo:
        topo.run("h4", ["ip", "link", "del", "eth0"], check=True)  # and switch:p4 with it
        result = run_check("mac-learning", topo)
    assert result.status is Status.ERROR
    assert result.summary == "cannot capture on h4:eth0: No such device; 9 not run"
    assert result.not_run == [
        "broadcast from X floods from h1:eth0 to every other port",
        "the FDB holds X (02:4e:50:00:00:0a) on switch:p1",
        "unicast to X leaves h1:eth0 only",
        "unknown unicast floods from h2:eth0 to every other port",
        "broadcast from X after it moved floods from h3:eth0 to every other port",
        "the FDB holds X (02:4e:50:00:00:0a) on switch:p3",
        "unicast to the moved X leaves h3:eth0 only",
        "X ages out of the FDB after the ageing time",
        "unicast to X after it aged out floods from h2:eth0 to every other port",
    ]
    assert "9 not run: broadcast from X floods from h1:eth0" in result.evidence()


def test_fewer_than_three_ports_is_bad_input() -> None:
    with pytest.raises(netprobe.SpecError, match="parameter ports takes 3 or more ports"):
        run_check("mac-learning", ports="h1:eth0,h2:eth0")  # refused before anything is built


@pytest.mark.parametrize(
    ("port", "flag", "said"),
    [
        ("p2", "learning", "switch:p2 has learning disabled"),
        ("p4", "learning", "switch:p4 has learning disabled"),
        ("p2", "flood", "switch:p2 has flood off"),
    ],
)
def test_any_port_with_learning_or_flooding_off_fails(port: str, flag: str, said: str) -> None:
    with netprobe.build(netprobe.load(EXAMPLE)) as topo:
        topo.run("switch", ["bridge", "link", "set", "dev", port, flag, "off"], check=True)
        result = run_check("mac-learning", topo)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None and said in result.diagnosis


# The same sabotages on a switch made by hand (plain `ip` and `bridge`) and adopted.

HOSTS = ("h1", "h2", "h3", "h4")
HAND_PORTS = "h1:e0,h2:e0,h3:e0,h4:e0"


def _handmade_switch(handmade: Handmade, ageing: int = 1) -> Spec:
    lan(handmade, HOSTS, subnet="10.74.0", ageing=ageing)
    return handmade.spec("hand-switch")


def test_mac_learning_passes_on_a_handmade_switch(handmade: Handmade) -> None:
    result = run_check("mac-learning", _handmade_switch(handmade), ports=HAND_PORTS)
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 10
    assert result.not_run == []


@pytest.mark.parametrize(
    ("port", "flag", "said"),
    [
        ("p1", "learning", "sw:p1 has learning disabled"),
        ("p3", "learning", "sw:p3 has learning disabled"),
        ("p4", "learning", "sw:p4 has learning disabled"),
        ("p2", "flood", "sw:p2 has flood off"),
    ],
)
def test_handmade_learning_or_flooding_off_is_named(
    handmade: Handmade, port: str, flag: str, said: str
) -> None:
    spec = _handmade_switch(handmade)
    handmade.run(f"bridge -n {{sw}} link set dev {port} {flag} off")
    result = run_check("mac-learning", spec, ports=HAND_PORTS)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None and said in result.diagnosis
    assert "every port learns and floods" in failed_steps(result)


def test_handmade_ageing_zero_is_named(handmade: Handmade) -> None:
    spec = _handmade_switch(handmade)
    handmade.run("ip -n {sw} link set br0 type bridge ageing_time 0")
    result = run_check("mac-learning", spec, ports=HAND_PORTS)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None
    assert "sw:br0 has ageing time 0: FDB entries expire at once" in result.diagnosis


def test_a_handmade_port_with_no_master_is_named(handmade: Handmade) -> None:
    spec = _handmade_switch(handmade)
    handmade.run("ip -n {sw} link set p2 nomaster")
    result = run_check("mac-learning", spec, ports=HAND_PORTS)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None
    assert result.diagnosis.startswith(
        "sw:p2 has no master br0: not enslaved to the bridge (it has no master; "
        "`ip link set p2 master br0` in sw)")
    assert failed_steps(result)[0] == "every port learns and floods"


def test_a_handmade_long_ageing_time_is_not_waited_for(handmade: Handmade) -> None:
    result = run_check("mac-learning", _handmade_switch(handmade, ageing=300), ports=HAND_PORTS)
    assert result.status is Status.PASS, result.evidence()
    (skipped,) = [s for s in result.steps if s.status is Status.SKIP]
    assert "ageing time 300 s is too long to watch" in skipped.detail


def test_a_handmade_run_cut_short_lists_the_steps_it_did_not_run(handmade: Handmade) -> None:
    spec = _handmade_switch(handmade)
    handmade.run("ip -n {h4} link del e0")  # and sw:p4 with it
    result = run_check("mac-learning", spec, ports=HAND_PORTS)
    assert result.status is Status.ERROR
    assert result.summary == "cannot capture on h4:e0: No such device; 9 not run"
    assert result.steps[0].detail == "h4:e0 does not exist: no bridge port behind it"
