"""The nat check passes on Proxmox NAT mode (and, through its parameters, on a docker0-style
host) and names the fault on sabotaged gateways."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from support.results import failed_steps, top_cause

import netprobe
from netprobe import Firewall, Spec
from netprobe.check import Status, reference_path, run_check

pytestmark = pytest.mark.root

MASQUERADE = reference_path("nat-gateway.nft").read_text()
PORT_FORWARD = """
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "uplink" tcp dport 8080 dnat to %s
    }
}
"""
DOCKER = {
    "inside": "c1:eth0",
    "vm": "",
    "outside": "outside:eth0",
    "public_ip": "198.51.100.2",
    "forward": "8080->c1:eth0:80",
}


def _gateway(tmp_path: Path, rules: str | None) -> Spec:
    """nat-gateway with pve's ruleset replaced (None: no ruleset at all)."""
    spec = netprobe.load(reference_path("nat-gateway.yaml"))
    firewall: tuple[Firewall, ...] = ()
    if rules is not None:
        (tmp_path / "pve.nft").write_text(rules)
        firewall = (Firewall("nft", str(tmp_path / "pve.nft")),)
    hosts = tuple(
        dataclasses.replace(h, firewall=firewall) if h.name == "pve" else h for h in spec.hosts
    )
    return dataclasses.replace(spec, hosts=hosts)


def _unmasqueraded(result: netprobe.Result) -> str:
    """A missing source NAT is a delivery, not a drop: the probe arrives un-NATed."""
    top = top_cause(result)
    assert top.startswith(
        "the probe was delivered, not dropped: it reached internet:eth0 with ip.src: "
        "expected 203.0.113.10, seen 10.10.10.101"
    ), top
    return top


def test_nat_passes_on_its_reference_topology() -> None:
    result = run_check("nat")
    assert result.status is Status.PASS, result.evidence()
    names = [s.name for s in result.steps]
    assert names == [
        "vm1:eth0 → 203.0.113.1: new flow leaves with source 203.0.113.10",
        "reply 203.0.113.1 → 203.0.113.10:40000: back to 10.10.10.101:40000",
        "vm1:eth0 → 203.0.113.1: established flow keeps 203.0.113.10:40000",
        "pve:tap100i0@vm → 203.0.113.1: new flow leaves with source 203.0.113.10",
        "reply 203.0.113.1 → 203.0.113.10:40001: back to 10.10.10.100:40001",
        "pve:tap100i0@vm → 203.0.113.1: established flow keeps 203.0.113.10:40001",
        "203.0.113.1 → 203.0.113.10:2222/tcp: forwarded to 10.10.10.101:22",
    ]
    first = result.steps[0].outcome
    assert first is not None and len(first.sent) == 3  # the first packet and two more


def test_nat_fails_without_any_ruleset_and_says_no_masquerade_rule(tmp_path: Path) -> None:
    result = run_check("nat", _gateway(tmp_path, None))
    assert result.status is Status.FAIL
    assert failed_steps(result)[0] == (
        "vm1:eth0 → 203.0.113.1: new flow leaves with source 203.0.113.10"
    )
    assert result.diagnosis is not None and result.diagnosis.startswith(
        "no masquerade/SNAT rule for 10.10.10.0/24 out of uplink on pve; no DNAT rule for tcp "
        "dport 2222 on pve"
    )
    assert "pve has no masquerade/SNAT rule" in _unmasqueraded(result)


def test_nat_fails_when_the_nat_table_is_flushed() -> None:
    with netprobe.build(netprobe.load(reference_path("nat-gateway.yaml"))) as topo:
        topo.run("pve", ["nft", "flush", "table", "ip", "nat"], check=True)
        result = run_check("nat", topo)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None
    assert "no masquerade/SNAT rule for 10.10.10.0/24 out of uplink" in result.diagnosis
    assert "pve has no masquerade/SNAT rule" in _unmasqueraded(result)


def test_nat_fails_with_ip_forward_off_and_says_so() -> None:
    with netprobe.build(netprobe.load(reference_path("nat-gateway.yaml"))) as topo:
        topo.run("pve", ["sysctl", "-w", "net.ipv4.ip_forward=0"], check=True)
        result = run_check("nat", topo)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None and result.diagnosis.startswith("ip_forward is 0 on pve")
    assert "never reached internet:eth0" in result.summary
    assert top_cause(result) == "forwarding disabled on pve (net.ipv4.ip_forward = 0)"


