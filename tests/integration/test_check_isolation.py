"""The isolation check passes on separate tenants and names what joins them when they leak."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from support.handmade import Handmade
from support.networks import tenants
from support.paths import EXAMPLES
from support.results import diagnosis_of, top_cause

import netprobe
from netprobe import Host, Interface, Spec, Veth
from netprobe.check import Status, run_check

pytestmark = pytest.mark.root


# A user's topology: tenants "red" (three hosts) and "green" (two) on 10.10.0.0/24 each,
# with their bridges in two different hosts; LEAK is replaced by a sabotage or nothing.
SITE = """\
name: site
hosts:
  r1: {interfaces: {eth0: {veth: node1:r1, addresses: [10.10.0.1/24]}}}
  r2: {interfaces: {eth0: {veth: node1:r2, addresses: [10.10.0.2/24]}}}
  r3: {interfaces: {eth0: {veth: node1:r3, addresses: [10.10.0.3/24]}}}
  g1: {interfaces: {eth0: {veth: node2:g1, addresses: [10.10.0.1/24]}}}
  g2: {interfaces: {eth0: {veth: node2:g2, addresses: [10.10.0.2/24]}}}
  node1:
    interfaces:
      br-red: {bridge: {}}
      r1: {master: br-red}
      r2: {master: br-red}
      r3: {master: br-red}
LEAK
  node2:
    interfaces:
      br-green: {bridge: {}}
      g1: {master: br-green}
      g2: {master: br-green}
