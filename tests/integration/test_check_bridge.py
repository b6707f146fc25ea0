"""The bridge check passes on hosts that share a bridge and names the fault when they don't."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from support.handmade import Handmade
from support.networks import lan
from support.paths import EXAMPLES
from support.results import diagnosis_of, failed_steps, top_cause

import netprobe
from netprobe import Spec
from netprobe.check import Status, run_check

pytestmark = pytest.mark.root


LAN = """\
name: lan
hosts:
  h1:
    interfaces:
      eth1: {veth: lan:p1, addresses: [172.16.5.1/24]}
  h2:
    interfaces:
      eth1: {veth: lan:p2, addresses: [172.16.5.2/24]}
  h3:
    interfaces:
      eth1: {veth: lan:p3, addresses: [172.16.5.3/24]}
  lan:
    interfaces:
      br-lan: {bridge: {}}
      br-other: {bridge: {}}
      p1: {master: br-lan}
      p2: {master: br-lan}
      p3: {master: P3_MASTER}
"""
LAN_PARAMS = {"bridge": "lan:br-lan", "hosts": "h1:eth1,h2:eth1,h3:eth1"}


def _redblue() -> Spec:
    return netprobe.load(EXAMPLES / "redblue.yaml")


def _without_master(spec: Spec, host: str, port: str) -> Spec:
    """The spec with `host`'s interface `port` left out of its bridge (no `master br0`)."""
    def strip(h: netprobe.Host) -> netprobe.Host:
        if h.name != host:
            return h
        ifaces = tuple(dataclasses.replace(i, master=None) if i.name == port else i
                       for i in h.interfaces)
        return dataclasses.replace(h, interfaces=ifaces)
    return dataclasses.replace(spec, hosts=tuple(strip(h) for h in spec.hosts))


def test_bridge_passes_on_its_reference_topology() -> None:
    result = run_check("bridge")
    assert result.status is Status.PASS, result.evidence()
    names = [s.name for s in result.steps]
    assert "ARP reply 10.0.0.2 is-at 02:00:00:00:00:02 reaches red:eth0" in names
    assert "ping blue:eth0 → red:eth0 (10.0.0.1) answered" in names
    assert len(names) == 10


def test_a_port_left_out_of_the_bridge_is_named() -> None:
    result = run_check("bridge", _without_master(_redblue(), "switch", "blue"))
    diagnosis = diagnosis_of(result)
    assert "switch:blue is not enslaved to br0: it has no master" in diagnosis
    assert "never reached blue:eth0" in result.summary
    assert top_cause(result).startswith(
        "switch:blue is not a port of any bridge (missing master: br0)")


@pytest.mark.parametrize(
    ("host", "ifname", "fault"),
    [("switch", "blue", "switch:blue is down"),
     ("blue", "eth0", "blue:eth0 is down"),
     ("switch", "br0", "switch:br0 is down")],
)
def test_a_link_that_is_down_is_named(host: str, ifname: str, fault: str) -> None:
    with netprobe.build(_redblue()) as topo:
        topo.run(host, ["ip", "link", "set", ifname, "down"], check=True)
        result = run_check("bridge", topo)
    assert diagnosis_of(result) == fault
    assert top_cause(result) == fault


def test_a_forward_hook_dropping_bridged_ipv4_is_named() -> None:
    ruleset = "table inet f {\n chain fw { type filter hook forward priority 0; policy drop; }\n}\n"
    with netprobe.build(_redblue()) as topo:
        topo.run("switch", ["nft", "-f", "-"], input=ruleset, check=True)
        result = run_check("bridge", topo)
    diagnosis = diagnosis_of(result)
    assert "switch filters bridged frames on its forward hook: inet f fw (policy drop)" in \
        diagnosis
    assert "bridge-nf-call-iptables=1" in diagnosis
    assert top_cause(result).startswith("nft the policy of chain inet f fw (drop) on switch")
    # L2 and ARP are not IPv4: they still cross; only the pings fail
    failed = {s.name for s in result.steps if s.status is Status.FAIL}
    assert failed == {"ping red:eth0 → blue:eth0 (10.0.0.2) answered",
                      "ping blue:eth0 → red:eth0 (10.0.0.1) answered"}


def test_a_host_without_its_address_is_named() -> None:
    with netprobe.build(_redblue()) as topo:
        topo.run("blue", ["ip", "-4", "addr", "flush", "dev", "eth0"], check=True)
        result = run_check("bridge", topo)
    # the spec says what netprobe gave it (10.0.0.2); the kernel, that it holds it no more
    assert diagnosis_of(result).startswith(
        "blue:eth0 does not hold 10.0.0.2: nothing there answers ARP or ping for it")
    assert "ARP reply 10.0.0.2 is-at 02:00:00:00:00:02 reaches red:eth0" in failed_steps(result)


def test_runs_on_a_users_topology_with_its_bridge_and_hosts(tmp_path: Path) -> None:
    path = tmp_path / "lan.yaml"
    path.write_text(LAN.replace("P3_MASTER", "br-lan"))
    result = run_check("bridge", path, **LAN_PARAMS)
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 3 + 6 * 4  # a broadcast per host, four steps per pair


def test_a_port_on_another_bridge_is_named_on_a_users_topology(tmp_path: Path) -> None:
    path = tmp_path / "lan.yaml"
    path.write_text(LAN.replace("P3_MASTER", "br-other"))
    result = run_check("bridge", path, **LAN_PARAMS)
    assert "lan:p3 is not enslaved to br-lan: its master is br-other" in diagnosis_of(result)
    assert top_cause(result).startswith("lan:p3 is a port of br-other, not of br-lan where")


