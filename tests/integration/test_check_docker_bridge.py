"""The docker-bridge check passes on a Docker host as dockerd 28 sets it up and names the
fault when the isolation chains, the published port's DNAT rule or the raw-table rule that
keeps a routing neighbour from a container's port are gone (Docker 27's rules among them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.results import failed_steps, top_cause

import netprobe
from netprobe.check import Status, reference_path, run_check
from netprobe.topology import Topology

pytestmark = pytest.mark.root

DNAT = ["!", "-i", "docker0", "-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "DNAT",
        "--to-destination", "172.17.0.2:80"]
RAW_C1 = ["-d", "172.17.0.2/32", "!", "-i", "docker0", "-j", "DROP"]
DIRECT = "outside:eth0 → 172.17.0.2:80/tcp directly: never reaches c1:eth0"
OPEN = ("c1:80 reachable directly from outside: no raw-table rule drops traffic to 172.17.0.2 "
        "entering by other than docker0 (Docker < 28 or DOCKER_INSECURE_NO_IPTABLES_RAW); "
        'dockerhost let it through with filter DOCKER: "-A DOCKER -d 172.17.0.2/32 ! -i '
        'docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT"')


def docker27(topo: Topology) -> None:
    """The host's rules as Docker 27 writes them: no raw table, isolation by the
    DOCKER-ISOLATION chains alone."""
    rules = reference_path("docker-bridge-27.rules").read_text()
    topo.run("dockerhost", ["iptables-restore"], input=rules, check=True)
    topo.run("dockerhost", ["iptables", "-t", "raw", "-F"], check=True)


def test_docker_bridge_passes_on_its_reference_topology() -> None:
    result = run_check("docker-bridge")
    assert result.status is Status.PASS, result.evidence()
    names = [s.name for s in result.steps]
    assert len(names) == 13
    assert names[9:11] == ["198.51.100.1 → 198.51.100.2:8080/tcp: forwarded to 172.17.0.2:80",
                           DIRECT]
    assert names[-2:] == ["c3:eth0 → 172.19.0.2: br-net1 and br-net2 are isolated",
                          "c4:eth0 → 172.18.0.2: br-net2 and br-net1 are isolated"]
    isolation = result.steps[-1].outcome
    assert isolation is not None and isolation.decided_by == "barrier"
    direct = result.steps[10]
    assert direct.outcome is not None and direct.outcome.decided_by == "barrier"
    assert direct.detail.endswith('dropped on dockerhost by raw PREROUTING: "-A PREROUTING -d '
                                  '172.17.0.2/32 ! -i docker0 -j DROP" (nft trace)'), direct.detail


def test_docker_27_rules_leave_a_container_port_open_to_a_routing_neighbour() -> None:
    with netprobe.build(netprobe.load(reference_path("docker-bridge.yaml"))) as topo:
        docker27(topo)
        result = run_check("docker-bridge", topo)
    assert result.status is Status.FAIL
    assert failed_steps(result) == [DIRECT]
    assert result.diagnosis == OPEN
    top = top_cause(result)
    assert top.startswith("the probe was delivered, not dropped: it reached c1:eth0")
    # routed by dockerhost: its bridges never saw the probe's first MAC (its own eth0's)
    assert "FDB" not in top and "floods" not in top, top


def test_a_docker_28_raw_rule_removed_for_one_container_is_named() -> None:
    with netprobe.build(netprobe.load(reference_path("docker-bridge.yaml"))) as topo:
        topo.run("dockerhost", ["iptables", "-t", "raw", "-D", "PREROUTING", *RAW_C1],
                 check=True)
        result = run_check("docker-bridge", topo)
        unpublished = run_check("docker-bridge", topo, direct="outside:eth0->c1:eth0:22")
    assert failed_steps(result) == [DIRECT]
    assert result.diagnosis == OPEN
    # an unpublished port stays shut: Docker 28's DOCKER chain ends with a drop per bridge
    assert unpublished.status is Status.PASS, unpublished.evidence()
    assert unpublished.steps[10].detail.endswith(
        'dropped on dockerhost by filter DOCKER: "-A DOCKER ! -i docker0 -o docker0 -j DROP" '
        "(nft trace)"), unpublished.steps[10].detail


def test_the_direct_step_takes_another_port_or_none() -> None:
    with netprobe.build(netprobe.load(reference_path("docker-bridge.yaml"))) as topo:
        other = run_check("docker-bridge", topo, direct="outside:eth0->c1:eth0:22")
        none = run_check("docker-bridge", topo, direct="")
    assert other.status is Status.PASS, other.evidence()
    assert other.steps[10].name == ("outside:eth0 → 172.17.0.2:22/tcp directly: never reaches "
                                    "c1:eth0")
    assert 'raw PREROUTING: "-A PREROUTING -d 172.17.0.2/32' in other.steps[10].detail
    assert none.status is Status.PASS and len(none.steps) == 12


def test_a_neighbour_routing_the_containers_elsewhere_leaves_the_direct_step_unproven(
) -> None:
    """outside reaches 172.17.0.0/16 on its own link, not via the Docker host: its probe
    never reaches c1 whatever the Docker host's rules, so that proves nothing."""
    with netprobe.build(netprobe.load(reference_path("docker-bridge.yaml"))) as topo:
        topo.run("outside", ["ip", "route", "replace", "172.17.0.0/16", "dev", "eth0"],
                 check=True)
        docker27(topo)  # c1:80 open to a neighbour that does route via the host
        result = run_check("docker-bridge", topo)
    step = next(s for s in result.steps if "directly" in s.name)
    assert result.status is Status.INCONCLUSIVE, result.evidence()
    assert step.status is Status.INCONCLUSIVE, step
    assert "outside's route to 172.17.0.2 is on-link by eth0, not via dockerhost" in step.detail


