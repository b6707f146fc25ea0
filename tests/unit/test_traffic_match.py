"""Decoding, masks, rewrites, diffs and evidence, replayed on frames real topologies produced.

The pcaps in captures/ were made by captures/make_captures.py (see captures/README.md).
Each probe there is rebuilt here from that script's own template (imported, with its pinned
addresses and file names) with the nonce found in the captured copy, so "what was sent" and
"what came out" are compared exactly as `netprobe.expect.expect` compares them.
Pure logic: no root, no namespaces.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from make_captures import (
    BEFORE_SNAT,
    BLUE_MAC,
    DELIVERED,
    INTERNET_MAC,
    LEFT_MAC,
    NATED,
    PUBLIC_IP,
    QINQ,
    RED_MAC,
    RIGHT_MAC,
    ROUTED_PCAP,
    ROUTER_LEFT_MAC,
    ROUTER_RIGHT_MAC,
    UPLINK_MAC,
    VLAN10,
    VMBR1_MAC,
    nat_udp,
    redblue_udp,
    router_udp,
)
from support.paths import CAPTURES

from netprobe.expect import (
    ROUTED,
    Copy,
    Diff,
    Match,
    Outcome,
    PortReport,
    Verdict,
    at,
    compare,
    expected_fields,
    nowhere,
)
from netprobe.traffic import (
    Captured,
    CaptureStats,
    Fields,
    Template,
    arp,
    decode,
    find_nonce,
    read_pcap,
    summary,
    udp,
)


def frames(name: str, port: str = "port") -> list[Captured]:
    return [Captured(port, data, ts) for ts, data in read_pcap(CAPTURES / name)]


def probe_copies(name: str) -> list[bytes]:
    """The frames of a pcap that carry a probe's nonce."""
    copies = [f.data for f in frames(name) if find_nonce(f.data)]
    assert copies, f"{name} holds no probe"
    return copies


def arp_frames(name: str, op: int) -> list[Fields]:
    """The ARP requests (op 1) or replies (op 2) of a pcap: the path's own traffic."""
    found = [d for d in map(decode, (f.data for f in frames(name))) if d.get("arp.op") == op]
    assert found, f"{name} holds no ARP op {op}"
    return found


def sent(template: Template, copy: bytes) -> Fields:
    """The fields of the probe `copy` is a copy of, rebuilt with the same nonce."""
    nonce = find_nonce(copy)
    assert nonce is not None
    data, _ = template.probe(nonce)
    return decode(data)


def diffs(template: Template, copy: bytes, match: Match) -> list[str]:
    expected, ignored = expected_fields(sent(template, copy), match)
    return [str(d) for d in compare(expected, ignored, decode(copy))]


# --- decode -------------------------------------------------------------------------


def test_every_capture_holds_a_handful_of_frames_with_probes() -> None:
    for name in (DELIVERED, VLAN10, QINQ, ROUTED_PCAP, NATED, BEFORE_SNAT):
        assert 2 <= len(frames(name)) <= 10
        assert len(probe_copies(name)) >= 2


def test_delivered_frame_decodes_to_the_fields_sent() -> None:
    fields = decode(probe_copies(DELIVERED)[0])
    assert fields["eth.src"] == RED_MAC and fields["eth.dst"] == BLUE_MAC
    assert fields["vlan"] == ()
    assert fields["eth.type"] == 0x0800
    assert (fields["ip.src"], fields["ip.dst"], fields["ip.ttl"]) == ("10.0.0.1", "10.0.0.2", 64)
    assert (fields["ip.proto"], fields["l4.sport"], fields["l4.dport"]) == (17, 40000, 9)
    assert fields["payload"] == fields["nonce"]
    assert "tcp.flags" not in fields and "ip6.src" not in fields


def test_vlan_tag_is_present_in_the_frame_carried_through_the_bridge() -> None:
    fields = decode(probe_copies(VLAN10)[0])
    assert fields["vlan"] == ((0x8100, 10),)
    assert fields["eth.type"] == 0x0800
    assert fields["ip.dst"] == "10.0.0.2"
    assert " vlan 10 IPv4 10.0.0.1.40000 > 10.0.0.2.9 UDP ttl 64 " in summary(fields)


