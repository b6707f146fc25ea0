"""The selftest's network sabotaged three ways: each expectation the fault breaks FAILs,
and its explanation names the fault first, not what merely followed from it.

- the masquerade rule removed: ns2's probe reaches ns1 with its own source;
- IPv4 forwarding off on one interface of ns0 (as the selftest's router forwards: per
  interface, `ip_forward` left 0), and IPv6 forwarding off;
- a DNAT target port changed (10.0.1.99:2000 → :2001, while ns1 listens on 2000).

Every case first runs unsabotaged and PASSes, so a FAIL is the fault's doing.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import pytest
from peer.conftest import ruleset, sysctl

from netprobe.expect import ROUTED, HostOutcome, Match, Outcome, at, expect, expect_from_host
from netprobe.explain import Explanation, explain, explain_probe
from netprobe.topology import Topology
from netprobe.traffic import Template, udp

pytestmark = [pytest.mark.root, pytest.mark.sabotage]

MASQUERADE = """
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    %s
  }
}
"""
DNAT = """
table ip nat {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 10.0.2.1 udp dport 2000 dnat to 10.0.1.99:%d
  }
}
"""
# Causes the explanations gave before they read the kernel as it is (issue 14).
WRONG = ("no router", "net.ipv4.ip_forward", "no DNAT", "was not rewritten", "udp port 9")
ECHO = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind(('10.0.1.99', 2000))\n"
    "while True:\n"
    "    data, peer = s.recvfrom(2048)\n"
    "    s.sendto(data, peer)\n"
)


def _mac(topo: Topology, host: str, ifname: str) -> str:
    iface = topo.live(host).interface(topo.ifname(host, ifname))
    assert iface is not None and iface.mac
    return iface.mac


def _from_ns2(topo: Topology, dst: str, dport: int = 9, sport: int = 40000) -> Template:
    """A UDP probe put on ns2's wire for `dst`, by ns0 (ns2's gateway)."""
    return udp(_mac(topo, "ns2", "eth0"), _mac(topo, "ns0", "veth1"), "10.0.2.99", dst,
               sport=sport, dport=dport)  # fmt: skip


def _from_ns1(topo: Topology, dst: str) -> Template:
    return udp(_mac(topo, "ns1", "eth0"), _mac(topo, "ns0", "veth0"), "10.0.1.99", dst)


def _rewritten(**fields: object) -> Match:
    return Match(ROUTED.mask, fields)


def _explained(topo: Topology, frame: Template, port: str, outcome: Outcome) -> Explanation:
    assert not outcome.passed, str(outcome)
    found = explain(topo, frame, port, outcome)
    assert found.top is not None, found.render()
    return found


def _clean(found: Explanation, *also: str) -> None:
    """None of the causes is one of the wrong ones of old (nor of `also`)."""
    said = [c.text for c in found.causes]
    for wrong in (*WRONG, *also):
        assert not any(wrong in text for text in said), found.render()


# -- the masquerade rule removed ------------------------------------------------------


def test_masquerade_removed_is_named_at_ns1(nat: Topology) -> None:
    frame, want = _from_ns2(nat, "10.0.1.99"), _rewritten(**{"ip.src": "10.0.1.1"})
    with ruleset(nat, "ns0", MASQUERADE % "meta oif veth0 masquerade", "ip nat"):
        expect(nat, frame, "ns2:eth0", at("ns1:eth0"), match=want).assert_passed()
    with ruleset(nat, "ns0", MASQUERADE % "", "ip nat"):
        outcome = expect(nat, frame, "ns2:eth0", at("ns1:eth0"), match=want)
        found = _explained(nat, frame, "ns2:eth0", outcome)
    assert found.top is not None and found.top.text == (
        "the probe was delivered, not dropped: it reached ns1:eth0 with ip.src: expected "
        "10.0.1.1, seen 10.0.2.99 (ns0 has no masquerade/SNAT rule)"
    ), found.render()
    _clean(found, "NO_SOCKET", "forwarding disabled")


def test_masquerade_removed_from_the_stack(nat: Topology) -> None:
    want = _rewritten(**{"ip.src": "10.0.1.1"})
    with ruleset(nat, "ns0", MASQUERADE % "", "ip nat"):
        outcome = expect_from_host(nat, "ns2", "icmp", "10.0.1.99", where=at("ns1:eth0"),
                                   match=want, reply="echo-reply")  # fmt: skip
        assert not outcome.passed
        assert outcome.reason.startswith("the probe arrived altered at ns1:eth0: ip.src")
        found = explain_probe(nat, outcome.result, where=outcome.where, match=want)
        blind = explain_probe(nat, outcome.result)  # not told what was expected
    assert found.top is not None and found.top.text == (
        "the probe was delivered, not dropped: it reached ns1:eth0 with ip.src: expected "
        "10.0.1.1, seen 10.0.2.99 (ns0 has no masquerade/SNAT rule)"
    ), found.render()
    # the echo reply ns2's stack drops (no ping socket takes it) is not the probe's death
    for said in (found, blind):
        _clean(said, "NO_SOCKET", "forwarding disabled")


# -- forwarding off on one interface --------------------------------------------------


@pytest.mark.parametrize("sender,iif,dst,port", [
    ("ns2", "veth1", "10.0.1.99", "ns1:eth0"), ("ns1", "veth0", "10.0.2.99", "ns2:eth0"),
])  # fmt: skip
def test_forwarding_off_on_the_input_interface(
    nat: Topology, sender: str, iif: str, dst: str, port: str
) -> None:
    frame = (_from_ns2 if sender == "ns2" else _from_ns1)(nat, dst)
    expect(nat, frame, f"{sender}:eth0", at(port), match=ROUTED).assert_passed()
    key = f"net.ipv4.conf.{iif}.forwarding"
    with sysctl(nat, "ns0", key, "0"):
        assert nat.sysctl("ns0", "net.ipv4.ip_forward") == "0"  # the selftest's way
        outcome = expect(nat, frame, f"{sender}:eth0", at(port), match=ROUTED)
        found = _explained(nat, frame, f"{sender}:eth0", outcome)
    top = found.top
    assert top is not None
    assert top.text == f"forwarding disabled on ns0 for what arrives on {iif} ({key} = 0)"
    assert top.fix == f"in ns0: sysctl -w {key}=1 (it is meant to route)"
    assert any("IP_INADDRERRORS at ip_error" in e and f"ns0:{iif}" in e for e in top.evidence)
    _clean(found, "NO_SOCKET")


def test_forwarding_off_from_the_stack_the_same_every_time(nat: Topology) -> None:
    """The stack's probe, explained three times: the same causes and the same path (an
    echo reply or a barrier of the same length must not join it when it happens to be
    quick)."""
    with sysctl(nat, "ns0", "net.ipv4.conf.veth1.forwarding", "0"):
        outcome = expect_from_host(nat, "ns2", "icmp", "10.0.1.99", where=at("ns1:eth0"),
                                   reply="echo-reply")  # fmt: skip
        assert not outcome.passed
        runs = [explain_probe(nat, outcome.result) for _ in range(3)]
    first = runs[0]
    assert first.top is not None and first.top.text == (
        "forwarding disabled on ns0 for what arrives on veth1 "
        "(net.ipv4.conf.veth1.forwarding = 0)"
    ), first.render()
    _clean(first, "NO_SOCKET")
    assert [h.describe() for h in first.drops.path] == [
        "left by ns2:eth0", "arrived on ns0:veth1",
    ]  # fmt: skip
    for again in runs[1:]:
        assert [c.text for c in again.causes] == [c.text for c in first.causes]
        assert again.drops.path == first.drops.path


def test_ipv6_forwarding_off(nat: Topology) -> None:
    with sysctl(nat, "ns0", "net.ipv6.conf.all.forwarding", "0"):
        outcome = expect_from_host(nat, "ns2", "icmp", "dead:1::99", where=at("ns1:eth0"),
                                   reply="echo-reply")  # fmt: skip
        assert not outcome.passed
        found = explain_probe(nat, outcome.result)
    assert found.top is not None and found.top.text == (
        "IPv6 forwarding disabled on ns0 (net.ipv6.conf.all.forwarding = 0)"
    ), found.render()
    _clean(found, "NO_SOCKET")


def test_dnat_then_forwarding_off_is_forwarding(nat: Topology) -> None:
    """DNAT rewrote the probe, then ns0 could not forward it: IP_INADDRERRORS at ip_error
    proves the rewrite happened, so no "not rewritten" guess outranks it."""
    frame = _from_ns2(nat, "10.0.2.1", 2000)
    want = _rewritten(**{"ip.dst": "10.0.1.99"})
    with ruleset(nat, "ns0", DNAT % 2000, "ip nat"):
        expect(nat, frame, "ns2:eth0", at("ns1:eth0"), match=want).assert_passed()
        with sysctl(nat, "ns0", "net.ipv4.conf.veth1.forwarding", "0"):
            outcome = expect(nat, frame, "ns2:eth0", at("ns1:eth0"), match=want)
            found = _explained(nat, frame, "ns2:eth0", outcome)
    assert found.top is not None and found.top.text == (
        "forwarding disabled on ns0 for what arrives on veth1 "
        "(net.ipv4.conf.veth1.forwarding = 0)"
    ), found.render()
    _clean(found, "NO_SOCKET")


# -- a DNAT target port changed -------------------------------------------------------


@contextlib.contextmanager
def _echo_on_2000(topo: Topology) -> Iterator[None]:
    """A UDP echo server on 10.0.1.99:2000 in ns1, known to be bound before it is used."""
    server = topo.spawn("ns1", [sys.executable, "-c", ECHO])
    try:
        for _ in range(400):
            listed = topo.run("ns1", ["ss", "-Hnlu", "sport", "= :2000"])
            if "10.0.1.99:2000" in listed.stdout:
                break
            assert server.poll() is None, "the echo server died"
        else:
            raise AssertionError("the echo server never bound 10.0.1.99:2000")
        yield
    finally:
        server.kill()
        server.wait()


def test_dnat_port_changed_is_named_with_its_rule(nat: Topology) -> None:
    frame = _from_ns2(nat, "10.0.2.1", 2000)
    want = _rewritten(**{"ip.dst": "10.0.1.99", "l4.dport": 2000})
    with _echo_on_2000(nat):
        with ruleset(nat, "ns0", DNAT % 2000, "ip nat"):
            expect(nat, frame, "ns2:eth0", at("ns1:eth0"), match=want).assert_passed()
        # a new tuple: the same one again would follow its tracked connection, not the rule
        frame = _from_ns2(nat, "10.0.2.1", 2000, sport=40001)
        with ruleset(nat, "ns0", DNAT % 2001, "ip nat"):
            outcome = expect(nat, frame, "ns2:eth0", at("ns1:eth0"), match=want)
            found = _explained(nat, frame, "ns2:eth0", outcome)
    assert found.top is not None and found.top.text == (
        "the probe was delivered, not dropped: it reached ns1:eth0 with l4.dport: expected "
        "2000, seen 2001 (ns0's DNAT rule for dport 2000 is `ip daddr 10.0.2.1 udp dport "
        "2000 dnat to 10.0.1.99:2001`)"
    ), found.render()
    # nobody listens where the rewrite sent it: said of the address and port after DNAT
    closed = [c.text for c in found.causes if c.text.startswith("NO_SOCKET")]
    assert closed == [
        "NO_SOCKET on ns1: nothing listens on udp port 2001 of 10.0.1.99 "
        "(ns0's DNAT rewrote 10.0.2.1:2000 to it)"
    ], found.render()
    _clean(found, "forwarding disabled")


def _send_2000(topo: Topology, want: Match) -> HostOutcome:
    # the reply is not judged: a barrier the kernel answers may overtake the echo
    # server's answer on a loaded machine; where the probe arrives, and as what, is sure
    return expect_from_host(topo, "ns2", "udp", "10.0.2.1", 2000, where=at("ns1:eth0"),
                            match=want)  # fmt: skip


def test_dnat_port_changed_from_the_stack(nat: Topology) -> None:
    want = _rewritten(**{"ip.dst": "10.0.1.99", "l4.dport": 2000})
    with _echo_on_2000(nat):
        with ruleset(nat, "ns0", DNAT % 2000, "ip nat"):
            _send_2000(nat, want).assert_passed()
        with ruleset(nat, "ns0", DNAT % 2001, "ip nat"):
            outcome = _send_2000(nat, want)
            assert not outcome.passed
            found = explain_probe(nat, outcome.result)
            told = explain_probe(nat, outcome.result, where=outcome.where, match=want)
    closed = (
        "NO_SOCKET on ns1: nothing listens on udp port 2001 of 10.0.1.99 "
        "(ns0's DNAT rewrote 10.0.2.1:2000 to it)"
    )
    # not told what was expected, the kernel's own reason, after the rewrite, comes first
    assert found.top is not None and found.top.text == closed, found.render()
    assert any("dport=2000" in e and "sport=2001" in e for e in found.top.evidence)
    # told, the rewrite it saw at ns1 and the rule that made it
    assert told.top is not None and told.top.text == (
        "the probe was delivered, not dropped: it reached ns1:eth0 with l4.dport: expected "
        "2000, seen 2001 (ns0's DNAT rule for dport 2000 is `ip daddr 10.0.2.1 udp dport "
        "2000 dnat to 10.0.1.99:2001`)"
    ), told.render()
    assert closed in [c.text for c in told.causes]
    for said in (found, told):
        _clean(said, "forwarding disabled")
