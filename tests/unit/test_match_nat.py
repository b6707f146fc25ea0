"""Matching what NAT really does: rewrites to a range or a set, field names checked,
a match per port, probes of several frames (fragments), and evidence that names the
ICMP echo id, the ports a "nowhere" watched, the barrier, and compares a lost probe
only with frames of its own kind. Pure logic: no root, no namespaces."""

from __future__ import annotations

import os
import socket
import struct

import pytest
from make_captures import NATED, ROUTED_PCAP, nat_udp
from support.paths import CAPTURES

from netprobe.errors import TrafficError
from netprobe.expect import (
    ROUTED,
    Copy,
    Match,
    Outcome,
    PortReport,
    Verdict,
    at,
    compare,
    expected_fields,
    nowhere,
)
from netprobe.expect._expectation import _matches
from netprobe.expect._outcome import label
from netprobe.expect._run import judge
from netprobe.traffic import (
    FIELDS,
    Captured,
    CaptureStats,
    Fields,
    Template,
    decode,
    find_nonce,
    fragments,
    icmp_echo,
    read_pcap,
    summary,
    udp,
)
from netprobe.traffic._decode import ALIASES

A, B = "02:00:00:00:00:01", "02:00:00:00:00:02"


def frames(name: str, port: str = "port") -> list[Captured]:
    return [Captured(port, data, ts) for ts, data in read_pcap(CAPTURES / name)]


def sent(template: Template, copy: bytes) -> Fields:
    """The fields of the probe `copy` is a copy of, rebuilt with the same nonce."""
    data, _ = template.probe(find_nonce(copy))
    return decode(data)


def _seen(template: Template, **changes: object) -> dict[str, object]:
    data, _ = template.probe()
    fields = decode(data)
    return {**fields, **changes}


# -- ranges and sets -------------------------------------------------------------------


def test_a_port_in_the_range_matches_and_one_outside_is_shown_as_the_range() -> None:
    template = udp(A, B, "10.0.2.99", "10.0.1.99", sport=40000)
    sent_fields = decode(template.probe()[0])
    expected, ignored = expected_fields(sent_fields, Match(sport=range(20000, 20011)))
    assert compare(expected, ignored, {**sent_fields, "l4.sport": 20006}) == []
    assert compare(expected, ignored, {**sent_fields, "l4.sport": 20010}) == []
    (diff,) = compare(expected, ignored, {**sent_fields, "l4.sport": 30000})
    assert str(diff) == "l4.sport: expected 20000..20010, seen 30000"
    (diff,) = compare(expected, ignored, {**sent_fields, "l4.sport": 20011})
    assert diff.field == "l4.sport"


def test_a_set_of_ports_or_addresses_matches_any_member() -> None:
    sent_fields = decode(udp(A, B, "10.0.2.99", "10.0.1.99").probe()[0])
    match = Match(rewrites={"l4.sport": {20000, 20005}}, src={"10.0.1.1", "10.0.2.1"})
    expected, ignored = expected_fields(sent_fields, match)
    ok = {**sent_fields, "l4.sport": 20005, "ip.src": "10.0.2.1"}
    assert compare(expected, ignored, ok) == []
    bad = {**sent_fields, "l4.sport": 20001, "ip.src": "10.0.3.1"}
    assert [str(d) for d in compare(expected, ignored, bad)] == [
        "ip.src: expected one of 10.0.1.1, 10.0.2.1, seen 10.0.3.1",
        "l4.sport: expected one of 20000, 20005, seen 20001",
    ]


def test_a_set_of_ipv6_addresses_matches_whatever_the_spelling() -> None:
    sent_fields = decode(udp(A, B, "dead:2::99", "dead:1::99").probe()[0])
    expected, ignored = expected_fields(sent_fields, Match(src={"DEAD:1:0::1"}))
    assert compare(expected, ignored, {**sent_fields, "ip6.src": "dead:1::1"}) == []


def test_describe_shows_ranges_and_sets_readably() -> None:
    match = ROUTED.rewriting(src="10.0.1.1", sport=range(1406, 65536), dport={53, 5353})
    assert match.describe() == (
        "masked: eth.dst eth.src ip.chksum ttl; "
        "rewrites: src=10.0.1.1 sport=1406..65535 dport=one of 53, 5353"
    )
    assert Match(sport=range(0, 10, 2)).describe() == "rewrites: sport=0..8 step 2"


def test_a_range_never_matches_an_absent_field() -> None:
    sent_fields = decode(icmp_echo(A, B, "10.0.2.99", "10.0.1.99").probe()[0])
    expected, ignored = expected_fields(sent_fields, Match(sport=range(1024, 65536)))
    (diff,) = compare(expected, ignored, sent_fields)
    assert str(diff) == "l4.sport: expected 1024..65535, seen (absent)"