def test_double_tag_keeps_the_8021ad_outer_tpid() -> None:
    fields = decode(probe_copies(QINQ)[0])
    assert fields["vlan"] == ((0x88A8, 100), (0x8100, 10))
    assert "vlan 100(ad) vlan 10 IPv4" in summary(fields)


def test_routed_frame_has_ttl_63_and_the_routers_macs() -> None:
    fields = decode(probe_copies(ROUTED_PCAP)[0])
    assert fields["ip.ttl"] == 63
    assert (fields["eth.src"], fields["eth.dst"]) == (ROUTER_RIGHT_MAC, RIGHT_MAC)
    assert (fields["ip.src"], fields["ip.dst"]) == ("10.1.0.10", "10.2.0.10")


def test_nated_frame_has_the_public_source_address() -> None:
    fields = decode(probe_copies(NATED)[0])
    assert fields["ip.src"] == PUBLIC_IP
    assert fields["ip.dst"] == "203.0.113.1"
    assert fields["ip.ttl"] == 63
    assert (fields["eth.src"], fields["eth.dst"]) == (UPLINK_MAC, INTERNET_MAC)


def test_nat_rewrites_checksums_but_keeps_the_nonce() -> None:
    before = {find_nonce(c): decode(c) for c in probe_copies(BEFORE_SNAT)}
    after = {find_nonce(c): decode(c) for c in probe_copies(NATED)}
    assert before.keys() == after.keys()
    for nonce, fields in after.items():
        assert fields["ip.src"] != before[nonce]["ip.src"]
        assert fields["ip.chksum"] != before[nonce]["ip.chksum"]
        assert fields["l4.chksum"] != before[nonce]["l4.chksum"]
        assert fields["payload"] == before[nonce]["payload"] == nonce


def test_arp_request_in_a_capture_decodes_and_summarises() -> None:
    fields = arp_frames(ROUTED_PCAP, op=1)[0]
    assert fields["eth.type"] == 0x0806
    assert (fields["arp.op"], fields["arp.spa"], fields["arp.tpa"]) == (1, "10.2.0.1", "10.2.0.10")
    assert fields["nonce"] is None
    assert summary(fields) == (
        f"{ROUTER_RIGHT_MAC} > ff:ff:ff:ff:ff:ff ARP who-has 10.2.0.10 tell 10.2.0.1"
    )


def test_arp_reply_summary_names_the_answering_address_and_its_mac() -> None:
    reply, _ = arp(RED_MAC, "10.0.0.1", "10.0.0.2", op="is-at", dst_mac=BLUE_MAC).probe()
    fields = decode(reply)
    assert (fields["arp.op"], fields["arp.spa"], fields["arp.sha"]) == (2, "10.0.0.1", RED_MAC)
    assert "ARP reply 10.0.0.1 is-at 02:00:00:00:00:01" in summary(fields)


def test_frame_too_short_for_ethernet_decodes_to_payload_only() -> None:
    assert decode(b"\x01\x02") == {"nonce": None, "payload": b"\x01\x02"}


# --- compare: masks and rewrites ----------------------------------------------------


@pytest.mark.parametrize(("pcap", "vlan"), [(DELIVERED, None), (VLAN10, 10), (QINQ, (100, 10))])
def test_bridged_copy_matches_the_probe_exactly(
    pcap: str, vlan: int | tuple[int, int] | None
) -> None:
    for copy in probe_copies(pcap):
        assert diffs(redblue_udp(vlan), copy, Match()) == []


def test_untagged_probe_does_not_match_a_tagged_copy() -> None:
    copy = probe_copies(VLAN10)[0]
    assert diffs(redblue_udp(), copy, Match()) == ["vlan: expected (), seen ((33024, 10),)"]


def test_routed_copy_without_masks_differs_in_macs_and_ttl() -> None:
    copy = probe_copies(ROUTED_PCAP)[0]
    # the header checksum differs too, but only because the TTL does: not listed
    assert diffs(router_udp(), copy, Match()) == [
        f"eth.dst: expected {ROUTER_LEFT_MAC}, seen {RIGHT_MAC}",
        f"eth.src: expected {LEFT_MAC}, seen {ROUTER_RIGHT_MAC}",
        "ip.ttl: expected 64, seen 63",
    ]


def test_routed_copy_matches_with_the_routed_mask() -> None:
    for copy in probe_copies(ROUTED_PCAP):
        assert diffs(router_udp(), copy, ROUTED) == []


