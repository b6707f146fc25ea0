"""The exposure check passes when what is reachable is what is intended, and names the
port, the host and how it is (un)reachable when it is not."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.paths import EXAMPLES

import netprobe
from netprobe.check import Status, run_check

pytestmark = pytest.mark.root


# A stray service, as a user's forgotten process would be: IPv4 only, every address.
_STRAY = (
    "import socket; s = socket.socket(); s.bind(('0.0.0.0', 8080)); s.listen(); "
    "print('ready', flush=True); s.accept()"
)


@contextmanager
def _stray_listener(topo: netprobe.Topology, host: str, code: str = _STRAY) -> Iterator[None]:
    ns = topo.namespace(host)
    assert ns is not None
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield
    finally:
        proc.kill()
        proc.wait()


def test_exposure_passes_on_its_reference_topology() -> None:
    result = run_check("exposure")
    assert result.status is Status.PASS, result.evidence()
    assert [s.name for s in result.steps[:4]] == [
        "tcp/22 on 10.0.2.80: intended",
        "tcp/80 on 10.0.2.80: intended",
        "tcp/5432 on 10.0.2.80: not intended",
        "udp/53 on 10.0.2.80: intended",
    ]
    assert len(result.steps) == 8  # and the same over IPv6
    assert "filtered; web is listening on every address" in result.steps[2].detail


def test_an_extra_listener_is_open_but_not_intended() -> None:
    with (
        netprobe.build(netprobe.load(EXAMPLES / "exposure.yaml")) as topo,
        _stray_listener(topo, "web"),
    ):
        result = run_check("exposure", topo)
    assert result.status is Status.FAIL
    assert [s.name for s in result.steps if s.status is Status.FAIL] == [
        "tcp/8080 on 10.0.2.80: not intended"
    ]
    assert result.diagnosis == (
        "tcp/8080 open on web but not intended over IPv4 (listening on 0.0.0.0, reached by client)"
    )


def test_a_firewall_drop_on_an_intended_port_is_unreachable() -> None:
    with netprobe.build(netprobe.load(EXAMPLES / "exposure.yaml")) as topo:
        topo.run(
            "web",
            ["nft", "insert", "rule", "inet", "filter", "input", "tcp", "dport", "22", "drop"],
            check=True,
        )
        result = run_check("exposure", topo)
    assert result.status is Status.FAIL
    assert result.diagnosis == "tcp/22 intended but unreachable from client (listening, filtered)"
    assert result.explanation[0]["text"].startswith("nft rule `tcp dport 22 drop` (chain inet "
                                                    "filter input")


def test_an_intended_service_that_is_not_running_is_unreachable() -> None:
    result = run_check("exposure", listen="tcp/22,udp/53,tcp/5432")  # http is not started
    assert result.status is Status.FAIL
    assert result.diagnosis == "tcp/80 intended but unreachable from client (not listening, closed)"
    assert result.explanation[0]["text"] == (
        "NO_SOCKET on web: nothing listens on tcp port 80 of 10.0.2.80")


def test_exposure_runs_on_a_users_topology(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "- {proto: tcp, port: 2222, from: [10.1.0.0/24, 'fd01::/64'], "
        "expect: accept}\n- {proto: udp, port: 161, expect: drop}\n"
    )
    result = run_check(
        "exposure",
        EXAMPLES / "router.yaml",
        host="router",
        neighbour="left",
        policy=str(policy),
        listen="tcp/2222",
    )
    assert result.status is Status.PASS, result.evidence()
    assert [s.name for s in result.steps] == [
        "tcp/2222 on 10.1.0.1: intended",
        "udp/161 on 10.1.0.1: not intended",
        "tcp/2222 on fd01::1: intended",
        "udp/161 on fd01::1: not intended",
    ]
    # and from the other side, where the policy does not mean ssh to be reachable
    result = run_check(
        "exposure",
        EXAMPLES / "router.yaml",
        host="router",
        neighbour="right",
        policy=str(policy),
        listen="tcp/2222",
    )
    assert result.status is Status.FAIL
    assert result.diagnosis == (
        "tcp/2222 open on router but not intended (listening on every address, reached by right)"
    )


def test_a_bad_listen_parameter_is_bad_input() -> None:
    with pytest.raises(netprobe.SpecError, match="listen takes services like tcp/22,udp/53"):
        run_check("exposure", listen="http")


def test_a_listener_on_an_address_the_scan_did_not_cover_is_not_passed() -> None:
    only_there = (
        "import socket; s = socket.socket(socket.AF_INET6); "
        "s.bind(('fd00:2::81', 8080)); s.listen(); print('ready', flush=True); "
        "s.accept()"
    )
    with netprobe.build(netprobe.load(EXAMPLES / "exposure.yaml")) as topo:
        topo.run("web", ["ip", "addr", "add", "fd00:2::81/64", "dev", "eth0", "nodad"], check=True)
        with _stray_listener(topo, "web", only_there):
            result = run_check("exposure", topo)
    assert result.status is Status.INCONCLUSIVE, result.evidence()
    unproven = [s.name for s in result.steps if s.status is Status.INCONCLUSIVE]
    assert "tcp/8080 on fd00:2::81: not scanned" in unproven, result.evidence()
