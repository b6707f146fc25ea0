"""The policy file the filter and exposure checks read: what a host's firewall must do.

A YAML list, one entry (a "line") per expectation:

    - {proto: tcp, port: 22, from: [10.0.0.0/8, "fd00::/8"], expect: accept}
    - {proto: tcp, port: 23, expect: drop}
    - {proto: tcp, port: 443, chain: forward, to: 198.51.100.0/24, expect: accept}
    - {proto: tcp, port: 25, chain: output, expect: drop}
    - {proto: icmp, in: eth0, expect: accept}                   # ping from the LAN
    - {proto: icmpv6, type: neighbour-solicitation, expect: accept}
    - {proto: tcp, port: 443, state: established, from: 198.51.100.0/24, expect: accept}
    - {proto: tcp, port: 80, chain: forward, from: eth0, out: eth1, snat: 192.0.2.1,
       expect: accept}

    proto   tcp, udp, icmp (IPv4 only), icmpv6 (IPv6 only), or any: a datagram of IP
            protocol 253 (RFC 3692, experiments), which only a rule for every protocol
            lets through
    type    icmp/icmpv6 only: echo-request (the default), echo-reply,
            destination-unreachable, time-exceeded, router-solicitation,
            router-advertisement, neighbour-solicitation, neighbour-advertisement (or
            neighbor-…), or a number
    port    the destination port, 1-65535; tcp and udp only, and required there
    chain   input (the default: to the host), forward (through it) or output (from it)
    from    a source CIDR, or a list of them (one per address family); the probe's source
            is an address of the topology inside it. An interface name of the filtered
            host (or lo) instead: input/forward, the probe enters by it (as `in`);
            output, it leaves from that interface's address
    to      destination CIDR(s): where forward and output probes go; for input, which of
            the host's addresses is probed. An interface name: forward/output, the probe
            leaves by it (as `out`); input, it goes to that interface's address
    in      input/forward: the host's interface the probe must enter by (sent from the
            neighbour on that interface's link; lo: from the host itself)
    out     forward/output: the host's interface the probe must leave by
    state   new (the default), or established: the flow is first opened the other way
            (by the host, or for forward by the machine the probe goes to) and the probe
            is its reply; `port` is then the opened flow's destination port, the reply's
            source port (icmp: an echo-reply to the host's echo-request)
    snat    forward: the source address the probe must have after the host (SNAT,
            masquerade)
    dnat    forward: ADDR or ADDR:PORT the host rewrites the destination to; the probe
            goes to `to` (default: the host's own address) and must come out at ADDR
    expect  accept, or drop (reject counts as drop: the probe does not get through)

Each line is probed over IPv4 and over IPv6; `from`, `to`, `snat`, `dnat` and an icmp or
icmpv6 proto restrict it to the families they name. A forward line through a host that
rewrites addresses counts as accepted when the probe comes out where it must, rewritten
or not, unless it states the rewrite (`snat`, `dnat`). Quote IPv6 CIDRs in flow style
("fd00::/8"): YAML reads a bare `::` there as a key. The exposure check reads the same
file: input tcp/udp lines of state new say which ports a neighbour is meant to reach
(accept) or not (drop); it leaves the other lines out.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml

from netprobe.check import read_input
from netprobe.errors import SpecError

__all__ = ["CHAINS", "ICMP_TYPES", "PROTOS", "Line", "Network", "load_policy"]

CHAINS = ("input", "forward", "output")
PROTOS = ("tcp", "udp", "icmp", "icmpv6", "any")
ANY_PROTO = 253  # RFC 3692: for experiments, so no rule names it but "any protocol"
# name → (ICMP type, ICMPv6 type); None where that family has no such message
ICMP_TYPES: dict[str, tuple[int | None, int | None]] = {
    "echo-request": (8, 128), "echo-reply": (0, 129),
    "destination-unreachable": (3, 1), "time-exceeded": (11, 3),
    "router-solicitation": (10, 133), "router-advertisement": (9, 134),
    "neighbour-solicitation": (None, 135), "neighbour-advertisement": (None, 136),
}  # fmt: skip
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_KEYS = {"proto", "port", "chain", "from", "to", "expect", "type", "in", "out", "state",
         "snat", "dnat"}
_VERDICTS = {"accept": "accept", "drop": "drop", "reject": "drop"}
_IFNAME = re.compile(r"^[A-Za-z][\w.@-]{0,14}$")


@dataclass(frozen=True)
class Line:
    """One expectation of the policy; `number` is the file line it starts on."""

    number: int
    proto: str
    port: int  # 0: none (icmp, icmpv6, any)
    chain: str = "input"
    sources: tuple[Network, ...] = ()
    dests: tuple[Network, ...] = ()
    expect: str = "accept"
    icmp_type: str = ""  # icmp/icmpv6: a name of ICMP_TYPES, or a number
    state: str = "new"
    iif: str = ""  # the filtered host's interface the probe enters by
    oif: str = ""  # ... and leaves by
    own_if: str = ""  # the host's end of an input (destination) or output (source) probe
    snat: str = ""  # the source address expected after the host
    dnat: str = ""  # the destination address expected after the host
    dnat_port: int = 0  # ... and port (0: unchanged)

    @property
    def families(self) -> tuple[int, ...]:
        """The address families to probe: both, unless from/to/NAT/ICMP name only one."""
        families = {4, 6}
        for nets in (self.sources, self.dests):
            if nets:
                families &= {n.version for n in nets}
        for address in (self.snat, self.dnat):
            if address:
                families &= {ipaddress.ip_address(address).version}
        if self.proto in ("icmp", "icmpv6"):
            families &= {4 if self.proto == "icmp" else 6}
        return tuple(sorted(families))

    def source(self, family: int) -> Network | None:
        """The line's source network in IPv`family` (None: from anywhere)."""
        return next((n for n in self.sources if n.version == family), None)

    def dest(self, family: int) -> Network | None:
        """The line's destination network in IPv`family` (None: to anywhere)."""
        return next((n for n in self.dests if n.version == family), None)

    @property
    def interfaces(self) -> tuple[str, ...]:
        """The filtered host's interfaces the line names."""
        return tuple(dict.fromkeys(i for i in (self.iif, self.oif, self.own_if) if i))

    def icmp_number(self, family: int) -> int:
        """The ICMP (family 4) or ICMPv6 type number of the line's message."""
        name = self.icmp_type or "echo-request"
        if name.isdigit():
            return int(name)
        number = ICMP_TYPES[name][0 if family == 4 else 1]
        assert number is not None  # load_policy refused the pair
        return number

    @property
    def service(self) -> str:
        """The service as PROTO/PORT (tcp/22), PROTO TYPE (icmp echo-request) or any."""
        if self.proto in ("icmp", "icmpv6"):
            return f"{self.proto} {self.icmp_type or 'echo-request'}"
        return f"{self.proto}/{self.port}" if self.port else self.proto

    @property
    def scannable(self) -> bool:
        """A tcp/udp INPUT line of new flows: what the exposure check can use."""
        return (self.chain == "input" and self.proto in ("tcp", "udp")
                and self.state == "new" and not self.interfaces)

    def qualifiers(self) -> str:
        """What the line says beyond chain, service and addresses, as ' in eth0 …'."""
        parts = [f"{word} {value}" for word, value in
                 (("in", self.iif), ("out", self.oif), ("via", self.own_if),
                  ("snat", self.snat),
                  ("dnat", self.dnat + (f":{self.dnat_port}" if self.dnat_port else "")))
                 if value]
        if self.state != "new":
            parts.append(self.state)
        return "".join(f" {p}" for p in parts)

    def __str__(self) -> str:
        text = f"{self.chain.upper()} {self.service}"
        if self.sources:
            text += " from " + ", ".join(map(str, self.sources))
        if self.dests:
            text += " to " + ", ".join(map(str, self.dests))
        return f"{text}{self.qualifiers()}: {self.expect}"