def test_routed_copy_with_macs_masked_still_differs_in_ttl() -> None:
    copy = probe_copies(ROUTED_PCAP)[0]
    lines = diffs(router_udp(), copy, Match(["mac.src", "mac.dst"]))
    assert [line.split(":")[0] for line in lines] == ["ip.ttl"]


def test_masking_ttl_also_masks_the_checksums_that_cover_it() -> None:
    copy = probe_copies(ROUTED_PCAP)[0]
    lines = diffs(router_udp(), copy, Match(["ttl"]))
    assert [line.split(":")[0] for line in lines] == ["eth.dst", "eth.src"]


def test_nated_copy_without_rewrites_differs_in_ip_src() -> None:
    copy = probe_copies(NATED)[0]
    assert diffs(nat_udp(), copy, ROUTED) == [f"ip.src: expected 10.10.10.101, seen {PUBLIC_IP}"]


def test_nated_copy_exactly_lists_every_field_the_path_changed() -> None:
    copy = probe_copies(NATED)[0]
    lines = diffs(nat_udp(), copy, Match())
    assert [line.split(":")[0] for line in lines] == ["eth.dst", "eth.src", "ip.src", "ip.ttl"]
    assert f"eth.dst: expected {VMBR1_MAC}, seen {INTERNET_MAC}" in lines


def test_nated_copy_matches_with_the_declared_snat_rewrite() -> None:
    for copy in probe_copies(NATED):
        assert diffs(nat_udp(), copy, Match(ROUTED.mask, src=PUBLIC_IP)) == []
        assert diffs(nat_udp(), copy, ROUTED.rewriting(src=PUBLIC_IP)) == []
        assert diffs(nat_udp(), copy, ROUTED.rewriting(**{"ip.src": PUBLIC_IP})) == []


def test_wrong_snat_address_is_the_only_diff() -> None:
    copy = probe_copies(NATED)[0]
    lines = diffs(nat_udp(), copy, ROUTED.rewriting(src="203.0.113.99"))
    assert lines == [f"ip.src: expected 203.0.113.99, seen {PUBLIC_IP}"]


def test_frame_before_snat_fails_the_snat_expectation() -> None:
    copy = probe_copies(BEFORE_SNAT)[0]
    lines = diffs(nat_udp(), copy, ROUTED.rewriting(src=PUBLIC_IP))
    assert lines == [f"ip.src: expected {PUBLIC_IP}, seen 10.10.10.101"]


def test_rewrite_value_may_be_given_as_text_or_number() -> None:
    copy = probe_copies(DELIVERED)[0]
    assert diffs(redblue_udp(), copy, Match(dport="9")) == []
    assert diffs(redblue_udp(), copy, Match(dport=9)) == []
    assert diffs(redblue_udp(), copy, Match(dport=8080)) == ["l4.dport: expected 8080, seen 9"]


def test_rewrite_masks_both_checksums() -> None:
    fields = sent(nat_udp(), probe_copies(NATED)[0])
    expected, ignored = expected_fields(fields, Match(src=PUBLIC_IP))
    assert expected["ip.src"] == PUBLIC_IP
    assert {"ip.chksum", "l4.chksum"} <= ignored
    assert "eth.src" not in ignored


@pytest.mark.parametrize(
    ("alias", "concrete", "changed"),
    [
        ("sport", "l4.sport", {"sport": 41000}),
        ("dport", "l4.dport", {"dport": 8080}),
    ],
)
def test_masking_a_port_by_alias_ignores_the_checksum_that_covers_it(
    alias: str, concrete: str, changed: dict[str, int]
) -> None:
    copy = probe_copies(DELIVERED)[0]
    nonce = find_nonce(copy)
    params = {"sport": 40000, "dport": 9, **changed}
    rewritten, _ = udp(RED_MAC, BLUE_MAC, "10.0.0.1", "10.0.0.2", **params).probe(nonce)
    expected, ignored = expected_fields(decode(copy), Match([alias]))
    assert compare(expected, ignored, decode(rewritten)) == []


@pytest.mark.parametrize(
    ("concrete", "changed"),
    [("l4.sport", {"sport": 41000}), ("l4.dport", {"dport": 8080})],
)
def test_masking_a_port_by_field_name_ignores_the_checksum_that_covers_it(
    concrete: str, changed: dict[str, int]
) -> None:
    copy = probe_copies(DELIVERED)[0]
    nonce = find_nonce(copy)
    params = {"sport": 40000, "dport": 9, **changed}
    rewritten, _ = udp(RED_MAC, BLUE_MAC, "10.0.0.1", "10.0.0.2", **params).probe(nonce)
    expected, ignored = expected_fields(decode(copy), Match([concrete]))
    assert compare(expected, ignored, decode(rewritten)) == []


