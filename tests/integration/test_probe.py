"""probe() and expect_from_host() on real namespaces: each ending on a network sabotaged
to cause it, NAT shown hop by hop with its reply tied back, and OUTPUT-hook DNAT in the
sender's own namespace proven from its stack."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from subprocess import PIPE, Popen
from typing import Any

import pytest

import netprobe
from netprobe.expect import Ending, Match, Verdict, at, expect_from_host, nowhere, probe
from netprobe.topology import Topology

pytestmark = pytest.mark.root

# h1 ── r1 ── r2 ── r3 ── h2, routed; 10.0.5.0/24 exists nowhere.
CHAIN = """
name: chain
hosts:
  h1:
    interfaces: {eth0: {veth: r1:eth0, addresses: [10.0.1.2/24, fd00:1::2/64]}}
    routes: [{to: default, via: 10.0.1.1}, {to: default6, via: "fd00:1::1"}]
  r1:
    interfaces:
      eth0: {addresses: [10.0.1.1/24, fd00:1::1/64]}
      eth1: {veth: r2:eth0, addresses: [10.0.2.1/24]}
    routes: [{to: 10.0.3.0/24, via: 10.0.2.2}, {to: 10.0.4.0/24, via: 10.0.2.2},
             {to: 10.0.5.0/24, via: 10.0.2.2}]
    sysctls: {net.ipv4.ip_forward: 1, net.ipv6.conf.all.forwarding: 1}
  r2:
    interfaces:
      eth0: {addresses: [10.0.2.2/24]}
      eth1: {veth: r3:eth0, addresses: [10.0.3.1/24]}
    routes: [{to: 10.0.1.0/24, via: 10.0.2.1}, {to: 10.0.4.0/24, via: 10.0.3.2}]
    sysctls: {net.ipv4.ip_forward: 1}
  r3:
    interfaces:
      eth0: {addresses: [10.0.3.2/24]}
      eth1: {veth: h2:eth0, addresses: [10.0.4.1/24]}
    routes: [{to: default, via: 10.0.3.1}]
    sysctls: {net.ipv4.ip_forward: 1}
  h2:
    interfaces: {eth0: {addresses: [10.0.4.2/24]}}
    routes: [{to: default, via: 10.0.4.1}]
"""

# Prints "ready" once bound; a UDP one echoes what it gets.
LISTENER = """
import socket, sys
kind = socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[2])))
if kind == socket.SOCK_STREAM:
    s.listen(16)
print("ready", flush=True)
while True:
    if kind == socket.SOCK_STREAM:
        s.accept()[0].close()
    else:
        data, peer = s.recvfrom(4096)
        s.sendto(data, peer)
