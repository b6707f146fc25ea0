"""A host's filter rules as `nft -j list ruleset` shows them, and what a packet must look
like to reach and match each one.

Every rule of every filter chain reachable from a base chain at the input, forward or
output hook (through jump and goto) is listed once per base chain that reaches it, in the
order a packet meets them, with the matches of the jump rules that lead to its chain. The
matches become a `Want`: the packet's family, protocol, addresses, ports, ICMP type,
interfaces, conntrack state. A match that cannot be turned into a packet (a named set, a
mark, a meter, a limit, an xt match nft cannot show) makes the rule `Unprobeable`, with the
reason: it is said, never guessed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Rule", "Unprobeable", "Want", "filter_rules", "rule_texts", "want"]

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
HOOKS = ("input", "forward", "output")
_FAMILIES = {"ip": {4}, "ip6": {6}, "inet": {4, 6}}
_TERMINAL = ("accept", "drop", "reject")
# statements that neither match nor decide: a Want of a rule with anything else (ct count,
# a match nft -j shows some other way) is not all the rule matches
_STATEMENTS = {"counter", "log", "mangle", "notrack", "accept", "drop", "reject", "return",
               "continue", "jump", "goto", "xt", "match", "limit", "meter", "set", "queue",
               "quota", "synproxy", "vmap"}
_PROTOS = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "ipv6-icmp": "icmp", "icmpv6": "icmp",
           6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}  # fmt: skip
# the ICMP and ICMPv6 types a probe is built for (probes.py, _icmp.py), by nft's names
ICMP4 = {"echo-request": 8, "echo-reply": 0, "destination-unreachable": 3,
         "time-exceeded": 11, "parameter-problem": 12}
ICMP6 = {"echo-request": 128, "echo-reply": 129, "destination-unreachable": 1,
         "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4,
         "nd-router-solicit": 133, "nd-router-advert": 134, "nd-neighbor-solicit": 135,
         "nd-neighbor-advert": 136}


class Unprobeable(Exception):
    """No packet can be built for this rule (the message says which match)."""


@dataclass(frozen=True, eq=False)  # one object per rule and base chain: hashed by identity
class Rule:
    """One rule as a packet from base chain `base` meets it."""

    family: str
    table: str
    chain: str
    handle: int
    hook: str  # input, forward or output: the hook of the base chain it is reached from
    base: str  # that base chain
    order: int  # its place in the traversal from `base` (0, 1, 2, ...)
    exprs: tuple[Any, ...]
    path: tuple[tuple[Any, ...], ...] = ()  # the expressions of the jumps that lead here
    text: str = ""  # as `nft list ruleset` prints it
    last: bool = False  # the last rule a packet can meet in this base chain
    ends_chain: bool = False  # the last rule of its own chain

    @property
    def verdict(self) -> str:
        """accept, drop, reject, jump X, goto X, return or continue (no verdict)."""
        for expr in self.exprs:
            (key, value), = expr.items()
            if key in _TERMINAL or key == "return":
                return str(key)
            if key in ("jump", "goto"):
                return f"{key} {value['target']}"
            if key == "xt" and value.get("type") == "target":
                return f"xt target {value.get('name')}"
            if key == "vmap":
                return "vmap"
        return "continue"

    @property
    def targets(self) -> tuple[str, ...]:
        """The chains its jump, goto or verdict map leads to."""
        return _targets(self.exprs)

    @property
    def key(self) -> tuple[str, str, str, int]:
        """(family, table, chain, handle): the rule in the kernel, whichever way reached."""
        return (self.family, self.table, self.chain, self.handle)

    def describe(self) -> str:
        """The rule as text, with its chain and handle."""
        return f"`{self.text or self.verdict}` ({self.family} {self.table} {self.chain}, " \
               f"handle {self.handle})"


def filter_rules(listing: dict[str, Any], texts: dict[tuple[str, str, str, int], str]
                 | None = None) -> list[Rule]:
    """The rules of `nft -j list ruleset` output reachable from filter base chains at the
    input, forward and output hooks, in the order packets meet them (base chains of one
    hook by priority)."""
    items = listing.get("nftables", [])
    chains = {(c["family"], c["table"], c["name"]): c for c in _of(items, "chain")}
    rules: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for rule in _of(items, "rule"):
        rules.setdefault((rule["family"], rule["table"], rule["chain"]), []).append(rule)
    bases = sorted((c for c in chains.values() if c.get("type") == "filter"
                    and c.get("hook") in HOOKS and c["family"] in _FAMILIES),
                   key=lambda c: (HOOKS.index(c["hook"]), c.get("prio", 0)))
    out: list[Rule] = []
    for base in bases:
        where = (base["family"], base["table"], base["name"])
        found = list(_walk(rules, where, (), set()))
        for order, (rule, path) in enumerate(found):
            key = (rule["family"], rule["table"], rule["chain"], rule["handle"])
            out.append(Rule(*key, base["hook"], base["name"], order, tuple(rule["expr"]),
                            path, (texts or {}).get(key, ""), order == len(found) - 1,
                            rules[key[:3]][-1] is rule))
    return out


def _of(items: list[dict[str, Any]], kind: str) -> Iterator[dict[str, Any]]:
    return (item[kind] for item in items if kind in item)


def _walk(rules: dict[tuple[str, str, str], list[dict[str, Any]]], chain: tuple[str, str, str],
          path: tuple[tuple[Any, ...], ...], seen: set[tuple[str, str, str]]
          ) -> Iterator[tuple[dict[str, Any], tuple[tuple[Any, ...], ...]]]:
    """Each rule of `chain` and, after a jump, goto or verdict map, the rules of each
    chain it leads to."""
    if chain in seen:  # nft refuses loops; a chain jumped to twice on one path is one
        return
    for rule in rules.get(chain, []):
        yield rule, path
        for name in _targets(rule["expr"]):
            yield from _walk(rules, (chain[0], chain[1], name), (*path, tuple(rule["expr"])),
                             seen | {chain})


def _targets(exprs: Any) -> tuple[str, ...]:
    """The chains a rule's jump, goto or anonymous verdict map leads to, each once (a
    named map's elements are not in the rule)."""
    out: list[str] = []
    for expr in exprs:
        verdicts = [expr]
        if isinstance(expr.get("vmap"), dict) and isinstance(expr["vmap"].get("data"), dict):
            verdicts = [v for _, v in expr["vmap"]["data"].get("set", [])
                        if isinstance(v, dict)]
        for verdict in verdicts:
            for kind in ("jump", "goto"):
                if kind in verdict:
                    out.append(str(verdict[kind]["target"]))
    return tuple(dict.fromkeys(out))