def test_diff_renders_bytes_as_hex_and_absent_fields() -> None:
    assert (
        str(Diff("payload", b"\x01\x02", None)) == "payload: expected 0102 (2 bytes), seen (absent)"
    )
    long = str(Diff("payload", bytes(30), b""))
    assert long == f"payload: expected {'00' * 24}… (30 bytes), seen  (0 bytes)"


def test_match_describe_names_masks_and_rewrites() -> None:
    assert Match().describe() == "exact"
    assert ROUTED.describe() == "masked: eth.dst eth.src ip.chksum ttl"
    described = ROUTED.rewriting(src=PUBLIC_IP).describe()
    assert described == f"masked: eth.dst eth.src ip.chksum ttl; rewrites: src={PUBLIC_IP}"


# --- evidence ------------------------------------------------------------------------


def _report(
    port: str,
    seen: list[Captured],
    sent_fields: list[Fields],
    match: Match,
    *,
    negative: bool = False,
    drops: int = 0,
) -> PortReport:
    """What expect() would report at `port`, built from captured frames."""
    copies = []
    for index, fields in enumerate(sent_fields):
        expected, ignored = expected_fields(fields, match)
        copies += [
            Copy(index, f, compare(expected, ignored, decode(f.data)))
            for f in seen
            if find_nonce(f.data) == fields["nonce"]
        ]
    return PortReport(port, seen, copies, False, CaptureStats(len(seen), drops), negative)


def _nat_not_applied() -> Outcome:
    """Probes expected SNATed at pve:vmbr1 (where they are not yet): a FAIL with diffs."""
    seen = frames(BEFORE_SNAT, "pve:vmbr1")
    sent_fields = [sent(nat_udp(), c) for c in probe_copies(BEFORE_SNAT)]
    match = ROUTED.rewriting(src=PUBLIC_IP)
    return Outcome(
        verdict=Verdict.FAIL,
        reason="probe 1 arrived altered at pve:vmbr1",
        probe=nat_udp().summary,
        port="vm1:eth0",
        where=at("pve:vmbr1"),
        match=match,
        sent=sent_fields,
        reports={"pve:vmbr1": _report("pve:vmbr1", seen, sent_fields, match)},
        decided_by="deadline",
        elapsed=1.0,
    )


def test_evidence_shows_the_expected_frame_and_its_mask() -> None:
    text = _nat_not_applied().evidence()
    lines = text.splitlines()
    assert lines[0] == "FAIL: probe 1 arrived altered at pve:vmbr1"
    probes = len(probe_copies(BEFORE_SNAT))
    assert lines[1] == f"  probe: {nat_udp().summary}, {probes} sent into vm1:eth0"
    assert "10.10.10.101" in lines[1] and "203.0.113.1" in lines[1]
    assert lines[2] == (
        "  expected at pve:vmbr1 (masked: eth.dst eth.src ip.chksum ttl; "
        f"rewrites: src={PUBLIC_IP})"
    )
    assert lines[3] == "  decided by deadline after 1000.0 ms"


def test_evidence_has_a_field_by_field_diff_per_copy() -> None:
    text = _nat_not_applied().evidence()
    probes = len(probe_copies(BEFORE_SNAT))
    assert text.count(f"      ip.src: expected {PUBLIC_IP}, seen 10.10.10.101") == probes
    assert (
        "    probe 1 differs: 02:10:10:10:00:65 > 02:10:10:10:00:01 "
        "IPv4 10.10.10.101.40002 > 203.0.113.1.9 UDP ttl 64" in text
    )
    assert "    probe 2 differs: " in text
    assert "matches" not in text


def test_evidence_counts_frames_per_port_and_lists_the_others() -> None:
    text = _nat_not_applied().evidence()
    assert f"  pve:vmbr1 (must see it): {len(frames(BEFORE_SNAT))} frames" in text.splitlines()
    others = [f for f in frames(BEFORE_SNAT) if not find_nonce(f.data)]
    assert others, "vm1's ARP reply at least"
    for frame in others:
        assert f"    {summary(decode(frame.data))}" in text.splitlines()