def test_docker_28_keeps_the_networks_apart_without_the_isolation_drops() -> None:
    """Its raw rule per container drops what enters from another bridge first."""
    with netprobe.build(netprobe.load(reference_path("docker-bridge.yaml"))) as topo:
        topo.run("dockerhost", ["iptables", "-F", "DOCKER-ISOLATION-STAGE-2"], check=True)
        result = run_check("docker-bridge", topo)
    assert result.status is Status.PASS, result.evidence()


def test_docker_bridge_fails_without_the_isolation_drops_and_names_them() -> None:
    with netprobe.build(netprobe.load(reference_path("docker-bridge.yaml"))) as topo:
        docker27(topo)
        topo.run("dockerhost", ["iptables", "-F", "DOCKER-ISOLATION-STAGE-2"], check=True)
        result = run_check("docker-bridge", topo, direct="")
    assert result.status is Status.FAIL
    assert failed_steps(result) == ["c3:eth0 → 172.19.0.2: br-net1 and br-net2 are isolated",
                                    "c4:eth0 → 172.18.0.2: br-net2 and br-net1 are isolated"]
    assert result.diagnosis is not None
    assert ("br-net1 and br-net2 are not isolated: dockerhost lacks Docker's isolation rule "
            '"-A DOCKER-ISOLATION-STAGE-2 -o br-net2 -j DROP"') in result.diagnosis
    assert '"-A DOCKER-ISOLATION-STAGE-2 -o br-net1 -j DROP"' in result.diagnosis
    top = top_cause(result)  # a leak between the networks is a delivery, not a drop
    assert top.startswith("the probe was delivered, not dropped: it reached c4:eth0"), top
    assert "dockerhost's ruleset let it through" in top