# -- field names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: Match().masking("l4.srcport"),
        lambda: Match(["l4.srcport"]),
        lambda: Match(rewrites={"l4.srcport": 1}),
        lambda: Match().rewriting(srcport=1),
        lambda: ROUTED.rewriting(**{"l4.srcport": 1}),
    ],
)
def test_an_unknown_field_name_is_an_error_naming_it_and_the_known_ones(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TrafficError) as caught:
        make()
    text = str(caught.value)
    assert "unknown field 'l4.srcport'" in text or "unknown field 'srcport'" in text
    assert "l4.sport" in text and "aliases:" in text and "sport" in text


def test_a_near_miss_is_suggested() -> None:
    with pytest.raises(TrafficError, match=r"did you mean l4\.sport\?"):
        Match().masking("l4.sprt")


def test_every_alias_and_field_is_accepted() -> None:
    Match(sorted(FIELDS) + sorted(ALIASES))


def _every_kind_of_frame() -> list[bytes]:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    from netprobe.traffic import arp, dhcp_discover, ethernet, tcp

    templates = [
        udp(A, B, "10.0.0.1", "10.0.0.2", vlan=(100, 10)),
        udp(A, B, "fd00::1", "fd00::2"),
        tcp(A, B, "10.0.0.1", "10.0.0.2"),
        tcp(A, B, "fd00::1", "fd00::2"),
        icmp_echo(A, B, "10.0.0.1", "10.0.0.2"),
        icmp_echo(A, B, "fd00::1", "fd00::2"),
        arp(A, "10.0.0.1", "10.0.0.2"),
        dhcp_discover(A),
        ethernet(A, B),
    ]
    big = Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / Raw(bytes(3000))
    big_tcp = Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP() / Raw(bytes(3000))
    templates += fragments(big, 1480) + fragments(big_tcp, 1480)
    from scapy.layers.inet6 import IPv6

    small6 = Ether(src=A, dst=B) / IPv6(src="fd00::1", dst="fd00::2") / UDP() / Raw(bytes(60))
    templates += fragments(small6, 32)
    found = [t.probe()[0] for t in templates]
    return found + [f.data for name in (ROUTED_PCAP, NATED) for f in frames(name)]


def test_every_field_decode_produces_is_a_known_name() -> None:
    seen = {name for data in _every_kind_of_frame() for name in decode(data)}
    assert seen <= FIELDS, seen - FIELDS
    assert {"frag.offset", "frag.more", "frag.id", "icmp.id", "arp.op", "tcp.flags"} <= seen


# -- a match per port --------------------------------------------------------------------


def test_a_match_per_port_names_ports_it_watches() -> None:
    default, per_port = _matches({"ns1:eth0": Match(src="10.0.1.1")}, ["ns1:eth0", "ns2:eth0"])
    assert default == Match() and per_port == {"ns1:eth0": Match(src="10.0.1.1")}
    assert _matches(ROUTED, ["ns1:eth0"]) == (ROUTED, {})
    with pytest.raises(TrafficError, match="a match for ns9:eth0, which this expectation"):
        _matches({"ns9:eth0": Match()}, ["ns1:eth0"])


def _report(port: str, seen: list[Captured], sent_fields: list, match: Match,  # type: ignore[type-arg]
            negative: bool = False) -> PortReport:  # fmt: skip
    copies = []
    for index, fields in enumerate(sent_fields):
        expected, ignored = expected_fields(fields, match)
        copies += [Copy(index, f, compare(expected, ignored, decode(f.data)))
                   for f in seen if find_nonce(f.data) == fields["nonce"]]  # fmt: skip
    return PortReport(port, seen, copies, False, CaptureStats(len(seen), 0), negative)


def test_evidence_says_which_port_had_which_match() -> None:
    seen = frames(NATED, "internet:eth0")
    sent_fields = [sent(nat_udp(), c) for c in [f.data for f in seen if find_nonce(f.data)]]
    own = ROUTED.rewriting(src="203.0.113.10")
    outcome = Outcome(
        Verdict.PASS, "as expected", nat_udp().summary, "vm1:eth0", at("internet:eth0"),
        Match(), sent_fields, {"internet:eth0": _report("internet:eth0", seen, sent_fields, own)},
        "positive match", 0.001, matches={"internet:eth0": own},
    )  # fmt: skip
    text = outcome.evidence()
    assert f"  internet:eth0 (must see it; {own.describe()}): {len(seen)} frames" in text
    assert outcome.to_dict()["matches"] == {"internet:eth0": own.describe()}
    assert outcome.match_at("internet:eth0") == own and outcome.match_at("x:y") == Match()