"""


@pytest.fixture
def chain() -> Iterator[Topology]:
    with netprobe.build(netprobe.loads(CHAIN)) as topo:
        yield topo


def _listen(topo: Topology, host: str, proto: str, port: int) -> Popen[Any]:
    proc = topo.spawn(host, [sys.executable, "-c", LISTENER, proto, str(port)], stdout=PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


def _nft(topo: Topology, host: str, ruleset: str) -> None:
    """Load a one-line ruleset ("...; rule; } }"): nft wants the last rule ended by a line."""
    text = ruleset.replace("; }", "\n}").replace("} }", "}\n}")
    topo.run(host, ["nft", "-f", "-"], input=text, check=True)


def _ended(result: netprobe.expect.ProbeResult, ending: Ending) -> None:
    assert result.ending is ending, result.render()
    assert result.to_dict()["ending"] == ending.name


def test_icmp_is_delivered_and_answered_hop_by_hop(chain: Topology) -> None:
    result = probe(chain, "h1", "10.0.4.2")
    _ended(result, Ending.DELIVERED_ANSWERED)
    assert result.ok and result.decided_by == "the socket's answer"
    ports = [(h.port, h.direction) for h in result.path]
    assert ports[0] == ("h1:eth0", "out") and ports[-1] == ("h2:eth0", "in")
    assert [h.ttl for h in result.path if h.direction == "in"] == [64, 63, 62, 61]
    assert result.reply_path[-1].port == "h1:eth0" and result.reply_path[-1].kind == "echo-reply"


def test_icmpv6_is_delivered_and_answered(chain: Topology) -> None:
    result = probe(chain, "h1", "fd00:1::1")
    _ended(result, Ending.DELIVERED_ANSWERED)


def test_tcp_to_a_listener_is_answered_with_a_syn_ack(chain: Topology) -> None:
    _listen(chain, "h2", "tcp", 80)
    result = probe(chain, "h1", "10.0.4.2", "tcp", 80)
    _ended(result, Ending.DELIVERED_ANSWERED)
    assert result.trace.isn is not None
    assert any(h.kind == "syn-ack" and h.port == "h1:eth0" for h in result.reply_path)


def test_udp_to_a_listener_is_answered(chain: Topology) -> None:
    _listen(chain, "h2", "udp", 5353)
    # the listener answers when it is scheduled: a barrier must not decide before that
    answered = probe(chain, "h1", "10.0.4.2", "udp", 5353, awaits_answer=True)
    _ended(answered, Ending.DELIVERED_ANSWERED)


def test_tcp_to_a_closed_port_is_refused_by_a_rst_tied_by_its_tuple(chain: Topology) -> None:
    result = probe(chain, "h1", "10.0.4.2", "tcp", 81)
    _ended(result, Ending.REFUSED)
    assert "RST from 10.0.4.2" in result.words and result.socket is not None
    assert result.socket.errno == "ECONNREFUSED"


def test_udp_to_a_closed_port_is_refused_by_icmp_port_unreachable(chain: Topology) -> None:
    result = probe(chain, "h1", "10.0.4.2", "udp", 9)
    _ended(result, Ending.REFUSED)
    assert "ICMP 3/3 from 10.0.4.2" in result.words


def test_an_nft_reject_refuses_with_the_router_named(chain: Topology) -> None:
    _nft(chain, "r2", "table inet t { chain f { type filter hook forward priority 0; "
                      "tcp dport 80 reject with icmpx admin-prohibited; } }")  # fmt: skip
    result = probe(chain, "h1", "10.0.4.2", "tcp", 80)
    _ended(result, Ending.REFUSED)
    assert "from 10.0.2.2" in result.words and result.socket is not None


def test_an_nft_drop_on_a_router_is_dropped_there_decided_by_a_barrier(chain: Topology) -> None:
    _nft(chain, "r2", "table inet t { chain f { type filter hook forward priority 0; "
                      "tcp dport 80 drop; } }")  # fmt: skip
    result = probe(chain, "h1", "10.0.4.2", "tcp", 80)
    _ended(result, Ending.DROPPED)
    assert result.where == "r2:eth0" and result.decided_by.startswith("a barrier")
    assert result.elapsed < 0.5


def test_forwarding_off_on_a_router_is_dropped_there(chain: Topology) -> None:
    chain.run("r2", ["sysctl", "-qw", "net.ipv4.ip_forward=0"], check=True)
    result = probe(chain, "h1", "10.0.4.2", "udp", 53)
    _ended(result, Ending.DROPPED)
    assert result.where == "r2:eth0" and result.decided_by.startswith("a barrier")


def test_no_route_on_the_sender_is_its_own_kernel_saying_so(chain: Topology) -> None:
    chain.run("h1", ["ip", "route", "del", "default"], check=True)
    result = probe(chain, "h1", "10.0.4.2", "tcp", 80)
    _ended(result, Ending.NO_ROUTE)
    assert result.socket is not None and result.socket.at_send
    assert result.socket.errno == "ENETUNREACH" and not result.path


def test_no_route_at_a_router_is_its_net_unreachable(chain: Topology) -> None:
    result = probe(chain, "h1", "10.9.9.9")
    _ended(result, Ending.NO_ROUTE)
    assert "ICMP 3/0 from 10.0.1.1" in result.words


def test_an_address_nobody_holds_is_no_neighbour(chain: Topology) -> None:
    result = probe(chain, "h1", "10.0.1.77", "udp", 53)
    _ended(result, Ending.NO_NEIGHBOUR)
    assert result.where == "h1:eth0" and "10.0.1.77" in result.words
    assert result.elapsed < 0.5


def test_two_routers_pointing_at_each_other_loop(chain: Topology) -> None:
    chain.run("r2", ["ip", "route", "add", "10.0.5.0/24", "via", "10.0.3.2"], check=True)
    result = probe(chain, "h1", "10.0.5.2")
    _ended(result, Ending.LOOPED)
    assert "time exceeded" in result.words


def test_masquerade_is_shown_and_the_reply_is_matched_with_nat_reversed(chain: Topology) -> None:
    _nft(chain, "r2", "table ip nat { chain p { type nat hook postrouting priority 100; "
                      "oifname eth1 masquerade; } }")  # fmt: skip
    result = probe(chain, "h1", "10.0.4.2", "udp", 9)
    _ended(result, Ending.REFUSED)  # the port unreachable, NAT undone on its way back
    rewritten = [h for h in result.path if h.rewrites]
    assert rewritten[0].port == "r2:eth1" and "src 10.0.1.2 → 10.0.3.1" in rewritten[0].rewrites
    back = result.reply_path
    assert back[0].dst == "10.0.3.1" and back[-1].dst == "10.0.1.2"


def test_dnat_on_a_router_shows_the_new_destination(chain: Topology) -> None:
    _listen(chain, "h2", "tcp", 80)
    _nft(chain, "r2", "table ip nat { chain p { type nat hook prerouting priority -100; "
                      "ip daddr 10.0.2.2 tcp dport 8080 dnat to 10.0.4.2:80; } }")  # fmt: skip
    result = probe(chain, "h1", "10.0.2.2", "tcp", 8080)
    _ended(result, Ending.DELIVERED_ANSWERED)
    assert result.path[-1].port == "h2:eth0" and result.path[-1].dport == 80
    assert any("dst 10.0.2.2 → 10.0.4.2" in r for h in result.path for r in h.rewrites)


OUTPUT_DNAT = (
    "table ip nat { chain o { type nat hook output priority -100; "
    "ip daddr 10.9.9.9 udp dport 53 dnat to 10.0.4.2:5353; } }"
)


def test_output_dnat_in_the_sender_is_proven_from_its_stack(chain: Topology) -> None:
    _listen(chain, "h2", "udp", 5353)
    _nft(chain, "h1", OUTPUT_DNAT)
    outcome = expect_from_host(
        chain, "h1", "udp", "10.9.9.9", 53,
        where=at("h2:eth0"), match=Match(dst="10.0.4.2", dport=5353), reply="answer",
    )  # fmt: skip
    assert outcome.verdict is Verdict.PASS, outcome.evidence()
    assert outcome.result.path[0].dst == "10.0.4.2"  # rewritten before it left h1


def test_without_the_output_dnat_the_expectation_fails_with_the_reason(chain: Topology) -> None:
    _listen(chain, "h2", "udp", 5353)
    outcome = expect_from_host(
        chain, "h1", "udp", "10.9.9.9", 53, where=at("h2:eth0"), reply="answer"
    )
    assert outcome.verdict is Verdict.FAIL, outcome.evidence()
    assert "never reached h2:eth0" in outcome.reason and "no route" in outcome.reason


def test_a_refusal_expected_from_the_stack_passes_and_an_answer_fails(chain: Topology) -> None:
    refused = expect_from_host(chain, "h1", "tcp", "10.0.4.2", 81, reply="rst")
    assert refused.passed, refused.evidence()
    answered = expect_from_host(chain, "h1", "tcp", "10.0.4.2", 81, reply="syn-ack")
    assert answered.verdict is Verdict.FAIL and "no syn-ack" in answered.reason


def test_a_probe_that_must_reach_nowhere_is_decided_by_the_barrier(chain: Topology) -> None:
    _nft(chain, "r2", "table inet t { chain f { type filter hook forward priority 0; "
                      "udp dport 53 drop; } }")  # fmt: skip
    among = ["r3:eth0", "h2:eth0"]
    outcome = expect_from_host(
        chain, "h1", "udp", "10.0.4.2", 53, where=nowhere(among=among), reply="none"
    )
    assert outcome.verdict is Verdict.PASS, outcome.evidence()
    leaked = expect_from_host(
        chain, "h1", "udp", "10.0.4.2", 54, where=nowhere(among=among), reply="none"
    )
    assert leaked.verdict is Verdict.FAIL and "reached r3:eth0" in leaked.reason
