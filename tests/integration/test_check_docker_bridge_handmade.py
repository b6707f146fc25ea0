"""The docker-bridge check (and nat through its parameters) on a Docker host made by hand,
as dockerd makes one: containers as namespaces on three bridges, veths, addresses, routes,
ip_forward and an iptables-restore ruleset of dockerd 28's shape, all with plain commands,
then adopted; the outside neighbour routes 172.17.0.0/16 via the host. Healthy it passes;
each sabotage of test_check_docker_bridge.py (and nat's removed Docker DNAT rule), made by
hand too, Docker 27's rules among them, fails with the same diagnosis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.handmade_net import HandMade
from support.results import failed_steps

import netprobe
from netprobe.check import Result, Status, reference_path, run_check

pytestmark = pytest.mark.root

DIRECT = "outside:eth0 → 172.17.0.2:80/tcp directly: never reaches c1:eth0"
OPEN = ("c1:80 reachable directly from outside: no raw-table rule drops traffic to 172.17.0.2 "
        "entering by other than docker0 (Docker < 28 or DOCKER_INSECURE_NO_IPTABLES_RAW); "
        'dockerhost let it through with filter DOCKER: "-A DOCKER -d 172.17.0.2/32 ! -i '
        'docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT"')
DNAT = ["!", "-i", "docker0", "-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "DNAT",
        "--to-destination", "172.17.0.2:80"]
CONTAINERS = {  # container → its bridge, MAC, address, gateway
    "c1": ("docker0", "02:42:ac:11:00:02", "172.17.0.2/16", "172.17.0.1"),
    "c2": ("docker0", "02:42:ac:11:00:03", "172.17.0.3/16", "172.17.0.1"),
    "c3": ("br-net1", "02:42:ac:12:00:02", "172.18.0.2/16", "172.18.0.1"),
    "c4": ("br-net2", "02:42:ac:13:00:02", "172.19.0.2/16", "172.19.0.1"),
}


def docker_host(net: HandMade, rules: str = "docker-bridge.rules") -> None:
    """docker-bridge.yaml, by hand: c1, c2 on docker0, c3 on br-net1, c4 on br-net2, the
    host's eth0 to `outside` (which routes 172.17.0.0/16 via it), `rules` restored with
    iptables-restore."""
    net.ns("dockerhost")
    net.ns("outside")
    for bridge in ("docker0", "br-net1", "br-net2"):
        net.bridge("dockerhost", bridge)
    for name, (bridge, mac, address, gateway) in CONTAINERS.items():
        net.ns(name)
        net.veth(name, "eth0", "dockerhost", f"veth{name}", up=False)
        net.ip(name, "link", "set", "eth0", "address", mac, "up")
        net.ip("dockerhost", "link", "set", f"veth{name}", "master", bridge, "up")
        net.addr(name, "eth0", address)
        net.route(name, "default", "via", gateway)
    for bridge, address in (("docker0", "172.17.0.1/16"), ("br-net1", "172.18.0.1/16"),
                            ("br-net2", "172.19.0.1/16")):
        net.addr("dockerhost", bridge, address)
    net.veth("dockerhost", "eth0", "outside", "eth0")
    net.addr("dockerhost", "eth0", "198.51.100.2/24")
    net.addr("outside", "eth0", "198.51.100.1/24")
    net.route("outside", "172.17.0.0/16", "via", "198.51.100.2")
    net.sysctl("dockerhost", "net.ipv4.ip_forward", "1")
    net.iptables_restore("dockerhost", reference_path(rules).read_text())


@pytest.fixture
def hand() -> Iterator[HandMade]:
    with HandMade() as net:
        docker_host(net)
        yield net


@pytest.fixture
def hand27() -> Iterator[HandMade]:
    """The same host with Docker 27's rules (no raw table)."""
    with HandMade() as net:
        docker_host(net, "docker-bridge-27.rules")
        yield net


def _run(net: HandMade, check: str = "docker-bridge", **params: str) -> Result:
    with netprobe.build(net.spec("docker-by-hand")) as topo:
        return run_check(check, topo, **params)


def test_docker_bridge_passes_on_a_docker_host_made_by_hand(hand: HandMade) -> None:
    result = _run(hand)
    assert result.status is Status.PASS, result.evidence()
    names = [s.name for s in result.steps]
    assert len(names) == 13
    assert names[10] == DIRECT
    assert result.steps[10].detail.endswith(
        'dropped on dockerhost by raw PREROUTING: "-A PREROUTING -d 172.17.0.2/32 ! -i docker0 '
        '-j DROP" (nft trace)'), result.steps[10].detail
    assert names[-2:] == ["c3:eth0 → 172.19.0.2: br-net1 and br-net2 are isolated",
                          "c4:eth0 → 172.18.0.2: br-net2 and br-net1 are isolated"]


