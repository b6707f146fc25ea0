"""Following a stack-sent probe through frames (no sockets): copies by mark, replies by
the reversed 5-tuple (through NAT), ICMP errors by the quoted header, and the endings."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from netprobe.expect import Ending
from netprobe.expect._ending import classify
from netprobe.expect._path import Mark, follow
from netprobe.traffic import new_nonce
from netprobe.traffic._capture import Captured
from netprobe.traffic._stack import SocketReport

E = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def seen(port: str, packet: object, t: float, out: bool = False) -> Captured:
    return Captured(port, bytes(packet), t, out)  # type: ignore[call-overload]


def syn(src: str, sport: int, dst: str, seq: int = 777, ttl: int = 64) -> object:
    return E / IP(src=src, dst=dst, ttl=ttl) / TCP(sport=sport, dport=80, flags="S", seq=seq)


def test_a_tcp_probe_is_known_by_its_sequence_through_snat_and_its_rst_by_the_tuple() -> None:
    mark = Mark("tcp", 4, sport=45000, sender="h1")
    frames = [
        seen("h1:eth0", syn("10.0.1.2", 45000, "10.0.4.2"), 1.0, out=True),
        seen("r:eth1", syn("10.0.3.1", 61000, "10.0.4.2", ttl=63), 1.1, out=True),  # masqueraded
        seen("r:eth1", E / IP(src="10.0.4.2", dst="10.0.3.1") / TCP(
            sport=80, dport=61000, flags="RA", seq=0, ack=778), 1.2),
        seen("h1:eth0", E / IP(src="10.0.4.2", dst="10.0.1.2") / TCP(
            sport=80, dport=45000, flags="RA", seq=0, ack=778), 1.3),
        seen("x:eth0", syn("10.0.9.9", 45000, "10.0.4.2", seq=5), 1.4),  # not ours: another seq
    ]  # fmt: skip
    trace = follow(mark, frames)
    assert trace.isn == 777 and [c.port for c in trace.copies] == ["h1:eth0", "r:eth1"]
    assert [(r.port, r.kind) for r in trace.replies] == [("r:eth1", "rst"), ("h1:eth0", "rst")]
    verdict = classify(trace, None, sender="h1", proto="tcp", version=4)
    assert verdict.ending is Ending.REFUSED and verdict.where == "r:eth1"


def test_a_segment_of_the_same_tuple_that_does_not_answer_the_syn_is_no_reply() -> None:
    mark = Mark("tcp", 4, sport=45000, sender="h1")
    stray = E / IP(src="10.0.4.2", dst="10.0.1.2") / TCP(sport=80, dport=45000, flags="RA", ack=5)
    trace = follow(mark, [seen("h1:eth0", syn("10.0.1.2", 45000, "10.0.4.2"), 1.0, True),
                          seen("h1:eth0", stray, 1.1)])  # fmt: skip
    assert trace.replies == []


def test_an_icmp_error_is_tied_by_its_quoted_header() -> None:
    nonce = new_nonce()
    probe = IP(src="10.0.1.2", dst="10.0.4.2") / UDP(sport=4000, dport=9) / Raw(nonce)
    error = E / IP(src="10.0.4.2", dst="10.0.1.2") / ICMP(type=3, code=3) / bytes(probe)[:28]
    mark = Mark("udp", 4, nonce=nonce)
    trace = follow(mark, [seen("h2:eth0", E / probe, 1.0), seen("h2:eth0", error, 1.1, True)])
    assert len(trace.errors) == 1 and trace.errors[0].icmp == (3, 3)
    verdict = classify(trace, None, sender="h1", proto="udp", version=4)
    assert verdict.ending is Ending.REFUSED


def test_a_copy_seen_again_with_less_ttl_is_a_loop_and_a_retransmission_is_not() -> None:
    mark = Mark("tcp", 4, sport=45000, sender="h1")
    first = seen("h1:eth0", syn("10.0.1.2", 45000, "10.0.5.2"), 1.0, True)
    again = seen("h1:eth0", syn("10.0.1.2", 45000, "10.0.5.2"), 2.0, True)
    assert follow(mark, [first, again]).looped() is None
    looped = [first, seen("r2:eth0", syn("10.0.1.2", 45000, "10.0.5.2", ttl=62), 1.1),
              seen("r2:eth0", syn("10.0.1.2", 45000, "10.0.5.2", ttl=60), 1.2)]  # fmt: skip
    verdict = classify(follow(mark, looped), None, sender="h1", proto="tcp", version=4)
    assert verdict.ending is Ending.LOOPED and verdict.where == "r2:eth0"


def test_endings_from_the_socket_and_from_silence() -> None:
    nonce = new_nonce()
    mark = Mark("udp", 4, nonce=nonce)
    probe = E / IP(src="10.0.1.2", dst="10.0.4.2") / UDP(sport=4000, dport=53) / Raw(nonce)
    no_route = SocketReport("error", "ENETUNREACH", at_send=True)
    assert classify(follow(mark, []), no_route, sender="h1", proto="udp", version=4).ending \
        is Ending.NO_ROUTE  # fmt: skip
    eperm = SocketReport("error", "EPERM", at_send=True)
    assert classify(follow(mark, []), eperm, sender="h1", proto="udp", version=4).ending \
        is Ending.DROPPED  # fmt: skip
    reached = follow(mark, [seen("h2:eth0", probe, 1.0)])
    holders = {("h2", "10.0.4.2")}
    delivered = classify(reached, None, sender="h1", proto="udp", version=4, holders=holders)
    assert delivered.ending is Ending.DELIVERED and delivered.ending.ok
    dropped = classify(reached, None, sender="h1", proto="udp", version=4)
    assert dropped.ending is Ending.DROPPED and dropped.where == "h2:eth0"
    who_has = E / ARP(op=1, psrc="10.0.1.2", pdst="10.0.1.77")
    asked = follow(mark, [seen("h1:eth0", who_has, 1.0, True)])
    verdict = classify(asked, None, sender="h1", proto="udp", version=4)
    assert verdict.ending is Ending.NO_NEIGHBOUR and "10.0.1.77" in verdict.words