def test_bad_parameters_are_bad_input() -> None:
    with pytest.raises(netprobe.SpecError, match="takes parameters bridge, hosts"):
        run_check("bridge", ports="red:eth0")
    with pytest.raises(netprobe.SpecError, match="parameter hosts takes 2 or more ports"):
        run_check("bridge", hosts="red:eth0")
    result = run_check("bridge", hosts="red:eth0,green:eth0")
    assert result.status is Status.ERROR
    assert "unknown port green:eth0" in result.summary
    result = run_check("bridge", bridge="switch:br9")
    assert result.status is Status.ERROR
    assert "'switch:br9' is no such interface" in result.summary


# The same sabotages on a network made by hand (plain `ip`, `nft`, `sysctl`) and adopted:
# every fact the check needs comes from the kernel, none from a spec.


def test_bridge_passes_on_a_handmade_lan(handmade: Handmade) -> None:
    params = lan(handmade)
    result = run_check("bridge", handmade.spec("hand-lan"), **params)
    assert result.status is Status.PASS, result.evidence()
    names = [s.name for s in result.steps]
    assert "ARP reply 10.71.0.2 is-at 02:71:00:00:00:02 reaches a:e0" in names
    assert "ping b:e0 → a:e0 (10.71.0.1) answered" in names
    assert len(names) == 10


def test_a_handmade_port_with_no_master_is_named(handmade: Handmade) -> None:
    params = lan(handmade)
    handmade.run("ip -n {sw} link set p2 nomaster")
    result = run_check("bridge", handmade.spec("hand-lan"), **params)
    assert diagnosis_of(result) == (
        "sw:p2 is not enslaved to br0: it has no master (`ip link set p2 master br0` in sw)")
    assert "never reached b:e0" in result.summary


@pytest.mark.parametrize(
    ("ns", "ifname", "fault"),
    [("sw", "p2", "sw:p2 is down"), ("b", "e0", "b:e0 is down"), ("sw", "br0", "sw:br0 is down")],
)
def test_a_handmade_link_that_is_down_is_named(
    handmade: Handmade, ns: str, ifname: str, fault: str
) -> None:
    params = lan(handmade)
    handmade.run(f"ip -n {{{ns}}} link set {ifname} down")
    result = run_check("bridge", handmade.spec("hand-lan"), **params)
    assert diagnosis_of(result) == fault


def test_a_handmade_forward_hook_dropping_bridged_ipv4_is_named(handmade: Handmade) -> None:
    params = lan(handmade)
    ruleset = "table inet f {\n chain fw { type filter hook forward priority 0; policy drop; }\n}\n"
    handmade.run("ip netns exec {sw} sysctl -qw net.bridge.bridge-nf-call-iptables=1")
    handmade.run("ip netns exec {sw} nft -f -", input=ruleset)
    result = run_check("bridge", handmade.spec("hand-lan"), **params)
    assert diagnosis_of(result) == (
        "sw filters bridged frames on its forward hook: inet f fw (policy drop); "
        "bridge-nf-call-iptables=1 sends bridged IPv4 through it")
    assert failed_steps(result) == ["ping a:e0 → b:e0 (10.71.0.2) answered",
                                    "ping b:e0 → a:e0 (10.71.0.1) answered"]


def test_a_handmade_host_without_its_address_is_named(handmade: Handmade) -> None:
    params = lan(handmade)
    handmade.run("ip -n {b} -4 addr flush dev e0")
    result = run_check("bridge", handmade.spec("hand-lan"), **params)
    assert diagnosis_of(result).startswith(
        "b:e0 holds no IPv4 address: nothing there answers ARP or ping from a:e0 (10.71.0.1)")


def test_a_handmade_port_on_another_bridge_is_named(handmade: Handmade) -> None:
    params = lan(handmade, ("h1", "h2", "h3"))
    handmade.run("ip -n {sw} link add br-other type bridge",
                 "ip -n {sw} link set p3 master br-other")
    result = run_check("bridge", handmade.spec("hand-lan"), **params)
    assert "sw:p3 is not enslaved to br0: its master is br-other" in diagnosis_of(result)


def test_a_wrong_permanent_neighbour_entry_is_named(handmade: Handmade) -> None:
    params = lan(handmade)
    handmade.run("ip -n {b} neigh replace 10.71.0.1 lladdr 02:00:00:00:00:99 dev e0 nud permanent")
    result = run_check("bridge", handmade.spec("hand-lan"), **params)
    assert diagnosis_of(result) == (
        "b has a permanent neighbour entry 10.71.0.1 lladdr 02:00:00:00:00:99 dev e0, but a:e0 "
        "(10.71.0.1) is 02:71:00:00:00:01: its replies go to a MAC nobody on the bridge has "
        "(`ip neigh del 10.71.0.1 dev e0` in b)")
    assert failed_steps(result) == ["ping a:e0 → b:e0 (10.71.0.2) answered"]


def test_a_handmade_port_not_forwarding_is_named(handmade: Handmade) -> None:
    params = lan(handmade)
    handmade.run("bridge -n {sw} link set dev p2 state 2")  # learning, STP off: set by hand
    result = run_check("bridge", handmade.spec("hand-lan"), **params)
    assert diagnosis_of(result) == (
        "sw:p2 is in STP state learning: it forwards nothing "
        "(`bridge link set dev p2 state 3` in sw)")
