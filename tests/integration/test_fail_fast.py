"""Failing fast on a bridge: a probe dropped on its way from red to blue FAILs as soon
as that is proven (the drop trace, or, without one, a broadcast barrier sent behind it),
and a probe merely held in a slow queue is not failed early: it PASSes."""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

import netprobe
from netprobe.errors import SetupError
from netprobe.expect import Outcome, Verdict, at, expect
from netprobe.topology import Topology
from netprobe.traffic import _topotrace, udp
from netprobe.traffic._port import ports

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
DROP = """
table bridge fastfail {
  chain forward { type filter hook forward priority 0; udp dport 9 drop; }
}
"""


@pytest.fixture(scope="module")
def redblue() -> Iterator[Topology]:
    with netprobe.build(netprobe.load(str(ROOT / "examples/redblue.yaml"))) as topo:
        yield topo


@contextlib.contextmanager
def _dropping(topo: Topology) -> Iterator[None]:
    topo.run("switch", ["nft", "-f", "-"], input=DROP, check=True)
    try:
        yield
    finally:
        topo.run("switch", ["nft", "delete", "table", "bridge", "fastfail"])


@pytest.fixture
def no_tracefs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel without a usable drop trace (no tracefs, say)."""

    def refuse(self: object) -> None:
        raise SetupError("tracefs is not mounted here")

    monkeypatch.setattr(_topotrace, "_cache", weakref.WeakKeyDictionary())
    monkeypatch.setattr(_topotrace.DropTrace, "open", refuse)


def _expect(topo: Topology, timeout: float = 1.0) -> Outcome:
    probe = udp(topo.mac("red:eth0"), topo.mac("blue:eth0"), "10.0.0.1", "10.0.0.2")
    return expect(topo, probe, "red:eth0", at("blue:eth0"), timeout=timeout)


def test_on_time_the_watch_is_never_armed(redblue: Topology) -> None:
    outcome = _expect(redblue)
    assert outcome.verdict is Verdict.PASS and outcome.decided_by == "positive match"


def test_a_bridge_drop_fails_by_the_drop_trace(redblue: Topology) -> None:
    with _dropping(redblue):
        outcome = _expect(redblue)
    assert outcome.verdict is Verdict.FAIL, outcome.evidence()
    assert outcome.decided_by.startswith("the drop trace"), outcome.decided_by
    assert "NETFILTER_DROP" in outcome.decided_by
    assert outcome.elapsed < 0.5, outcome.elapsed


def test_without_a_drop_trace_the_barrier_decides(redblue: Topology, no_tracefs: None) -> None:
    with _dropping(redblue):
        outcome = _expect(redblue)
    assert outcome.verdict is Verdict.FAIL, outcome.evidence()
    assert outcome.decided_by == "a barrier sent behind the probe reached blue:eth0 first"
    assert outcome.elapsed < 0.5, outcome.elapsed


@contextlib.contextmanager
def _slow(topo: Topology, host: str, ifname: str) -> Iterator[None]:
    """`host:ifname` sends at 40 kbit/s, with room for the burst of one big frame."""
    dev = topo.ifname(host, ifname)
    topo.run(host, ["tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", "40kbit",
                    "burst", "1600", "limit", "100000"], check=True)  # fmt: skip
    try:
        yield
    finally:
        topo.run(host, ["tc", "qdisc", "del", "dev", dev, "root"])


def _big(topo: Topology) -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    frame = Ether(src=topo.mac("red:eth0"), dst=topo.mac("blue:eth0"))
    return bytes(frame / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(dport=9) / (b"x" * 1400))


@pytest.mark.parametrize("trace", ["drop trace", "barrier only"])
def test_a_slow_probe_still_passes(
    redblue: Topology, trace: str, request: pytest.FixtureRequest
) -> None:
    if trace == "barrier only":
        request.getfixturevalue("no_tracefs")
    with _slow(redblue, "switch", "blue"):
        sender = ports(redblue).sender("red:eth0")
        sender.send(_big(redblue))  # takes the bucket's burst
        sender.send(_big(redblue))  # waits ~280 ms for tokens, and the probe behind it
        start = time.perf_counter()
        outcome = _expect(redblue, timeout=3.0)
    assert outcome.verdict is Verdict.PASS, outcome.evidence()
    assert outcome.decided_by == "positive match"
    assert time.perf_counter() - start > 0.1  # it was late: the watch was on


def test_the_watch_is_removed_with_its_topology() -> None:
    from netprobe.traffic._tracefs import instance_names

    with netprobe.build(netprobe.load(str(ROOT / "examples/redblue.yaml"))) as topo:
        with _dropping(topo):
            assert _expect(topo).decided_by.startswith("the drop trace")
        held = [n for n in _topotrace.held_instances() if n.startswith(f"netprobe-{topo.runid}-")]
        assert len(held) == 1 and held[0] in instance_names(), held
        mine = held[0]
        assert _expect(topo).verdict is Verdict.PASS  # tracing is off between late probes
    assert mine not in instance_names()


def test_a_held_probe_is_left_to_its_deadline_which_says_why(redblue: Topology) -> None:
    """Neither the twin (queued, its buffer alive) nor the barrier (queued behind it)
    ends the wait: a short deadline does, and names what was still in flight."""
    with _slow(redblue, "switch", "blue"):
        sender = ports(redblue).sender("red:eth0")
        sender.send(_big(redblue))
        sender.send(_big(redblue))
        outcome = _expect(redblue, timeout=0.1)
    assert outcome.verdict is Verdict.FAIL, outcome.evidence()
    assert outcome.decided_by == "deadline (the twin probe sent under the drop trace had not ended)"