_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser


class _Loader(_BASE_LOADER):  # type: ignore[misc]
    """The safe loader, each scalar's tag resolved once: a policy of thousands of lines
    repeats a few words (tcp, accept, a CIDR), and resolving runs regular expressions."""

    _tags: ClassVar[dict[tuple[Any, Any, Any], str]] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        key = (kind, value, implicit)
        if key not in self._tags:
            if len(self._tags) > 1 << 16:
                self._tags.clear()
            self._tags[key] = super().resolve(kind, value, implicit)
        return self._tags[key]


def load_policy(path: str | os.PathLike[str]) -> list[Line]:
    """Read a policy file; SpecError names the file and line of anything wrong."""
    path = os.fspath(path)
    loader = _Loader(read_input(path, "policy"))
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's limit
            raise SpecError("cannot read policy: nested too deeply", file=path) from None
        raise SpecError(f"cannot read policy: {exc}", file=path) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise SpecError("cannot read policy: nested too deeply", file=path) from None
    if root is None or not isinstance(root, yaml.SequenceNode):
        raise SpecError("a policy is a YAML list of lines like "
                        "{proto: tcp, port: 22, expect: accept}", file=path)
    lines = []
    for node in root.value:
        number = node.start_mark.line + 1
        try:
            lines.append(_line(number, loader.construct_object(node, deep=True)))
        except (ValueError, TypeError) as exc:
            raise SpecError(str(exc), file=path, line=number) from None
        except yaml.YAMLError as exc:  # an unhashable key, an unknown tag
            problem = getattr(exc, "problem", None) or str(exc)
            mark = getattr(exc, "problem_mark", None)
            raise SpecError(f"cannot read policy: {problem}", file=path,
                            line=mark.line + 1 if mark is not None else number) from None
    return lines