def test_docker_bridge_names_a_missing_stage_1_jump() -> None:
    with netprobe.build(netprobe.load(reference_path("docker-bridge.yaml"))) as topo:
        docker27(topo)
        topo.run("dockerhost", ["iptables", "-D", "DOCKER-ISOLATION-STAGE-1", "-i", "br-net1",
                                "!", "-o", "br-net1", "-j", "DOCKER-ISOLATION-STAGE-2"],
                 check=True)
        result = run_check("docker-bridge", topo, direct="")
    assert failed_steps(result) == ["c3:eth0 → 172.19.0.2: br-net1 and br-net2 are isolated"]
    assert result.diagnosis == (
        "br-net1 and br-net2 are not isolated: dockerhost lacks Docker's isolation rule "
        '"-A DOCKER-ISOLATION-STAGE-1 -i br-net1 ! -o br-net1 -j DOCKER-ISOLATION-STAGE-2"')
    top = top_cause(result)
    assert top.startswith("the probe was delivered, not dropped: it reached c4:eth0"), top


def test_docker_bridge_fails_without_the_dnat_rule_and_names_it() -> None:
    with netprobe.build(netprobe.load(reference_path("docker-bridge.yaml"))) as topo:
        topo.run("dockerhost", ["iptables", "-t", "nat", "-D", "DOCKER", *DNAT], check=True)
        result = run_check("docker-bridge", topo)
    assert result.status is Status.FAIL
    assert failed_steps(result) == [
        "198.51.100.1 → 198.51.100.2:8080/tcp: forwarded to 172.17.0.2:80"
    ]
    assert result.diagnosis == ("no DNAT rule for tcp dport 8080 on dockerhost: nothing sends "
                                "198.51.100.2:8080 to 172.17.0.2:80")
    assert top_cause(result).startswith(
        "no DNAT on dockerhost: the probe to 198.51.100.2:8080 was not rewritten to "
        "172.17.0.2:80")


def test_docker_bridge_fails_without_masquerade() -> None:
    with netprobe.build(netprobe.load(reference_path("docker-bridge.yaml"))) as topo:
        topo.run("dockerhost", ["iptables", "-t", "nat", "-F", "POSTROUTING"], check=True)
        result = run_check("docker-bridge", topo, containers="c1:eth0")
    assert result.status is Status.FAIL
    assert result.diagnosis == "no masquerade/SNAT rule for 172.17.0.0/16 out of eth0 on dockerhost"
    top = top_cause(result)
    assert top.startswith("the probe was delivered, not dropped: it reached outside:eth0 with "
                          "ip.src: expected 198.51.100.2, seen 172.17.0.2"), top
    assert "dockerhost has no masquerade/SNAT rule" in top


def test_docker_bridge_runs_on_a_users_topology(tmp_path: Path) -> None:
    """A user's host: other names, one container per network, no published port."""
    rules = reference_path("docker-bridge.rules").read_text()
    (tmp_path / "site.rules").write_text(rules.replace("docker0", "dock0"))
    (tmp_path / "site.yaml").write_text("""
name: site
hosts:
  web:
    interfaces:
      eth0: {veth: host:vweb, addresses: [172.18.0.5/16]}
    routes: [{to: default, via: 172.18.0.1}]
  db:
    interfaces:
      eth0: {veth: host:vdb, addresses: [172.19.0.5/16]}
    routes: [{to: default, via: 172.19.0.1}]
  host:
    interfaces:
      dock0: {bridge: {}, addresses: [172.17.0.1/16]}
      br-net1: {bridge: {}, addresses: [172.18.0.1/16]}
      br-net2: {bridge: {}, addresses: [172.19.0.1/16]}
      vweb: {master: br-net1}
      vdb: {master: br-net2}
      wan: {veth: isp:eth0, addresses: [192.0.2.2/24]}
    sysctls: {net.ipv4.ip_forward: 1}
    firewall: {iptables: site.rules}
  isp:
    interfaces:
      eth0: {addresses: [192.0.2.1/24]}
""")
    result = run_check("docker-bridge", tmp_path / "site.yaml", containers="web:eth0,db:eth0",
                       outside="isp:eth0", public_ip="192.0.2.2", published="", direct="",
                       networks="web:eth0,db:eth0")
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 8
