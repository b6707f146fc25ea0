"""The exposure check on exposure.yaml's LAN made by hand (plain `ip`, web's ruleset loaded
with `nft -f`) and adopted: healthy it passes; each sabotage of test_check_exposure.py,
made by hand too, fails with the same diagnosis."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from support.handmade_net import HandMade
from support.paths import EXAMPLES

import netprobe
from netprobe.check import Result, Status, run_check

pytestmark = [pytest.mark.root, pytest.mark.netprobe_requires("nmap")]

_STRAY = (
    "import socket; s = socket.socket(); s.bind(('0.0.0.0', 8080)); s.listen(); "
    "print('ready', flush=True); s.accept()"
)


def lan(net: HandMade) -> None:
    """client 10.0.2.10, fd00:2::10 ── eth0 [web] 10.0.2.80, fd00:2::80, exposure-web.nft."""
    net.ns("client")
    net.ns("web")
    net.veth("client", "eth0", "web", "eth0")
    net.addr("client", "eth0", "10.0.2.10/24", "fd00:2::10/64")
    net.addr("web", "eth0", "10.0.2.80/24", "fd00:2::80/64")
    net.nft("web", (EXAMPLES / "exposure-web.nft").read_text())


@pytest.fixture
def hand() -> Iterator[HandMade]:
    with HandMade() as net:
        lan(net)
        yield net


@contextmanager
def _stray(net: HandMade, code: str = _STRAY) -> Iterator[None]:
    proc = subprocess.Popen(["ip", "netns", "exec", net.hosts["web"], sys.executable, "-c", code],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield
    finally:
        proc.kill()
        proc.wait()


def _run(net: HandMade, **params: str) -> Result:
    with netprobe.build(net.spec("exposure-by-hand")) as topo:
        return run_check("exposure", topo, **params)


def test_exposure_passes_on_a_lan_made_by_hand(hand: HandMade) -> None:
    result = _run(hand)
    assert result.status is Status.PASS, result.evidence()
    assert [s.name for s in result.steps[:2]] == ["tcp/22 on 10.0.2.80: intended",
                                                  "tcp/80 on 10.0.2.80: intended"]
    assert len(result.steps) == 8


def test_a_stray_listener_started_by_hand_is_open_but_not_intended(hand: HandMade) -> None:
    with _stray(hand):
        result = _run(hand)
    assert result.status is Status.FAIL
    assert result.diagnosis == (
        "tcp/8080 open on web but not intended over IPv4 (listening on 0.0.0.0, reached by client)"
    )


def test_a_drop_inserted_by_hand_on_an_intended_port_is_unreachable(hand: HandMade) -> None:
    hand.exec("web", "nft", "insert", "rule", "inet", "filter", "input", "tcp", "dport", "22",
              "drop")
    result = _run(hand)
    assert result.status is Status.FAIL
    assert result.diagnosis == "tcp/22 intended but unreachable from client (listening, filtered)"


def test_an_intended_service_not_running_by_hand_is_unreachable(hand: HandMade) -> None:
    result = _run(hand, listen="tcp/22,udp/53,tcp/5432")
    assert result.status is Status.FAIL
    assert result.diagnosis == "tcp/80 intended but unreachable from client (not listening, closed)"


def test_a_listener_on_an_address_added_by_hand_is_not_passed(hand: HandMade) -> None:
    hand.addr("web", "eth0", "fd00:2::81/64")
    only_there = (
        "import socket; s = socket.socket(socket.AF_INET6); "
        "s.bind(('fd00:2::81', 8080)); s.listen(); print('ready', flush=True); s.accept()"
    )
    with _stray(hand, only_there):
        result = _run(hand)
    assert result.status is Status.INCONCLUSIVE, result.evidence()
    unproven = [s.name for s in result.steps if s.status is Status.INCONCLUSIVE]
    assert "tcp/8080 on fd00:2::81: not scanned" in unproven, result.evidence()