_HANDLE = re.compile(r"\s*# handle (\d+)\s*$")
_COUNTER = re.compile(r"\s*counter packets \d+ bytes \d+")


def rule_texts(text: str) -> dict[tuple[str, str, str, int], str]:
    """(family, table, chain, handle) → rule text, from `nft -a list ruleset`."""
    out, table, chain = {}, ("", ""), ""
    for line in (raw.strip() for raw in text.splitlines()):
        if m := re.match(r"table (\S+) (\S+) \{", line):
            table = (m.group(1), m.group(2))
        elif m := re.match(r"chain (\S+) \{", line):
            chain = m.group(1).strip('"')
        elif (m := _HANDLE.search(line)) and chain and not line.startswith(("type ", "set ")):
            out[(*table, chain, int(m.group(1)))] = _COUNTER.sub("", line[: m.start()]).strip()
    return out


@dataclass
class Want:
    """What a packet must be to match every expression of a rule and of its path."""

    families: set[int] = field(default_factory=lambda: {4, 6})
    proto: str | None = None  # tcp, udp or icmp (ICMPv6 in IPv6)
    saddr: list[tuple[list[Net], bool]] = field(default_factory=list)  # (any of, negated)
    daddr: list[tuple[list[Net], bool]] = field(default_factory=list)
    sport: list[tuple[list[tuple[int, int]], bool]] = field(default_factory=list)
    dport: list[tuple[list[tuple[int, int]], bool]] = field(default_factory=list)
    iif: list[tuple[list[str], bool]] = field(default_factory=list)
    oif: list[tuple[list[str], bool]] = field(default_factory=list)
    states: set[str] = field(default_factory=lambda: {"new", "established", "related",
                                                      "invalid", "untracked"})
    local: bool | None = None  # fib daddr type local (or != local)
    icmp: list[tuple[list[Any], bool]] = field(default_factory=list)  # icmp(v6) type
    hoplimit: list[tuple[list[tuple[int, int]], bool]] = field(default_factory=list)
    lossy: bool = False  # something the rule matches is not (exactly) in this Want

    def icmp_type(self, family: int) -> int:
        """An ICMP (ICMPv6) type a probe is built for that every type match allows:
        echo request first."""
        names = ICMP4 if family == 4 else ICMP6
        for number in names.values():
            if all(any(names.get(v, v) == number for v in values) != neg
                   for values, neg in self.icmp):
                return number
        shown = ", ".join(f"{'!= ' if neg else ''}{'/'.join(map(str, v))}" for v, neg in self.icmp)
        raise Unprobeable(f"matches icmp{'' if family == 4 else 'v6'} type {shown} (only "
                          f"{', '.join(names)} are built)")

    def hops(self, default: int) -> int:
        """A TTL (hop limit) every ttl/hoplimit match allows: `default` if it can."""
        tests = self.hoplimit
        for hops in [default] + [lo for spans, neg in tests if not neg for lo, _ in spans]:
            if all(any(lo <= hops <= hi for lo, hi in spans) != neg for spans, neg in tests):
                return hops
        raise Unprobeable("no hop limit satisfies every ttl/hoplimit match")

    @property
    def state(self) -> str:
        """new when the rule allows it, else established (the flow opened first), else
        invalid (a TCP segment with SYN and FIN: conntrack refuses it)."""
        for state in ("new", "established", "invalid"):
            if state in self.states:
                return state
        raise Unprobeable(f"matches ct state {', '.join(sorted(self.states)) or 'nothing'}")

    def port(self, which: str, default: int) -> int:
        """A port that every `which` (sport, dport) match allows: `default` if it can."""
        tests: list[tuple[list[tuple[int, int]], bool]] = getattr(self, which)
        candidates = [default] + [max(lo, 1) for spans, neg in tests if not neg for lo, _ in spans]
        candidates += [hi + 1 for spans, neg in tests if neg for _, hi in spans]
        for port in candidates:
            if 0 < port < 65536 and all(
                    any(lo <= port <= hi for lo, hi in spans) != neg for spans, neg in tests):
                return port
        raise Unprobeable(f"no {which} satisfies every port match")