# -- several frames, fragments ---------------------------------------------------------


def _reassembled(frames_: list[bytes], v6: bool) -> bytes:
    """The L4 segment the fragments carry, put back together by offset."""
    pieces = []
    for data in frames_:
        fields = decode(data)
        head = 14 + (48 if v6 else 20)
        pieces.append((fields["frag.offset"], data[head:]))
    return b"".join(p for _, p in sorted(pieces))


def _l4_sum_ok(segment: bytes, src: bytes, dst: bytes, proto: int) -> bool:
    """Whether the segment's checksum is right over the pseudo-header (RFC 768, 8200)."""
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(segment))
    else:
        pseudo = src + dst + struct.pack("!I3xB", len(segment), proto)
    data = pseudo + segment + (b"\0" if len(segment) % 2 else b"")
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


@pytest.mark.parametrize("v6", [False, True])
def test_fragments_each_carry_a_nonce_and_the_datagram_stays_valid(v6: bool) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    l3 = IPv6(src="dead:2::99", dst="dead:1::99") if v6 else IP(src="10.0.2.99", dst="10.0.1.99")
    datagram = Ether(src=A, dst=B) / l3 / UDP(sport=5000, dport=4233) / Raw(os.urandom(4096))
    size = 1448 if v6 else 1480
    parts = fragments(datagram, size)
    assert len(parts) == 3 and all(p.fragment for p in parts)
    for ident in (0x1234, 0xBEEF0001):  # two probes: fresh nonces, one id per probe
        sent_ = [p.probe(ident=ident) for p in parts]
        nonces = [n for _, n in sent_]
        assert len(set(nonces)) == 3
        fields = [decode(d) for d, _ in sent_]
        assert [f["nonce"] for f in fields] == nonces
        assert [f["frag.offset"] for f in fields] == [0, size, 2 * size]
        assert [f["frag.more"] for f in fields] == [1, 1, 0]
        if v6:
            assert {f["frag.id"] for f in fields} == {ident}
        else:
            assert {f["ip.id"] for f in fields} == {ident & 0xFFFF}
            for data, _ in sent_:  # each header's checksum is right after the id changed
                head = data[14:34]
                total = sum(struct.unpack("!10H", head))
                assert (total & 0xFFFF) + (total >> 16) == 0xFFFF
        segment = _reassembled([d for d, _ in sent_], v6)
        assert len(segment) == 8 + 4096
        family = socket.AF_INET6 if v6 else socket.AF_INET
        src, dst = (socket.inet_pton(family, a) for a in (l3.src, l3.dst))
        assert _l4_sum_ok(segment, src, dst, 17)


def test_fragments_refuse_what_they_cannot_cut() -> None:
    small = udp(A, B, "10.0.0.1", "10.0.0.2")
    with pytest.raises(TrafficError, match="multiple of 8"):
        fragments(small, 100)
    with pytest.raises(TrafficError, match="fits in one fragment"):
        fragments(small, 1480)
    from netprobe.traffic import ethernet

    with pytest.raises(TrafficError, match="IPv4 or IPv6"):
        fragments(ethernet(A, B), 8)
    with pytest.raises(TrafficError, match="32 bytes or more"):
        fragments(small, 24)


def test_a_last_piece_too_short_for_its_nonce_is_padded() -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    datagram = Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / Raw(bytes(60))
    parts = fragments(datagram, 32)  # pieces at 0, 32, 64: the last held 4 bytes
    data = [p.probe(ident=7)[0] for p in parts]
    assert all(find_nonce(d) for d in data)
    segment = _reassembled(data, False)
    assert len(segment) == 64 + 18
    assert _l4_sum_ok(segment, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 17)


def test_judge_names_the_frame_of_a_probe_that_went_missing() -> None:
    reports = {"p": PortReport("p", [], [], False, CaptureStats(0, 0), False)}
    verdict, reason = judge("at", reports, ["p"], [], 6, [], name=lambda i: label(i, 3))
    assert (verdict, reason) == (Verdict.FAIL, "probe 1 frame 1 never reached p")


# -- evidence --------------------------------------------------------------------------


def test_a_summary_shows_the_icmp_echo_id() -> None:
    line = summary(decode(icmp_echo(A, B, "10.0.0.1", "10.0.0.2", ident=4660, seq=7).probe()[0]))
    assert "ICMP type 8 id 4660 seq 7" in line
    line6 = summary(decode(icmp_echo(A, B, "fd00::1", "fd00::2", ident=99).probe()[0]))
    assert "ICMP type 128 id 99 seq 1" in line6


