"""The routing check passes on a forwarding router and names the fault on sabotaged ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from support.handmade import Handmade
from support.networks import router
from support.paths import EXAMPLES
from support.results import failed_steps, top_cause

import netprobe
from netprobe import Spec
from netprobe.check import Status, run_check

pytestmark = pytest.mark.root

EXAMPLE = EXAMPLES / "router.yaml"


def _with_host(spec: Spec, name: str, **changes: object) -> Spec:
    hosts = [dataclasses.replace(h, **changes) if h.name == name else h for h in spec.hosts]
    return dataclasses.replace(spec, hosts=tuple(hosts))


def test_routing_passes_on_its_reference_topology() -> None:
    result = run_check("routing")
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 16  # 2 families x 2 directions x 4 steps
    assert result.not_run == []  # every planned step was taken, under the name planned
    agree = [s for s in result.steps if "agrees with the egress" in s.name]
    assert agree[0].detail == "router predicts via eth1; the probe left by eth1"


def test_ip_forward_off_fails_and_says_so() -> None:
    spec = netprobe.load(EXAMPLE)
    spec = _with_host(
        spec, "router", sysctls={"net.ipv4.ip_forward": 0, "net.ipv6.conf.all.forwarding": 1}
    )
    result = run_check("routing", spec)
    assert result.status is Status.FAIL
    assert (
        result.diagnosis == "ip_forward is 0 on router: it forwards no IPv4 between its interfaces"
    )
    assert failed_steps(result) == [
        "left→right IPv4: router forwards an echo request to right:eth0",
        "right→left IPv4: router forwards an echo request to left:eth0",
    ]
    assert top_cause(result) == "forwarding disabled on router (net.ipv4.ip_forward = 0)"
    assert result.not_run == [  # no reply to wait for when the request never got there
        "left→right IPv4: right's echo reply comes back to left:eth0",
        "right→left IPv4: left's echo reply comes back to right:eth0",
    ]


def test_ipv6_forwarding_off_is_named_and_contradicts_ip_route_get() -> None:
    with netprobe.build(netprobe.load(EXAMPLE)) as topo:
        topo.run("router", ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"], check=True)
        result = run_check("routing", topo)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None
    assert "net.ipv6.conf.all.forwarding is 0 on router" in result.diagnosis
    # the IPv6 route lookup ignores forwarding: it predicts an egress the router never uses
    disagree = [s for s in result.steps if "agrees" in s.name and s.status is Status.FAIL]
    assert [s.detail for s in disagree] == [
        "router predicts via eth1; the probe left by none",
        "router predicts via eth0; the probe left by none",
    ]
    assert top_cause(result) == (
        "IPv6 forwarding disabled on router (net.ipv6.conf.all.forwarding = 0)"
    )


def test_a_missing_return_route_names_the_host_without_it() -> None:
    with netprobe.build(netprobe.load(EXAMPLE)) as topo:
        topo.run("right", ["ip", "route", "del", "default"], check=True)
        result = run_check("routing", topo)
    assert result.status is Status.FAIL
    assert result.diagnosis == (
        "right has no route to 10.1.0.10 (left): its replies and its own traffic to left "
        "have nowhere to go (add a default route via 10.2.0.1)"
    )
    assert failed_steps(result) == [
        "left→right IPv4: right's echo reply comes back to left:eth0",
        "right→left IPv4: right sends 10.1.0.10 through router",
    ]
    assert top_cause(result).startswith("no route back: right has no route to 10.1.0.10")
    assert result.not_run == [  # right→left stops at its first hop
        "right→left IPv4: router forwards an echo request to left:eth0",
        "right→left IPv4: `ip route get` on router agrees with the egress seen",
        "right→left IPv4: left's echo reply comes back to right:eth0",
    ]
    assert result.summary.endswith("; 3 not run")
    assert "3 not run: right→left IPv4: router forwards an echo request" in result.evidence()


def test_a_missing_return_route_in_the_spec_too() -> None:
    spec = netprobe.load(EXAMPLE)
    spec = _with_host(spec, "left", routes=())
    result = run_check("routing", spec)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None
    assert "left has no route to 10.2.0.10 (right)" in result.diagnosis
    assert "left has no route to fd02::10 (right)" in result.diagnosis
    assert "right's" not in result.diagnosis
    assert top_cause(result).startswith("no route back: left has no route to 10.2.0.10")


def test_a_forward_drop_contradicts_the_routing_table() -> None:
    ruleset = "table inet f { chain fw { type filter hook forward priority 0; policy drop; }; }"
    with netprobe.build(netprobe.load(EXAMPLE)) as topo:
        topo.run("router", ["nft", "-f", "-"], input=ruleset, check=True)
        result = run_check("routing", topo)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None
    assert (
        "router routes 10.2.0.10 out of eth1 but the probe never left it: its "
        "firewall's forward hook dropped it" in result.diagnosis
    )
    assert top_cause(result).startswith("nft the policy of chain inet f fw (drop) on router")


USER_TOPOLOGY = """\
name: office
hosts:
  pc:
    interfaces:
      ens3: {veth: gw:inside, addresses: [192.168.7.20/24]}
    routes: [{to: default, via: 192.168.7.1}]
  srv:
    interfaces:
      ens4: {veth: gw:dmz, addresses: [172.16.9.5/24]}
    routes: [{to: 192.168.7.0/24, via: 172.16.9.1}]
  gw:
    interfaces:
      inside: {addresses: [192.168.7.1/24]}
      dmz: {addresses: [172.16.9.1/24]}
    sysctls: {net.ipv4.ip_forward: 1}
