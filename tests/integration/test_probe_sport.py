"""Probes from a chosen source port (`sport=`), and a UDP answer awaited from a program
that answers later than a barrier comes back."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from support.listener import listening

import netprobe
from netprobe.errors import TrafficError
from netprobe.expect import Ending, Match, at, expect_from_host, probe
from netprobe.topology import Topology

pytestmark = pytest.mark.root

PAIR = """
name: sport-pair
hosts:
  a: {interfaces: {eth0: {veth: b:eth0, addresses: [10.0.9.1/24]}}}
  b: {interfaces: {eth0: {addresses: [10.0.9.2/24]}}}
"""
# Answers each datagram 200 ms late: a program busy elsewhere (the delay is its behaviour).
LATE = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7000))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(4096)
    time.sleep(0.2)
    s.sendto(data, peer)
"""


@pytest.fixture(scope="module")
def pair() -> Iterator[Topology]:
    with netprobe.build(netprobe.loads(PAIR)) as topo:
        yield topo


@pytest.mark.parametrize("proto,port", [("udp", 5353), ("tcp", 8080)])
def test_a_probe_leaves_from_the_port_chosen(pair: Topology, proto: str, port: int) -> None:
    with listening(pair, "b", proto, port):
        outcome = expect_from_host(
            pair, "a", proto, "10.0.9.2", port,
            sport=4321, where=at("b:eth0"), match=Match(sport=4321), reply="answer",
        )  # fmt: skip
    outcome.assert_passed()
    assert outcome.result.sport == 4321 and outcome.result.path[0].sport == 4321


def test_the_match_sees_a_port_other_than_the_one_chosen(pair: Topology) -> None:
    with listening(pair, "b", "udp", 5353):
        outcome = expect_from_host(
            pair, "a", "udp", "10.0.9.2", 5353, sport=4321, where=at("b:eth0"),
            match=Match(sport=4322),
        )  # fmt: skip
    assert not outcome.passed and "l4.sport: expected 4322, seen 4321" in outcome.reason


def test_a_source_port_in_use_or_for_icmp_is_refused(pair: Topology) -> None:
    with listening(pair, "a", "udp", 4321), pytest.raises(TrafficError, match="port 4321"):
        probe(pair, "a", "10.0.9.2", "udp", 5353, sport=4321)
    with pytest.raises(TrafficError, match="for tcp and udp"):
        probe(pair, "a", "10.0.9.2", "icmp", sport=4321)


def test_a_late_udp_answer_is_awaited_not_overtaken_by_a_barrier(pair: Topology) -> None:
    late = pair.spawn("b", [sys.executable, "-S", "-c", LATE], stdout=subprocess.PIPE)
    try:
        assert late.stdout is not None and late.stdout.readline().strip() == b"ready"
        unawaited = probe(pair, "a", "10.0.9.2", "udp", 7000)  # a barrier decides it
        assert unawaited.ending is Ending.DELIVERED, unawaited.render()
        outcome = expect_from_host(pair, "a", "udp", "10.0.9.2", 7000, reply="answer")
    finally:
        late.kill()
        late.wait()
    outcome.assert_passed()
    assert outcome.result.decided_by == "the socket's answer"
