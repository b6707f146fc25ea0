"""The docker-bridge check passes on a Docker host as dockerd sets it up and names the
fault when the isolation chains or the published port's DNAT rule are gone."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.results import failed_steps, top_cause

import netprobe
from netprobe.check import Status, reference_path, run_check

pytestmark = pytest.mark.root

DNAT = ["!", "-i", "docker0", "-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "DNAT",
        "--to-destination", "172.17.0.2:80"]


def test_docker_bridge_passes_on_its_reference_topology() -> None:
    result = run_check("docker-bridge")
    assert result.status is Status.PASS, result.evidence()
    names = [s.name for s in result.steps]
    assert len(names) == 12
    assert "198.51.100.1 → 198.51.100.2:8080/tcp: forwarded to 172.17.0.2:80" in names
    assert names[-2:] == ["c3:eth0 → 172.19.0.2: br-net1 and br-net2 are isolated",
                          "c4:eth0 → 172.18.0.2: br-net2 and br-net1 are isolated"]
    isolation = result.steps[-1].outcome
    assert isolation is not None and isolation.decided_by == "barrier"


def test_docker_bridge_fails_without_the_isolation_drops_and_names_them() -> None:
    with netprobe.build(netprobe.load(reference_path("docker-bridge.yaml"))) as topo:
        topo.run("dockerhost", ["iptables", "-F", "DOCKER-ISOLATION-STAGE-2"], check=True)
        result = run_check("docker-bridge", topo)
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
        topo.run("dockerhost", ["iptables", "-D", "DOCKER-ISOLATION-STAGE-1", "-i", "br-net1",
                                "!", "-o", "br-net1", "-j", "DOCKER-ISOLATION-STAGE-2"],
                 check=True)
        result = run_check("docker-bridge", topo)
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
                       outside="isp:eth0", public_ip="192.0.2.2", published="",
                       networks="web:eth0,db:eth0")
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 8