"""


def test_it_runs_on_a_user_topology_with_its_hosts_and_ports(tmp_path: Path) -> None:
    path = tmp_path / "office.yaml"
    path.write_text(USER_TOPOLOGY)
    result = run_check("routing", path, left="pc:ens3", right="srv:ens4", router="gw")
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 8  # IPv4 only: no IPv6 addresses
    assert result.not_run == []  # only the family both ends have was planned
    assert result.steps[0].detail == "pc routes 172.16.9.5 via 192.168.7.1"


def test_an_unknown_port_is_an_error() -> None:
    result = run_check("routing", left="left:eth9")
    assert result.status is Status.ERROR
    assert "no interface left:eth9" in result.summary


# The same sabotages on a router made by hand (plain `ip`, `sysctl`, `nft`) and adopted.


def test_routing_passes_on_a_handmade_router(handmade: Handmade) -> None:
    params = router(handmade)
    result = run_check("routing", handmade.spec("hand-router"), **params)
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 16
    agree = [s for s in result.steps if "agrees with the egress" in s.name]
    assert agree[0].detail == "router predicts via e1; the probe left by e1"


def test_handmade_forwarding_off_is_named(handmade: Handmade) -> None:
    params = router(handmade)
    handmade.run("ip netns exec {router} sysctl -qw net.ipv4.ip_forward=0")
    result = run_check("routing", handmade.spec("hand-router"), **params)
    assert result.status is Status.FAIL
    assert result.diagnosis == (
        "ip_forward is 0 on router: it forwards no IPv4 between its interfaces")
    assert failed_steps(result) == [
        "left→right IPv4: router forwards an echo request to right:e0",
        "right→left IPv4: router forwards an echo request to left:e0",
    ]


def test_handmade_ipv6_forwarding_off_is_named(handmade: Handmade) -> None:
    params = router(handmade)
    handmade.run("ip netns exec {router} sysctl -qw net.ipv6.conf.all.forwarding=0")
    result = run_check("routing", handmade.spec("hand-router"), **params)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None
    assert "net.ipv6.conf.all.forwarding is 0 on router" in result.diagnosis


def test_a_handmade_missing_return_route_is_named(handmade: Handmade) -> None:
    params = router(handmade)
    handmade.run("ip -n {right} route del default")
    result = run_check("routing", handmade.spec("hand-router"), **params)
    assert result.status is Status.FAIL
    assert result.diagnosis == (
        "right has no route to 10.81.1.10 (left): its replies and its own traffic to left "
        "have nowhere to go (add a default route via 10.81.2.1)"
    )
    assert failed_steps(result) == [
        "left→right IPv4: right's echo reply comes back to left:e0",
        "right→left IPv4: right sends 10.81.1.10 through router",
    ]


def test_handmade_missing_routes_on_a_sender_are_named(handmade: Handmade) -> None:
    params = router(handmade)
    handmade.run("ip -n {left} route del default", "ip -n {left} -6 route del default")
    result = run_check("routing", handmade.spec("hand-router"), **params)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None
    assert "left has no route to 10.81.2.10 (right)" in result.diagnosis
    assert "left has no route to fd81:2::10 (right)" in result.diagnosis
    assert "right's" not in result.diagnosis


def test_a_handmade_forward_drop_is_named(handmade: Handmade) -> None:
    params = router(handmade)
    ruleset = "table inet f { chain fw { type filter hook forward priority 0; policy drop; }; }"
    handmade.run("ip netns exec {router} nft -f -", input=ruleset)
    result = run_check("routing", handmade.spec("hand-router"), **params)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None
    assert (
        "router routes 10.81.2.10 out of e1 but the probe never left it: its "
        "firewall's forward hook dropped it" in result.diagnosis
    )