def _line(number: int, raw: Any) -> Line:
    if not isinstance(raw, dict):
        raise ValueError("each line is a mapping like {proto: tcp, port: 22, expect: accept}")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                         f"known: {', '.join(sorted(_KEYS))}")
    proto = str(raw.get("proto", "")).lower()
    chain, expect = str(raw.get("chain", "input")).lower(), str(raw.get("expect", "")).lower()
    state = str(raw.get("state", "new")).lower()
    if proto not in PROTOS:
        raise ValueError(f"proto must be one of {', '.join(PROTOS)}, not {raw.get('proto')!r}")
    if chain not in CHAINS:
        raise ValueError(f"chain must be one of {', '.join(CHAINS)}, not {chain!r}")
    if expect not in _VERDICTS:
        raise ValueError(f"expect must be accept or drop, not {raw.get('expect')!r}")
    if state not in ("new", "established"):
        raise ValueError(f"state must be new or established, not {raw.get('state')!r}")
    if state == "established" and chain == "output":
        raise ValueError("state established is for input and forward lines (the reply "
                         "coming back in, or through)")
    sources, source_if = _ends(raw.get("from"), "from")
    dests, dest_if = _ends(raw.get("to"), "to")
    ifs = _interfaces(raw, chain, source_if, dest_if)
    snat, dnat, dnat_port = _nat(raw, chain)
    line = Line(number, proto, _port(raw, proto), chain, sources, dests, _VERDICTS[expect],
                _type(raw, proto), state, *ifs, snat, dnat, dnat_port)
    if state == "established" and (proto == "any" or
                                   (proto.startswith("icmp") and line.icmp_type not in
                                    ("", "echo-request", "echo-reply"))):
        raise ValueError(f"state established is for tcp, udp and icmp echo, not {line.service}")
    if not line.families:
        raise ValueError("from, to, snat, dnat and proto name no address family in common")
    return line


def _port(raw: dict[Any, Any], proto: str) -> int:
    port = raw.get("port")
    if proto not in ("tcp", "udp"):
        if port is not None:
            raise ValueError(f"port is for tcp and udp: {proto} has none")
        return 0
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValueError(f"port must be a number 1-65535, not {port!r}")
    return port


