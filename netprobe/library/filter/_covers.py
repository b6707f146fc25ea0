"""Whether one rule's match covers another's: every packet the second matches, the first
matches too. Conservative: False whenever that is not sure (a `Want` that is not
exactly what its rule matches, a value nft did not name)."""

from __future__ import annotations

from typing import Any

from .rules import ICMP4, ICMP6, Net, Want


def covers(s: Want, r: Want) -> bool:
    """Whether every packet `r` matches, `s` matches too (each of `s`'s matches implied by
    `r`'s); False whenever that is not sure."""
    if s.lossy or r.lossy or not s.families >= r.families or not s.states >= r.states:
        return False
    if s.proto not in (None, r.proto) or s.local not in (None, r.local):
        return False
    return _implied(s.saddr, r.saddr, _net_in, _net_apart) \
        and _implied(s.daddr, r.daddr, _net_in, _net_apart) \
        and all(_implied(getattr(s, k), getattr(r, k), _span_in, _span_apart)
                for k in ("sport", "dport", "hoplimit")) \
        and all(_implied(getattr(s, k), getattr(r, k), _glob_in, _glob_apart)
                for k in ("iif", "oif")) \
        and _implied(_icmps(s), _icmps(r), _same, _differ)


def _implied(tests: list[tuple[list[Any], bool]], theirs: list[tuple[list[Any], bool]],
             inside: Any, apart: Any) -> bool:
    """Each test of `tests` holds for every packet some positive test of `theirs` allows:
    a positive one when each of its values is inside one of the test's, a negated one
    when each is apart from all the test's values."""
    positive = [values for values, neg in theirs if not neg]
    return all(any(all(any(inside(v, t) for t in mine) for v in values) if not neg
                   else all(apart(v, t) for v in values for t in mine) for values in positive)
               for mine, neg in tests)


def _net_in(net: Net, of: Net) -> bool:
    return net.version == of.version and net.subnet_of(of)  # type: ignore[arg-type]


def _net_apart(net: Net, other: Net) -> bool:
    return net.version != other.version or not net.overlaps(other)


def _span_in(span: tuple[int, int], of: tuple[int, int]) -> bool:
    return of[0] <= span[0] and span[1] <= of[1]


def _span_apart(span: tuple[int, int], other: tuple[int, int]) -> bool:
    return span[1] < other[0] or other[1] < span[0]


def _glob_in(name: str, of: str) -> bool:
    if of.endswith("*"):
        return name.startswith(of[:-1])
    return name == of and not name.endswith("*")


def _glob_apart(name: str, other: str) -> bool:
    a, b = name.removesuffix("*"), other.removesuffix("*")
    if name.endswith("*") and other.endswith("*"):
        return not (a.startswith(b) or b.startswith(a))
    if name.endswith("*"):
        return not b.startswith(a)
    return not _glob_in(name, other)


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, str) and a == b


def _differ(a: Any, b: Any) -> bool:
    return isinstance(a, str) and isinstance(b, str) and a != b


def _icmps(w: Want) -> list[tuple[list[Any], bool]]:
    """ICMP type tests by name (a number nft would name, named; others kept): unnamed
    values, or a family not known, make the tests unsure (an impossible name)."""
    names = {v: k for k, v in ICMP4.items()} if w.families == {4} else \
        {v: k for k, v in ICMP6.items()} if w.families == {6} else {}
    known = set(ICMP4) | set(ICMP6)
    out = []
    for values, neg in w.icmp:
        named = [names.get(v, v) for v in values]
        out.append(([v if v in known else object() for v in named], neg))
    return out