def test_docker_27_rules_restored_by_hand_leave_a_container_port_open(hand27: HandMade) -> None:
    result = _run(hand27)
    assert result.status is Status.FAIL
    assert failed_steps(result) == [DIRECT]
    assert result.diagnosis == OPEN


def test_a_raw_rule_deleted_by_hand_is_named(hand: HandMade) -> None:
    hand.exec("dockerhost", "iptables", "-t", "raw", "-D", "PREROUTING", "-d", "172.17.0.2/32",
              "!", "-i", "docker0", "-j", "DROP")
    result = _run(hand)
    assert failed_steps(result) == [DIRECT]
    assert result.diagnosis == OPEN


def test_isolation_drops_flushed_by_hand_are_named(hand27: HandMade) -> None:
    hand27.exec("dockerhost", "iptables", "-F", "DOCKER-ISOLATION-STAGE-2")
    result = _run(hand27, direct="")
    assert result.status is Status.FAIL
    assert failed_steps(result) == ["c3:eth0 → 172.19.0.2: br-net1 and br-net2 are isolated",
                                    "c4:eth0 → 172.18.0.2: br-net2 and br-net1 are isolated"]
    assert result.diagnosis is not None
    assert ("br-net1 and br-net2 are not isolated: dockerhost lacks Docker's isolation rule "
            '"-A DOCKER-ISOLATION-STAGE-2 -o br-net2 -j DROP"') in result.diagnosis


def test_a_stage_1_jump_deleted_by_hand_is_named(hand27: HandMade) -> None:
    hand27.exec("dockerhost", "iptables", "-D", "DOCKER-ISOLATION-STAGE-1", "-i", "br-net1",
                "!", "-o", "br-net1", "-j", "DOCKER-ISOLATION-STAGE-2")
    result = _run(hand27, direct="")
    assert failed_steps(result) == ["c3:eth0 → 172.19.0.2: br-net1 and br-net2 are isolated"]
    assert result.diagnosis == (
        "br-net1 and br-net2 are not isolated: dockerhost lacks Docker's isolation rule "
        '"-A DOCKER-ISOLATION-STAGE-1 -i br-net1 ! -o br-net1 -j DOCKER-ISOLATION-STAGE-2"')


def test_a_dnat_rule_deleted_by_hand_is_named(hand: HandMade) -> None:
    hand.exec("dockerhost", "iptables", "-t", "nat", "-D", "DOCKER", *DNAT)
    result = _run(hand)
    assert result.status is Status.FAIL
    assert failed_steps(result) == [
        "198.51.100.1 → 198.51.100.2:8080/tcp: forwarded to 172.17.0.2:80"]
    assert result.diagnosis == ("no DNAT rule for tcp dport 8080 on dockerhost: nothing sends "
                                "198.51.100.2:8080 to 172.17.0.2:80")


def test_masquerade_flushed_by_hand_is_named(hand: HandMade) -> None:
    hand.exec("dockerhost", "iptables", "-t", "nat", "-F", "POSTROUTING")
    result = _run(hand, containers="c1:eth0")
    assert result.status is Status.FAIL
    assert result.diagnosis == "no masquerade/SNAT rule for 172.17.0.0/16 out of eth0 on dockerhost"


# -- nat, given a Docker host's names (test_check_nat.py's docker tests) ---------------------

DOCKER = {"inside": "c1:eth0", "vm": "", "outside": "outside:eth0",
          "public_ip": "198.51.100.2", "forward": "8080->c1:eth0:80"}


def test_nat_runs_on_a_docker_host_made_by_hand(hand: HandMade) -> None:
    result = _run(hand, "nat", **DOCKER)
    assert result.status is Status.PASS, result.evidence()
    assert result.steps[-1].name == "198.51.100.1 → 198.51.100.2:8080/tcp: forwarded to " \
        "172.17.0.2:80"


def test_nat_names_a_docker_dnat_rule_removed_by_hand(hand: HandMade) -> None:
    hand.exec("dockerhost", "iptables", "-t", "nat", "-D", "DOCKER", *DNAT)
    result = _run(hand, "nat", **DOCKER)
    assert result.status is Status.FAIL
    assert result.diagnosis == ("no DNAT rule for tcp dport 8080 on dockerhost: nothing sends "
                                "198.51.100.2:8080 to 172.17.0.2:80")
