"""The in-process nf_tables trace: payload matches, rule text from a listing, events as steps."""

from __future__ import annotations

import struct

from netprobe.explain._nfttrace import _as_steps, payload_match, rule_texts
from netprobe.topology._kernel.nftrace import TraceEvent, parse_trace

LISTING = """table inet fw { # handle 1
\tchain forward { # handle 1
\t\ttype filter hook forward priority filter; policy accept;
\t\tudp dport 9 counter packets 3 bytes 90 drop # handle 5
\t\tjump sub # handle 4
\t}
}
"""


def _attr(kind: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)


def test_a_nonce_match_on_whole_bytes_goes_over_netlink() -> None:
    assert payload_match("@th,64,128 0x" + "ab" * 16) == (2, 8, b"\xab" * 16)
    assert payload_match("@nh,20,128 0x" + "ab" * 16) is None  # not on a byte
    assert payload_match("tcp sport 4000 tcp flags & (syn | ack) == syn") is None


def test_rule_text_comes_from_the_listing_without_counters_or_handle() -> None:
    assert rule_texts(LISTING) == {"inet fw forward #5": "udp dport 9 drop",
                                   "inet fw forward #4": "jump sub"}  # fmt: skip


def test_a_trace_message_reads_as_nft_monitor_prints_it() -> None:
    verdict = struct.pack("=HH", 12, 5 | 0x8000) + _attr(1, struct.pack(">i", 0))
    payload = (_attr(1, b"fw\0") + _attr(2, b"forward\0") + _attr(3, struct.pack(">Q", 5))
               + _attr(4, struct.pack(">I", 3)) + verdict + _attr(6, struct.pack(">I", 0xBEEF))
               + _attr(8, b"\x45" * 20))  # fmt: skip
    event = parse_trace(payload, 1)
    assert event == TraceEvent("0000beef", "inet", "fw", "forward", "rule", 5, "drop", True)
    steps = _as_steps(event, rule_texts(LISTING), "own")
    assert [s.kind for s in steps] == ["packet", "rule"]
    assert steps[1].describe() == "rule `udp dport 9 drop` (chain inet fw forward, handle 5)"
    assert steps[1].action == "drop"