def test_a_summary_shows_a_fragment_offset() -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    datagram = Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / Raw(bytes(60))
    lines = [summary(decode(p.probe()[0])) for p in fragments(datagram, 32)]
    assert len(lines) == 3
    assert " UDP ttl 64 frag 0+ [nonce" in lines[0] and " frag 64 [nonce" in lines[-1]


def _mld_and_probe() -> tuple[list[Captured], Template]:
    from scapy.layers.inet6 import ICMPv6MLReport2, IPv6
    from scapy.layers.l2 import Ether

    mld = Ether(src=A, dst="33:33:00:00:00:16") / IPv6(src="fe80::1", dst="ff02::16", hlim=1)
    mld = mld / ICMPv6MLReport2()
    return [Captured("h:p", bytes(mld), 0.0)], udp(A, B, "10.0.0.1", "10.0.0.2")


def test_no_closest_frame_of_another_family_is_shown() -> None:
    seen, probe = _mld_and_probe()
    fields = decode(probe.probe()[0])
    outcome = Outcome(
        Verdict.FAIL, "probe 1 never reached p", probe.summary, "q", at("h:p"), Match(),
        [fields], {"h:p": _report("h:p", seen, [fields], Match())}, "deadline", 1.0,
    )  # fmt: skip
    text = outcome.evidence()
    assert "closest frame" not in text
    assert "ff02::16" in text  # still listed among the frames the port saw


def test_the_closest_frame_is_one_of_the_probes_kind() -> None:
    seen, probe = _mld_and_probe()
    other = udp(A, B, "10.0.0.1", "10.0.0.3").probe()[0]
    seen.append(Captured("h:p", other, 0.0))
    fields = decode(probe.probe()[0])
    outcome = Outcome(
        Verdict.FAIL, "probe 1 never reached p", probe.summary, "q", at("h:p"), Match(),
        [fields], {"h:p": _report("h:p", seen, [fields], Match())}, "deadline", 1.0,
    )  # fmt: skip
    lines = outcome.evidence().splitlines()
    (closest,) = [line for line in lines if "closest frame" in line]
    assert "10.0.0.3" in closest
    assert lines[lines.index(closest) + 1] == "      ip.dst: expected 10.0.0.2, seen 10.0.0.3"


def test_a_nowhere_lists_the_ports_it_watched_and_labels_the_barrier() -> None:
    from netprobe.expect._expectation import broadcast

    barrier, _ = broadcast(A, ()).probe()
    probe = udp(A, B, "10.0.0.1", "10.0.0.2")
    data, _ = probe.probe()
    seen = [Captured("p1", barrier, 0.0)]
    reports = {
        "p1": _report("p1", seen, [decode(data)], Match(), negative=True),
        "p2": _report("p2", [], [decode(data)], Match(), negative=True),
    }
    outcome = Outcome(
        Verdict.PASS, "as expected", probe.summary, "q", nowhere(), Match(), [decode(data)],
        reports, "barrier", 0.001, barrier="Ether broadcast (barrier)",
        injected=[Captured("q", data, 0.0, True), Captured("q", barrier, 0.0, True)],
    )  # fmt: skip
    lines = outcome.evidence().splitlines()
    assert "  watched where it must not be: p1 p2" in lines
    assert f"    barrier: {summary(decode(barrier))}" in lines


def test_a_large_set_is_shown_in_part_and_matched_fast() -> None:
    sent_fields = decode(udp(A, B, "10.0.2.99", "10.0.1.99", sport=40000).probe()[0])
    others = set(range(1024, 65536)) - {40000}  # "rewritten to any other high port"
    expected, ignored = expected_fields(sent_fields, Match(sport=others))
    assert compare(expected, ignored, {**sent_fields, "l4.sport": 50000}) == []
    (diff,) = compare(expected, ignored, sent_fields)
    assert str(diff) == (
        "l4.sport: expected one of 1024, 1025, 1026, 1027, 1028, 1029, 1030, 1031 "
        "… (64511 values), seen 40000"
    )


def test_a_host_expectation_matches_only_ports_of_where() -> None:
    from netprobe.expect._fromhost import _per_port

    where = at("ns1:eth0")
    assert _per_port(ROUTED, where) == {"ns1:eth0": ROUTED}
    assert _per_port(None, where) == {}
    assert _per_port({"ns1:eth0": Match(src="10.0.1.1")}, where) == {
        "ns1:eth0": Match(src="10.0.1.1")
    }
    with pytest.raises(TrafficError, match="a match for ns2:eth0, which is not among"):
        _per_port({"ns2:eth0": Match()}, where)
