"""What a frame must look like where it comes out: masks, declared rewrites, and diffs.

A probe's copy is recognised by its nonce; a `Match` then says which of its fields may
differ from what was sent (masked: a router changes MACs and TTL) and which must have
become something else (rewrites: SNAT sets ip.src, DNAT sets l4.dport).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..traffic.decode import ALIASES, Fields

__all__ = ["ROUTED", "Diff", "Match", "compare", "expected_fields"]

_CHECKSUMS = ("ip.chksum", "l4.chksum")
# Fields a checksum covers (the L4 one includes the IP addresses through its pseudo-header).
_COVERED = {
    "ip.src",
    "ip.dst",
    "ip6.src",
    "ip6.dst",
    "ip.ttl",
    "ip.tos",
    "ip.id",
    "l4.sport",
    "l4.dport",
    "payload",
    "icmp.type",
    "icmp.code",
    "icmp.id",
    "icmp.seq",
    "tcp.flags",
}


@dataclass(frozen=True)
class Diff:
    field: str
    expected: Any
    seen: Any

    def __str__(self) -> str:
        return f"{self.field}: expected {_show(self.expected)}, seen {_show(self.seen)}"


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return value[:24].hex() + ("…" if len(value) > 24 else "") + f" ({len(value)} bytes)"
    if value is None:
        return "(absent)"
    return str(value)


@dataclass(frozen=True)
class Match:
    """Fields to ignore (`mask`) and fields that must have been rewritten (`rewrites`).

    Names are decode's field names or the short aliases src, dst, ttl, sport, dport.
    Checksums follow the fields they cover, so a rewrite masks them automatically.
    """

    mask: frozenset[str] = frozenset()
    rewrites: Mapping[str, Any] = field(default_factory=dict)

    def __init__(
        self, mask: Iterable[str] = (), rewrites: Mapping[str, Any] | None = None, **rewrite: Any
    ) -> None:
        object.__setattr__(self, "mask", frozenset(mask))
        object.__setattr__(self, "rewrites", {**(rewrites or {}), **rewrite})

    def masking(self, *names: str) -> Match:
        return Match(self.mask | set(names), self.rewrites)

    def rewriting(self, **rewrites: Any) -> Match:
        return Match(self.mask, {**self.rewrites, **rewrites})

    def describe(self) -> str:
        parts = []
        if self.mask:
            parts.append("masked: " + " ".join(sorted(self.mask)))
        if self.rewrites:
            parts.append("rewrites: " + " ".join(f"{k}={v}" for k, v in self.rewrites.items()))
        return "; ".join(parts) or "exact"


# A routed path changes MACs and the TTL (and so the IPv4 header checksum).
ROUTED = Match(("eth.src", "eth.dst", "ttl", "ip.chksum"))


def _resolve(name: str, fields: Fields) -> list[str]:
    """A field name or alias → the concrete names present in (or meant for) `fields`."""
    options = ALIASES.get(name, (name,))
    present = [n for n in options if n in fields]
    return present or [options[0]]


def expected_fields(sent: Fields, match: Match) -> tuple[Fields, set[str]]:
    """The fields the copy must carry, and the names to ignore."""
    expected = dict(sent)
    ignored: set[str] = set()
    for name in match.mask:
        ignored.update(_resolve(name, sent))
    for name, value in match.rewrites.items():
        for concrete in _resolve(name, sent):
            expected[concrete] = value
    if match.rewrites or ignored & _COVERED:
        ignored.update(_CHECKSUMS)  # they change with what they cover
    return expected, ignored


def compare(expected: Fields, ignored: set[str], seen: Fields) -> list[Diff]:
    """Field-by-field differences (empty: the frame matches)."""
    diffs = []
    for name in sorted(set(expected) | set(seen)):
        if name in ignored or name == "nonce":
            continue
        want, got = expected.get(name), seen.get(name)
        if isinstance(want, bytes) or isinstance(got, bytes) or want is None or got is None:
            differ = want != got
        else:
            differ = str(want) != str(got)  # a rewrite may say 8080 or "8080"
        if differ:
            diffs.append(Diff(name, want, got))
    return diffs
