"""A Docker-like host made by hand (containers as processes in namespaces of their own, on
two bridges, the ruleset dockerd writes) is discovered and probed: the published port
lands in its container, containers masquerade out, and the two networks are isolated."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from support.dockerhost import DockerHost, build_docker_host

from netprobe.diagnose import probe
from netprobe.topology import discover

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def dock() -> Iterator[DockerHost]:
    made = build_docker_host()
    try:
        yield made
    finally:
        made.remove()


def test_the_containers_are_found_by_their_processes(dock: DockerHost) -> None:
    spec = discover(names=[dock.host], pids=list(dock.pids.values()), rulesets=True)
    adopted = {h.adopt: h for h in spec.hosts}
    for pid in dock.pids.values():
        eth0 = adopted[f"pid:{pid}"].interface("eth0")
        assert eth0 is not None and eth0.observed is not None
        assert eth0.observed.kind == "veth"
        assert eth0.observed.peer is not None
        assert eth0.observed.peer.startswith(adopted[dock.host].name + ":")
    host = adopted[dock.host]
    assert {i.name for i in host.interfaces} >= {"docker0", "br-net2", "eth0"}
    assert host.observed is not None and "DOCKER-ISOLATION-STAGE-2" in (host.observed.ruleset or "")


def test_the_published_port_lands_in_its_container(dock: DockerHost) -> None:
    found = probe(dock.outside, "198.51.100.1", "tcp/8080")
    assert found.ok, found.render()
    assert found.result.ending.name == "DELIVERED_ANSWERED"
    rewrites = [r for hop in found.result.path for r in hop.rewrites]
    assert "dst 198.51.100.1 → 172.17.0.2" in rewrites, found.render()
    assert "dport 8080 → 80" in rewrites, found.render()
    web = f"pid:{dock.pids['web']}"
    assert found.result.where is not None
    assert found.result.where.split(":")[0] in _hosts_adopting(found.hosts, dock, web)


def test_a_container_masquerades_out(dock: DockerHost) -> None:
    found = probe(None, "198.51.100.2", "icmp", pid=dock.pids["app"])
    assert found.ok, found.render()
    rewrites = [r for hop in found.result.path for r in hop.rewrites]
    assert "src 172.17.0.3 → 198.51.100.1" in rewrites, found.render()


def test_the_networks_are_isolated_and_the_rule_is_named(dock: DockerHost) -> None:
    found = probe(None, "172.17.0.2", "tcp/80", pid=dock.pids["db"])
    assert not found.ok, found.render()
    assert found.result.ending.name == "DROPPED", found.render()
    assert found.explanation is not None and found.explanation.top is not None, found.render()
    # Docker 28 drops it in raw PREROUTING (what enters by other than docker0 for a docker0
    # container), before the DOCKER-ISOLATION chains are reached
    assert 'iifname != "docker0" ip daddr 172.17.0.2 drop` (chain ip raw PREROUTING' in (
        found.explanation.top.text
    ), found.render()


def test_the_cli_probes_from_a_container_process(dock: DockerHost) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from netprobe.cli import main; main()", "probe", "--pid",
         str(dock.pids["app"]), "172.19.0.2", "icmp", "--json", "-"],
        capture_output=True, text=True,
    )
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert document["ok"] is False and document["probe"]["ending"] == "DROPPED"


def _hosts_adopting(hosts: list[str], dock: DockerHost, adopt: str) -> set[str]:
    spec = discover(pids=[dock.pids["web"]], rulesets=False)
    return {h.name for h in spec.hosts if h.adopt == adopt} & set(hosts)