"""
CROSS_LEAK = "      uplink: {veth: node2:uplink, master: br-red}\n"
SITE_PARAMS = {"tenant_a": "r1:eth0,r2:eth0,r3:eth0", "tenant_b": "g1:eth0,g2:eth0"}


def _tenants() -> Spec:
    return netprobe.load(EXAMPLES / "tenants.yaml")


def _with_leak(spec: Spec) -> Spec:
    """tenants.yaml plus a veth pair in hv with one end on br-a and the other on br-b."""
    leak = (
        Interface("leak-a", Veth("hv:leak-b"), master="br-a"),
        Interface("leak-b", master="br-b"),
    )
    hosts = tuple(
        dataclasses.replace(h, interfaces=h.interfaces + leak) if h.name == "hv" else h
        for h in spec.hosts
    )
    return dataclasses.replace(spec, hosts=hosts)


def test_isolation_passes_on_its_reference_topology() -> None:
    result = run_check("isolation")
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 17  # four probes from each of four hosts, and the ports
    # every absence was proven by the other tenant's barrier, not by a quiet period
    for step in result.steps[:-1]:
        assert step.outcome is not None and step.outcome.decided_by == "barrier", step.name


def test_a_veth_between_the_tenants_bridges_is_named() -> None:
    result = run_check("isolation", _with_leak(_tenants()))
    diagnosis = diagnosis_of(result)
    assert diagnosis == (
        "veth hv:leak-a on hv:br-a and its peer hv:leak-b on hv:br-b "
        "join the tenants' bridges: a leak"
    )
    leaked = [s.name for s in result.steps if s.status is Status.FAIL]
    assert "broadcast from a1:eth0 floods tenant A only" in leaked
    assert "ARP who-has 192.168.1.10 from b2:eth0 floods tenant B only" in leaked
    assert any(n.startswith("unicast a1:eth0 → tenant B's b2:eth0") for n in leaked)
    top = top_cause(result)
    assert top.startswith("the probe was delivered, not dropped: it reached b1:eth0"), top
    assert "it crossed hv:leak-a, a port of hv:br-a, to its veth peer hv:leak-b" in top


def test_a_leak_added_to_the_live_topology_is_named() -> None:
    with netprobe.build(_tenants()) as topo:
        for argv in (
            ["ip", "link", "add", "x1", "type", "veth", "peer", "name", "x2"],
            ["ip", "link", "set", "x1", "master", "br-b", "up"],
            ["ip", "link", "set", "x2", "master", "br-a", "up"],
        ):
            topo.run("hv", argv, check=True)
        result = run_check("isolation", topo)
    assert "veth hv:x2 on hv:br-a and its peer hv:x1 on hv:br-b join" in diagnosis_of(result)
    top = top_cause(result)  # x1 and x2 are not in the spec: read from the kernel
    assert top.startswith("the probe was delivered, not dropped"), top
    assert "hv:x2, a port of hv:br-a, to its veth peer hv:x1, a port of hv:br-b" in top


def test_a_tenant_port_on_the_other_tenants_bridge_is_named() -> None:
    with netprobe.build(_tenants()) as topo:
        topo.run("hv", ["ip", "link", "set", "b1", "master", "br-a"], check=True)
        result = run_check("isolation", topo)
    diagnosis = diagnosis_of(result)
    assert (
        "hv:b1, the port of tenant B's b1:eth0, is enslaved to hv:br-a, tenant A's bridge"
    ) in diagnosis
    top = top_cause(result)
    assert top.startswith("the probe was delivered, not dropped: it reached b1:eth0"), top
    assert "hv:b1 is not a port of br-b: its master is br-a" in top


def test_a_host_cut_off_from_its_own_tenant_is_named() -> None:
    with netprobe.build(_tenants()) as topo:
        topo.run("hv", ["ip", "link", "set", "a2", "nomaster"], check=True)
        result = run_check("isolation", topo)
    assert diagnosis_of(result).startswith("hv:a2 is not enslaved to br-a: it has no master")
    assert result.summary.startswith("ping a1:eth0 → a2:eth0 (192.168.1.20) answered")
    assert top_cause(result).startswith("hv:a2 is not a port of br-a: it has no master")


def test_runs_on_a_users_topology_with_its_tenants(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE.replace("LEAK\n", ""))
    result = run_check("isolation", path, **SITE_PARAMS)
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 4 * 5 + 1
    explicit = run_check(
        "isolation", path, **SITE_PARAMS, bridge_a="node1:br-red", bridge_b="node2:br-green"
    )
    assert explicit.status is Status.PASS, explicit.evidence()


def test_a_leak_across_namespaces_is_named_on_a_users_topology(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        SITE.replace("LEAK\n", CROSS_LEAK).replace(
            "      g2: {master: br-green}\n",
            "      g2: {master: br-green}\n      uplink: {master: br-green}\n",
        )
    )
    result = run_check("isolation", path, **SITE_PARAMS)
    diagnosis = diagnosis_of(result)
    top = top_cause(result)
    assert top.startswith("the probe was delivered, not dropped"), top
    assert "it crossed node1:uplink, a port of node1:br-red, to its veth peer node2:uplink" in top
    assert (
        "node1:uplink (veth, peer in another namespace) is a port of node1:br-red but no "
        "host of tenant A is behind it"
    ) in diagnosis
    assert "node2:uplink (veth, peer in another namespace) is a port of node2:br-green" in diagnosis


def test_bad_parameters_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(netprobe.SpecError, match="takes parameters tenant_a, tenant_b"):
        run_check("isolation", tenants="a1:eth0")
    result = run_check("isolation", bridge_b="hv:b1")
    assert result.status is Status.ERROR
    assert "'hv:b1' is a veth link" in result.summary


def test_a_router_between_the_tenants_is_not_passed_as_isolated() -> None:
    spec = netprobe.load(EXAMPLES / "tenants.yaml")
    hv = spec.host("hv")
    router = Host(
        "rt",
        interfaces=[
            Interface("ea", Veth("hv:ra"), addresses=["192.168.1.254/24"]),
            Interface("eb", Veth("hv:rb"), addresses=["172.16.0.1/24"]),
        ],
        sysctls={"net.ipv4.ip_forward": 1},
    )
    hv = dataclasses.replace(
        hv,
        interfaces=[*hv.interfaces, Interface("ra", master="br-a"), Interface("rb", master="br-b")],
    )
    hosts = [h for h in spec.hosts if h.name != "hv"] + [hv, router]
    result = run_check("isolation", Spec("routed-tenants", hosts=hosts))
    assert result.status is Status.INCONCLUSIVE, result.evidence()
    assert result.diagnosis is not None and "hv:ra" in result.diagnosis


# The same sabotages on tenants made by hand (plain `ip`) and adopted: each tenant's bridge
# is found from the kernel (its ports' masters), not from a spec.


def test_isolation_passes_on_handmade_tenants(handmade: Handmade) -> None:
    params = tenants(handmade)
    result = run_check("isolation", handmade.spec("hand-tenants"), **params)
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 17


def test_a_handmade_veth_between_the_tenants_bridges_is_named(handmade: Handmade) -> None:
    params = tenants(handmade)
    handmade.run(
        "ip -n {hv} link add leak-a type veth peer name leak-b",
        "ip -n {hv} link set leak-a master br-a up",
        "ip -n {hv} link set leak-b master br-b up",
    )
    result = run_check("isolation", handmade.spec("hand-tenants"), **params)
    assert diagnosis_of(result) == (
        "veth hv:leak-a on hv:br-a and its peer hv:leak-b on hv:br-b "
        "join the tenants' bridges: a leak"
    )


def test_a_handmade_tenant_port_on_the_other_bridge_is_named(handmade: Handmade) -> None:
    params = tenants(handmade)
    handmade.run("ip -n {hv} link set b1 master br-a")
    result = run_check("isolation", handmade.spec("hand-tenants"), **params)
    assert (
        "hv:b1, the port of tenant B's b1:e0, is enslaved to hv:br-a, tenant A's bridge"
    ) in diagnosis_of(result)


def test_handmade_tenants_on_one_bridge_share_it(handmade: Handmade) -> None:
    params = tenants(handmade)
    handmade.run("ip -n {hv} link set b1 master br-a", "ip -n {hv} link set b2 master br-a")
    result = run_check("isolation", handmade.spec("hand-tenants"), **params)
    assert diagnosis_of(result) == (
        "tenants A and B share the bridge hv:br-a: nothing separates them")


def test_a_handmade_host_cut_off_from_its_own_tenant_is_named(handmade: Handmade) -> None:
    params = tenants(handmade)
    handmade.run("ip -n {hv} link set a2 nomaster")
    result = run_check("isolation", handmade.spec("hand-tenants"), **params)
    assert diagnosis_of(result).startswith("hv:a2 is not enslaved to br-a: it has no master")
    assert result.summary.startswith("ping a1:e0 → a2:e0 (192.168.51.20) answered")


def test_a_handmade_leak_across_namespaces_is_named(handmade: Handmade) -> None:
    params = tenants(handmade, split=True)
    handmade.run(
        "ip link add uplink netns {node1} type veth peer name uplink netns {node2}",
        "ip -n {node1} link set uplink master br-a up",
        "ip -n {node2} link set uplink master br-b up",
    )
    result = run_check("isolation", handmade.spec("hand-site"), **params)
    diagnosis = diagnosis_of(result)
    assert (
        "node1:uplink (veth, peer in another namespace) is a port of node1:br-a but no "
        "host of tenant A is behind it"
    ) in diagnosis
    assert "node2:uplink (veth, peer in another namespace) is a port of node2:br-b" in diagnosis


def test_a_handmade_router_between_the_tenants_is_not_passed_as_isolated(
    handmade: Handmade,
) -> None:
    params = tenants(handmade)
    handmade.netns("rt")
    handmade.run(
        "ip link add ea netns {rt} type veth peer name ra netns {hv}",
        "ip link add eb netns {rt} type veth peer name rb netns {hv}",
        "ip -n {hv} link set ra master br-a up",
        "ip -n {hv} link set rb master br-b up",
        "ip -n {rt} addr add 192.168.51.254/24 dev ea",
        "ip -n {rt} addr add 172.16.51.1/24 dev eb",
        "ip -n {rt} link set ea up",
        "ip -n {rt} link set eb up",
        "ip netns exec {rt} sysctl -qw net.ipv4.ip_forward=1",
    )
    result = run_check("isolation", handmade.spec("hand-routed"), **params)
    assert result.status is Status.INCONCLUSIVE, result.evidence()
    assert result.diagnosis is not None and "hv:ra" in result.diagnosis
