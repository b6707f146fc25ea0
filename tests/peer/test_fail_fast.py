"""A positive expectation that cannot succeed fails as soon as that is proven, not at its
deadline: the router's forwarding off on one interface, or an nft drop rule, and the
drop trace says so in milliseconds. A probe that is merely slow (held in a tbf queue
behind big frames) still passes."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator

import pytest
from peer.conftest import ruleset, sysctl

from netprobe.errors import SetupError
from netprobe.expect import ROUTED, Outcome, Verdict, at, expect, expect_from_host
from netprobe.topology import Topology
from netprobe.traffic import Template, _topotrace, udp
from netprobe.traffic._port import ports

pytestmark = [pytest.mark.root, pytest.mark.sabotage]

DROP = """
table inet fastfail {
  chain forward { type filter hook forward priority 0; udp dport 9 drop; }
}
"""


def _probe(topo: Topology) -> Template:
    return udp(topo.mac("ns1:eth0"), topo.mac("ns0:veth0"), "10.0.1.99", "10.0.2.99")


def _expect(topo: Topology, timeout: float = 1.0) -> Outcome:
    return expect(topo, _probe(topo), "ns1:eth0", at("ns2:eth0"), match=ROUTED, timeout=timeout)


def test_control_passes(nat: Topology) -> None:
    outcome = _expect(nat)
    assert outcome.verdict is Verdict.PASS, outcome.evidence()
    assert outcome.decided_by == "positive match"


def test_forwarding_off_fails_at_once(nat: Topology) -> None:
    with sysctl(nat, "ns0", "net.ipv4.conf.veth0.forwarding", "0"):
        outcome = _expect(nat)
    assert outcome.verdict is Verdict.FAIL, outcome.evidence()
    assert "never reached ns2:eth0" in outcome.reason
    assert outcome.decided_by.startswith("the drop trace"), outcome.decided_by
    assert "kfree_skb reason" in outcome.decided_by and "ns0:veth0" in outcome.decided_by
    assert outcome.elapsed < 0.5, outcome.elapsed


def test_nft_drop_fails_at_once_with_the_reason(nat: Topology) -> None:
    with ruleset(nat, "ns0", DROP, "inet fastfail"):
        outcome = _expect(nat)
    assert outcome.verdict is Verdict.FAIL, outcome.evidence()
    assert "NETFILTER_DROP" in outcome.decided_by, outcome.decided_by
    assert outcome.elapsed < 0.5, outcome.elapsed


@contextlib.contextmanager
def _slow(topo: Topology) -> Iterator[None]:
    """ns0's way out to ns2 at 40 kbit/s, with room for the burst of one big frame."""
    dev = topo.ifname("ns0", "veth1")
    topo.run("ns0", ["tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", "40kbit",
                     "burst", "1600", "limit", "100000"], check=True)  # fmt: skip
    try:
        yield
    finally:
        topo.run("ns0", ["tc", "qdisc", "del", "dev", dev, "root"])


def _big(topo: Topology) -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    frame = Ether(src=topo.mac("ns1:eth0"), dst=topo.mac("ns0:veth0"))
    return bytes(frame / IP(src="10.0.1.99", dst="10.0.2.99") / UDP(dport=9) / (b"x" * 1400))


def test_a_slow_probe_is_not_failed_early(nat: Topology) -> None:
    _expect(nat).assert_passed()  # ns0 knows ns2's MAC: nothing waits for ARP below
    with _slow(nat):
        sender = ports(nat).sender("ns1:eth0")
        sender.send(_big(nat))  # takes the bucket's burst
        sender.send(_big(nat))  # waits ~280 ms for tokens, and the probe behind it
        outcome = _expect(nat, timeout=3.0)
    assert outcome.verdict is Verdict.PASS, outcome.evidence()
    assert outcome.decided_by == "positive match"
    assert outcome.elapsed > 0.1, outcome.elapsed  # it was late: the watch was on


@pytest.mark.parametrize("proto,port", [("icmp", None), ("udp", 9), ("tcp", 80)])
def test_from_the_hosts_stack_a_dropped_probe_fails_at_once(
    nat: Topology, proto: str, port: int | None
) -> None:
    """`expect_from_host` (`probe`) already decides by an echo barrier behind the probe."""
    with sysctl(nat, "ns0", "net.ipv4.conf.veth0.forwarding", "0"):
        outcome = expect_from_host(nat, "ns1", proto, "10.0.2.99", port, where=at("ns2:eth0"))
    assert outcome.verdict is Verdict.FAIL, outcome.evidence()
    assert outcome.result.decided_by.startswith("a barrier: an echo to 10.0.1.1 (ns0)")
    assert outcome.result.elapsed < 0.5, outcome.result.elapsed


def test_without_a_drop_trace_a_routed_drop_waits_its_deadline_and_says_why(
    nat: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: object) -> None:
        raise SetupError("tracefs is not mounted here")

    monkeypatch.setattr(_topotrace, "_cache", weakref.WeakKeyDictionary())
    monkeypatch.setattr(_topotrace.DropTrace, "open", refuse)
    with sysctl(nat, "ns0", "net.ipv4.conf.veth0.forwarding", "0"):
        outcome = _expect(nat, timeout=0.2)
    assert outcome.verdict is Verdict.FAIL, outcome.evidence()
    assert outcome.decided_by == "deadline (no drop trace: tracefs is not mounted here)"