def test_evidence_lists_pcap_paths_after_save_pcaps(tmp_path: Path) -> None:
    outcome = _nat_not_applied()
    assert "pcaps:" not in outcome.evidence()
    paths = outcome.save_pcaps(str(tmp_path))
    path = tmp_path / "pve-vmbr1.pcapng"
    assert paths == {"pve:vmbr1": str(path)}
    assert outcome.evidence().splitlines()[-1] == f"  pcaps: {path}"
    assert [d for _, d in read_pcap(path)] == [f.data for f in frames(BEFORE_SNAT)]


def test_evidence_of_a_leak_to_a_forbidden_port_with_capture_loss() -> None:
    seen = frames(NATED, "internet:eth0")
    sent_fields = [sent(nat_udp(), c) for c in probe_copies(NATED)]
    match = ROUTED.rewriting(src=PUBLIC_IP)
    outcome = Outcome(
        verdict=Verdict.FAIL,
        reason="probe 1 reached internet:eth0, where it must not",
        probe=nat_udp().summary,
        port="vm1:eth0",
        where=nowhere(among=["internet:eth0"]),
        match=match,
        sent=sent_fields,
        reports={
            "internet:eth0": _report(
                "internet:eth0", seen, sent_fields, match, negative=True, drops=4
            )
        },
        decided_by="barrier",
        elapsed=0.0012,
        barrier="Ether / Raw",
    )
    lines = outcome.evidence().splitlines()
    assert (
        "  expected nowhere (masked: eth.dst eth.src ip.chksum ttl; rewrites: src=203.0.113.10)"
        in lines
    )
    assert "  decided by barrier after 1.2 ms" in lines
    assert "  barrier: Ether / Raw" in lines
    assert f"  internet:eth0 (must not see it): {len(seen)} frames, 4 lost" in lines
    matching = sum(line.startswith("    probe ") and "matches" in line for line in lines)
    assert matching == len(sent_fields)


def test_evidence_without_a_copy_shows_the_closest_frame_and_its_diff() -> None:
    seen = frames(ROUTED_PCAP, "right:eth0")
    fresh, _ = router_udp().probe()  # a probe of which no copy was captured
    sent_fields = [decode(fresh)]
    outcome = Outcome(
        verdict=Verdict.FAIL,
        reason="probe 1 never reached right:eth0",
        probe=router_udp().summary,
        port="left:eth0",
        where=at("right:eth0"),
        match=Match(),
        sent=sent_fields,
        reports={"right:eth0": _report("right:eth0", seen, sent_fields, Match())},
        decided_by="deadline",
        elapsed=1.0,
    )
    lines = outcome.evidence().splitlines()
    assert f"  right:eth0 (must see it): {len(seen)} frames" in lines
    closest = [line for line in lines if "closest frame" in line]
    assert len(closest) == 1
    assert "IPv4 10.1.0.10.40001 > 10.2.0.10.9 UDP ttl 63" in closest[0]
    diff_lines = lines[lines.index(closest[0]) + 1 : lines.index(closest[0]) + 4]
    assert [line.strip().split(":")[0] for line in diff_lines] == ["eth.dst", "eth.src", "ip.ttl"]
    assert "      ip.ttl: expected 64, seen 63" in lines


def test_evidence_shows_at_most_five_other_frames_per_port() -> None:
    names = (DELIVERED, VLAN10, QINQ, ROUTED_PCAP, NATED, BEFORE_SNAT)
    seen = [f for name in names for f in frames(name, "any:eth0")]
    fresh, _ = redblue_udp().probe()
    outcome = Outcome(
        verdict=Verdict.PASS,
        reason="as expected",
        probe=redblue_udp().summary,
        port="red:eth0",
        where=nowhere(among=["any:eth0"]),
        match=Match(),
        sent=[decode(fresh)],
        reports={"any:eth0": _report("any:eth0", seen, [decode(fresh)], Match(), negative=True)},
        decided_by="barrier",
        elapsed=0.001,
    )
    lines = outcome.evidence().splitlines()
    assert f"  any:eth0 (must not see it): {len(seen)} frames" in lines
    assert lines[-1] == f"    … {len(seen) - 5} more"
    assert "closest frame" not in outcome.evidence()  # only for ports that must see it