@pytest.mark.parametrize("oifname", ["vmbr1", "eth9"])
def test_nat_fails_with_masquerade_on_the_wrong_interface(tmp_path: Path, oifname: str) -> None:
    rules = MASQUERADE.replace('oifname "uplink"', f'oifname "{oifname}"')
    assert rules != MASQUERADE
    result = run_check("nat", _gateway(tmp_path, rules))
    assert result.status is Status.FAIL
    assert result.diagnosis == (
        f'the masquerade/SNAT rule for 10.10.10.0/24 on pve matches oifname "{oifname}", but '
        "traffic to 203.0.113.1 leaves through uplink: the rule never applies"
    )
    assert f'matches oifname "{oifname}", but the probe left by uplink' in _unmasqueraded(result)


def test_nat_port_forward_on_a_gateway_that_publishes_one(tmp_path: Path) -> None:
    spec = _gateway(tmp_path, MASQUERADE + PORT_FORWARD % "10.10.10.101:80")
    result = run_check("nat", spec, forward="8080->vm1:eth0:80")
    assert result.status is Status.PASS, result.evidence()
    assert (
        result.steps[-1].name == "203.0.113.1 → 203.0.113.10:8080/tcp: forwarded to 10.10.10.101:80"
    )


def test_nat_port_forward_to_the_wrong_port_is_named(tmp_path: Path) -> None:
    spec = _gateway(tmp_path, MASQUERADE + PORT_FORWARD % "10.10.10.101:81")
    result = run_check("nat", spec, forward="8080->vm1:eth0:80")
    assert result.status is Status.FAIL
    assert failed_steps(result) == [
        "203.0.113.1 → 203.0.113.10:8080/tcp: forwarded to 10.10.10.101:80"
    ]
    assert (
        result.diagnosis
        == "the DNAT rule for tcp dport 8080 on pve sends it to 10.10.10.101:81, "
        "not 10.10.10.101:80"
    )
    top = top_cause(result)
    assert top.startswith(
        "the probe was delivered, not dropped: it reached vm1:eth0 with l4.dport: "
        "expected 80, seen 81"
    ), top
    assert "tcp dport 8080 dnat to 10.10.10.101:81" in top


def test_nat_port_forward_missing_on_nat_gateway() -> None:
    result = run_check("nat", forward="8080->vm1:eth0:80")
    assert result.status is Status.FAIL
    assert result.diagnosis is not None
    assert result.diagnosis.startswith("no DNAT rule for tcp dport 8080 on pve")
    top = top_cause(result)
    assert top.startswith(
        "no DNAT on pve: the probe to 203.0.113.10:8080 was not rewritten to 10.10.10.101:80"
    ), top
    assert top.endswith("pve has no DNAT rule for dport 8080")


def test_nat_runs_on_a_docker_host_through_its_parameters() -> None:
    result = run_check("nat", reference_path("docker-bridge.yaml"), **DOCKER)
    assert result.status is Status.PASS, result.evidence()
    assert [s.name for s in result.steps][
        -1
    ] == "198.51.100.1 → 198.51.100.2:8080/tcp: forwarded to 172.17.0.2:80"


def test_nat_names_a_removed_docker_dnat_rule() -> None:
    with netprobe.build(netprobe.load(reference_path("docker-bridge.yaml"))) as topo:
        topo.run(
            "dockerhost",
            [
                "iptables",
                "-t",
                "nat",
                "-D",
                "DOCKER",
                "!",
                "-i",
                "docker0",
                "-p",
                "tcp",
                "-m",
                "tcp",
                "--dport",
                "8080",
                "-j",
                "DNAT",
                "--to-destination",
                "172.17.0.2:80",
            ],
            check=True,
        )
        result = run_check("nat", topo, **DOCKER)
    assert result.status is Status.FAIL
    assert result.diagnosis == (
        "no DNAT rule for tcp dport 8080 on dockerhost: nothing sends "
        "198.51.100.2:8080 to 172.17.0.2:80"
    )
    assert top_cause(result).startswith(
        "no DNAT on dockerhost: the probe to 198.51.100.2:8080 was not rewritten to "
        "172.17.0.2:80; dockerhost took it for itself (NO_SOCKET)"
    )


def test_a_malformed_forward_parameter_is_refused_before_any_step() -> None:
    with pytest.raises(netprobe.SpecError, match=r"parameter forward takes \[tcp/\|udp/\]PORT"):
        run_check("nat", forward="8080:c1")