def want(rule: Rule) -> Want:
    """What a packet must be to reach `rule` (through its path) and match it."""
    found = Want(families=set(_FAMILIES[rule.family]))
    for exprs in (*rule.path, rule.exprs):
        for expr in exprs:
            _apply(found, expr, exprs is not rule.exprs, rule.text if exprs is rule.exprs else "")
    if not found.families:
        raise Unprobeable("matches both IPv4 and IPv6 only")
    return found


def _apply(found: Want, expr: dict[str, Any], on_path: bool, text: str) -> None:
    (key, value), = expr.items()
    if key == "match":
        _match(found, value)
    elif key == "xt" and value.get("type") == "match":
        _xt(found, str(value.get("name")), text)
    elif key in ("limit", "meter", "set", "queue", "quota", "synproxy") and not on_path:
        raise Unprobeable(f"has a {key} statement")
    elif key in ("limit", "meter", "quota"):
        raise Unprobeable(f"is reached through a rule with a {key}")
    elif key == "vmap":
        raise Unprobeable("is reached through a verdict map" if on_path
                          else "has a verdict map")
    elif key not in _STATEMENTS:
        found.lossy = True


def _match(found: Want, match: dict[str, Any]) -> None:
    op, left, right = match["op"], match["left"], match["right"]
    neg = op == "!="
    if op not in ("==", "!=", "in"):
        right, op, neg = _compare(op, right), "==", False
    if isinstance(right, str) and right.startswith("@"):
        raise Unprobeable(f"matches the named set {right}")
    if "payload" in left:
        _payload(found, left["payload"], right, neg)
    elif "meta" in left:
        _meta(found, left["meta"]["key"], right, neg)
    elif "ct" in left and left["ct"].get("key") == "state":
        states = set(_values(right))
        found.states = found.states - states if neg else found.states & states
    elif "fib" in left and left["fib"].get("result") == "type" \
            and "daddr" in left["fib"].get("flags", []) and _values(right) == ["local"]:
        found.local = not neg
    else:
        raise Unprobeable(f"matches {_name(left)}")


# iptables-nft keeps some iptables matches as xt expressions, which `nft -j` shows by name
# only; `nft list` prints what it can translate. The translations a probe can follow:
_XT = {"conntrack": r"ct state", "state": r"ct state", "icmp": r"icmp type",
       "icmp6": r"icmpv6 type", "addrtype": r"fib daddr type", "hl": r"ip6 hoplimit",
       "ttl": r"ip ttl"}
_XT_VALUE = r"(?P<neg>!= )?(?P<value>\{[^}]*\}|[\w,-]+)"


def _xt(found: Want, name: str, text: str) -> None:
    """An xt match, through the translation in the rule's text; else not probeable."""
    m = re.search(rf"\b{_XT[name]} {_XT_VALUE}", text) if name in _XT else None
    if m is None or f"xt match {name}" in text:
        raise Unprobeable(f"matches xt {name} (an iptables match nft cannot show)")
    values: list[Any] = [int(v) if v.strip().isdigit() else v.strip()
                         for v in m["value"].strip("{}").split(",")]
    left = {"ct": {"key": "state"}} if _XT[name] == "ct state" else \
        {"fib": {"result": "type", "flags": ["daddr"]}} if name == "addrtype" else \
        {"payload": {"protocol": _XT[name].split()[0], "field": _XT[name].split()[1]}} \
        if name in ("hl", "ttl") else \
        {"payload": {"protocol": "icmp" if name == "icmp" else "icmpv6", "field": "type"}}
    right = {"set": values} if len(values) > 1 else values[0]
    _match(found, {"op": "!=" if m["neg"] else "==", "left": left, "right": right})


