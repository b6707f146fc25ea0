"""What a frame must look like where it comes out: masks, declared rewrites, and diffs.

A probe's copy is recognised by its nonce; a `Match` then says which of its fields may
differ from what was sent (masked: a router changes MACs and TTL) and which must have
become something else (rewrites: SNAT sets ip.src, DNAT sets l4.dport). A rewrite may
name one value, or a `range` or a `set` of them: NAT that picks a port (fully-random
masquerade, SNAT to a port range) is right whenever it picks one it may.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import TrafficError
from ..traffic._decode import ALIASES, FIELDS, Fields

# The checksums each field is covered by: the IPv4 header checksum covers the header, the
# L4 one the segment and, through its pseudo-header, the addresses.
_HEADER, _SEGMENT = ("ip.chksum",), ("l4.chksum",)
_COVERED_BY = {
    "ip.src": _HEADER + _SEGMENT, "ip.dst": _HEADER + _SEGMENT,
    "ip6.src": _SEGMENT, "ip6.dst": _SEGMENT,
    "ip.ttl": _HEADER, "ip.tos": _HEADER, "ip.id": _HEADER,
    "l4.sport": _SEGMENT, "l4.dport": _SEGMENT, "payload": _SEGMENT, "tcp.flags": _SEGMENT,
    "icmp.type": _SEGMENT, "icmp.code": _SEGMENT, "icmp.id": _SEGMENT, "icmp.seq": _SEGMENT,
}  # fmt: skip


@dataclass(frozen=True)
class Diff:
    """One field of a received frame that differs from what was expected."""

    field: str
    expected: Any
    seen: Any

    def __str__(self) -> str:
        return f"{self.field}: expected {_show(self.expected)}, seen {_show(self.seen)}"


_SHOWN = 8  # members of a set shown in a diff


def _order(value: Any) -> tuple[bool, int, str]:
    """Numbers in numeric order, then the rest by their text."""
    number = isinstance(value, int)
    return not number, value if number else 0, str(value)


def _show(value: Any) -> str:
    if isinstance(value, range):
        if not value:
            return "(an empty range)"
        step = f" step {value.step}" if value.step != 1 else ""
        return f"{value[0]}..{value[-1]}{step}"
    if isinstance(value, (set, frozenset)):
        shown = sorted(value, key=_order)
        more = f" … ({len(value)} values)" if len(shown) > _SHOWN else ""
        return "one of " + ", ".join(map(str, shown[:_SHOWN])) + more
    if isinstance(value, bytes):
        return value[:24].hex() + ("…" if len(value) > 24 else "") + f" ({len(value)} bytes)"
    if value is None:
        return "(absent)"
    return str(value)


@dataclass(frozen=True)
class Match:
    """Fields to ignore (`mask`) and fields that must have been rewritten (`rewrites`).

    Names are decode's field names or the short aliases src, dst, ttl, sport, dport, id
    (another name is a TrafficError). A rewrite's value is one value, or a `range` or a
    `set` the seen value must be in: `Match(sport=range(20000, 20011))`. Checksums follow
    the fields they cover, so a rewrite masks them automatically.
    """

    mask: frozenset[str] = frozenset()
    rewrites: Mapping[str, Any] = field(default_factory=dict)

    def __init__(
        self, mask: Iterable[str] = (), rewrites: Mapping[str, Any] | None = None, **rewrite: Any
    ) -> None:
        mask = frozenset([mask] if isinstance(mask, str) else mask)
        rewrites = {**(rewrites or {}), **rewrite}
        check_names([*sorted(mask), *rewrites])
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "rewrites", rewrites)

    def masking(self, *names: str) -> Match:
        """This match, also ignoring the fields `names`."""
        return Match(self.mask | set(names), self.rewrites)

    def rewriting(self, **rewrites: Any) -> Match:
        """This match, also requiring the fields of `rewrites` rewritten to those values."""
        return Match(self.mask, {**self.rewrites, **rewrites})

    def describe(self) -> str:
        """What is masked and rewritten, in one line ("exact" for neither)."""
        parts = []
        if self.mask:
            parts.append("masked: " + " ".join(sorted(self.mask)))
        if self.rewrites:
            parts.append(
                "rewrites: " + " ".join(f"{k}={_show(v)}" for k, v in self.rewrites.items())
            )
        return "; ".join(parts) or "exact"


def check_names(names: Iterable[str]) -> None:
    """Raise TrafficError for a name that is neither a decoded field nor an alias: a typo
    in a mask would otherwise ignore nothing, silently."""
    known = sorted(FIELDS) + sorted(ALIASES)
    for name in names:
        if name in FIELDS or name in ALIASES:
            continue
        near = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise TrafficError(
            f"unknown field {name!r} in a Match{hint}; fields: {' '.join(sorted(FIELDS))}; "
            f"aliases: {' '.join(sorted(ALIASES))}"
        )


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
    changed = set(ignored)
    for name in match.rewrites:
        changed.update(_resolve(name, sent))
    for name in changed:  # a checksum changes with what it covers
        ignored.update(_COVERED_BY.get(name, ()))
    return expected, ignored


def _norm(value: Any) -> str:
    """One spelling per value: a rewrite may say 8080 or "8080", FD00::1 or fd00:0::1,
    02:00:00:00:00:AA or its lower case."""
    text = str(value).strip().lower()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _agrees(want: Any, got: Any) -> bool:
    """Whether a seen value is what was expected: equal, or in the range or set."""
    if isinstance(want, range):
        return isinstance(got, int) and not isinstance(got, bool) and got in want
    if isinstance(want, (set, frozenset)):
        if got is None:
            return False
        return got in want or _norm(got) in {_norm(v) for v in want}
    if isinstance(want, bytes) or isinstance(got, bytes) or want is None or got is None:
        return bool(want == got)
    return _norm(want) == _norm(got)


def compare(expected: Fields, ignored: set[str], seen: Fields) -> list[Diff]:
    """Field-by-field differences (empty: the frame matches)."""
    diffs = []
    for name in sorted(set(expected) | set(seen)):
        if name in ignored or name == "nonce":
            continue
        want, got = expected.get(name), seen.get(name)
        if not _agrees(want, got):
            diffs.append(Diff(name, want, got))
    # A checksum that differs only because a field it covers differs says nothing more.
    explained = {c for d in diffs for c in _COVERED_BY.get(d.field, ())}
    return [d for d in diffs if d.field not in explained]


def kind_of(fields: Fields) -> tuple[Any, ...]:
    """What kind of packet a frame is: its EtherType, IP protocol, ICMP type, ARP op. A
    frame carrying a probe's nonce is a copy only if it is still the probe's kind."""
    proto = fields.get("ip.proto", fields.get("ip6.nh"))
    return fields.get("eth.type"), proto, fields.get("icmp.type"), fields.get("arp.op")