def _type(raw: dict[Any, Any], proto: str) -> str:
    value = raw.get("type")
    if value is None:
        return ""
    if proto not in ("icmp", "icmpv6"):
        raise ValueError(f"type is for icmp and icmpv6, not {proto}")
    name = str(value).lower().replace("neighbor", "neighbour")
    if name.isdigit() and 0 <= int(name) <= 255:
        return name
    if name not in ICMP_TYPES:
        raise ValueError(f"unknown {proto} type {value!r}; known: {', '.join(ICMP_TYPES)}, "
                         "or a number 0-255")
    if ICMP_TYPES[name][0 if proto == "icmp" else 1] is None:
        raise ValueError(f"{name} is an icmpv6 message: use proto icmpv6")
    return name


def _interfaces(raw: dict[Any, Any], chain: str, source_if: str,
                dest_if: str) -> tuple[str, str, str]:
    """(in, out, own): the interfaces the line names, from in/out and from/to names."""
    iif, oif = (_ifname(raw.get(key), key) for key in ("in", "out"))
    if iif and chain == "output":
        raise ValueError("in is for input and forward lines (output leaves the host)")
    if oif and chain == "input":
        raise ValueError("out is for forward and output lines (input ends in the host)")
    iif, own_src = _side(source_if, iif, chain == "output", ("from", "in"))
    oif, own_dst = _side(dest_if, oif, chain == "input", ("to", "out"))
    own = own_dst or own_src
    if chain == "forward" and "lo" in (iif, oif):
        raise ValueError("nothing is forwarded by lo")
    return iif, oif, own


def _ifname(value: Any, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or not _IFNAME.match(value):
        raise ValueError(f"{key} must be an interface name, not {value!r}")
    return value


def _nat(raw: dict[Any, Any], chain: str) -> tuple[str, str, int]:
    snat, dnat = raw.get("snat"), raw.get("dnat")
    if (snat is not None or dnat is not None) and chain != "forward":
        raise ValueError("snat and dnat are for forward lines")
    source = _address(snat, "snat") if snat is not None else ""
    if dnat is None:
        return source, "", 0
    text, port = str(dnat), 0
    found = re.fullmatch(r"\[?([0-9a-fA-F:.]+?)\]?:(\d+)", text)
    if found and (text.startswith("[") or text.count(":") == 1):
        text, port = found.group(1), int(found.group(2))
        if not 1 <= port <= 65535:
            raise ValueError(f"dnat port must be 1-65535, not {port}")
    return source, _address(text, "dnat"), port


def _address(value: Any, key: str) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise ValueError(f"{key} must be an address (dnat: ADDR or ADDR:PORT, "
                         f"[ADDR]:PORT for IPv6), not {value!r}") from None


def _side(named: str, given: str, owned: bool, words: tuple[str, str]) -> tuple[str, str]:
    """(the interface of `in`/`out`, the host's own interface) once `from`/`to` named an
    interface: the host's own where the line starts or ends in it, else `in`/`out`."""
    if not named:
        return given, ""
    if owned:
        return given, named
    if given and given != named:
        raise ValueError(f"{words[0]} {named} and {words[1]} {given} disagree")
    return named, ""


@functools.lru_cache(maxsize=1 << 12)
def _network(text: str) -> Network:
    """A CIDR, parsed once: big policies repeat a few."""
    return ipaddress.ip_network(text, strict=False)


def _ends(value: Any, key: str) -> tuple[tuple[Network, ...], str]:
    """from/to: (CIDRs, an interface name or "")."""
    if value is None:
        return (), ""
    items = value if isinstance(value, list) else [value]
    nets, names = [], []
    for item in map(str, items):
        try:
            nets.append(_network(item))
        except ValueError as exc:
            if not _IFNAME.match(item) or any(c in item for c in ":/") or item[0].isdigit():
                raise ValueError(f"bad CIDR: {exc}") from None
            names.append(item)
    if len(names) > 1 or (names and nets):
        raise ValueError(f"{key} is CIDRs or one interface name, not both")
    return tuple(nets), (names[0] if names else "")