def _compare(op: str, right: Any) -> dict[str, list[int]]:
    """`tcp dport < 1024` and the like, as a range."""
    if not isinstance(right, int):
        raise Unprobeable(f"compares with {op} {right}")
    lo, hi = {"<": (0, right - 1), "<=": (0, right), ">": (right + 1, 65535),
              ">=": (right, 65535)}.get(op, (-1, -1))
    if lo < 0:
        raise Unprobeable(f"matches with {op}")
    return {"range": [lo, hi]}


def _payload(found: Want, payload: dict[str, Any], right: Any, neg: bool) -> None:
    proto, field_ = payload.get("protocol"), payload.get("field")
    if proto in ("ip", "ip6") and field_ in ("saddr", "daddr"):
        found.families &= {4 if proto == "ip" else 6}
        getattr(found, field_).append(([_net(v) for v in _values(right)], neg))
        found.lossy |= any(isinstance(v, dict) and "range" in v for v in _values(right))
    elif proto in ("ip", "ip6") and field_ in ("protocol", "nexthdr"):
        found.families &= {4 if proto == "ip" else 6}
        _proto(found, right, neg)
    elif proto in ("tcp", "udp", "th") and field_ in ("sport", "dport"):
        if proto != "th":
            _proto(found, proto, False)
        getattr(found, field_).append(([_span(v) for v in _values(right)], neg))
    elif proto in ("icmp", "icmpv6") and field_ == "type":
        found.families &= {4 if proto == "icmp" else 6}
        _proto(found, proto, False)
        found.icmp.append((_values(right), neg))
    elif (proto, field_) in (("ip", "ttl"), ("ip6", "hoplimit")):
        found.families &= {4 if proto == "ip" else 6}
        found.hoplimit.append(([_span(v) for v in _values(right)], neg))
    else:
        raise Unprobeable(f"matches {proto} {field_ or 'raw payload'}")


def _meta(found: Want, key: str, right: Any, neg: bool) -> None:
    if key == "l4proto":
        _proto(found, right, neg)
    elif key in ("nfproto", "protocol"):  # ipv4/ipv6, or the ethertype ip/ip6
        families = {4 if v in ("ipv4", "ip") else 6 for v in _values(right)}
        found.families = found.families - families if neg else found.families & families
    elif key in ("iifname", "oifname", "iif", "oif"):
        getattr(found, key[:3]).append(([str(v) for v in _values(right)], neg))
    else:
        raise Unprobeable(f"matches meta {key}")


_SIX = ("ipv6-icmp", "icmpv6", 58)


def _proto(found: Want, right: Any, neg: bool) -> None:
    values = _values(right)
    names = {_PROTOS.get(v, f"protocol {v}") for v in values}
    if neg:
        names = {p for p in ("tcp", "udp", "icmp") if p not in names}
    if found.proto is not None:
        names &= {found.proto}
    usable = sorted(n for n in names if n in ("tcp", "udp", "icmp"))
    found.lossy |= neg or len(names) > 1  # one of them is probed
    if not usable:
        raise Unprobeable(f"matches {', '.join(sorted(names)) or 'no protocol'} "
                          "(only TCP, UDP and ICMP echo are sent)")
    found.proto = "tcp" if "tcp" in usable else usable[0]
    if found.proto == "icmp" and not neg:  # icmp is IPv4's, ipv6-icmp IPv6's
        icmp = [v for v in values if _PROTOS.get(v) == "icmp"]
        six = {v in _SIX for v in icmp}
        if six == {True}:
            found.families &= {6}
        elif six == {False}:
            found.families &= {4}


def _values(right: Any) -> list[Any]:
    """The elements a match compares with (an anonymous set, a list of flags, one value)."""
    if isinstance(right, dict) and "set" in right:
        return list(right["set"])
    return list(right) if isinstance(right, list) else [right]


def _net(value: Any) -> Net:
    if isinstance(value, dict) and "prefix" in value:
        return ipaddress.ip_network(f"{value['prefix']['addr']}/{value['prefix']['len']}",
                                    strict=False)
    if isinstance(value, dict) and "range" in value:  # its first address (a lossy Want)
        return ipaddress.ip_network(value["range"][0])
    if isinstance(value, str):
        return ipaddress.ip_network(value, strict=False)
    raise Unprobeable(f"matches an address {value}")


def _span(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if isinstance(value, dict) and "range" in value:
        lo, hi = value["range"]
        return int(lo), int(hi)
    raise Unprobeable(f"matches a port {value}")


def _name(left: dict[str, Any]) -> str:
    (kind, value), = left.items()
    if isinstance(value, dict):
        return f"{kind} " + " ".join(str(v) for v in value.values() if isinstance(v, str))
    return str(kind)
