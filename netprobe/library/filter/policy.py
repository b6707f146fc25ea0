"""The policy file the filter and exposure checks read: what a host's firewall must do.

A YAML list, one entry (a "line") per expectation:

    - {proto: tcp, port: 22, from: [10.0.0.0/8, "fd00::/8"], expect: accept}
    - {proto: tcp, port: 23, expect: drop}
    - {proto: tcp, port: 443, chain: forward, to: 198.51.100.0/24, expect: accept}
    - {proto: tcp, port: 25, chain: output, expect: drop}

    proto   tcp or udp
    port    the destination port, 1-65535
    chain   input (the default: to the host), forward (through it) or output (from it)
    from    a source CIDR, or a list of them (one per address family); the probe's source
            is an address of the topology inside it
    to      destination CIDR(s): where forward and output probes go; for input, which of
            the host's addresses is probed
    expect  accept, or drop (reject counts as drop: the probe does not get through)

Each line is probed over IPv4 and over IPv6; `from` and `to` restrict it to the families
they name. Quote IPv6 CIDRs in flow style ("fd00::/8"): YAML reads a bare `::` there as
a key. The exposure check reads the same file: input lines say which ports a neighbour
is meant to reach (accept) or not (drop).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Any

import yaml

from netprobe.check import read_input
from netprobe.errors import SpecError

__all__ = ["CHAINS", "Line", "Network", "load_policy"]

CHAINS = ("input", "forward", "output")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_KEYS = {"proto", "port", "chain", "from", "to", "expect"}
_VERDICTS = {"accept": "accept", "drop": "drop", "reject": "drop"}


@dataclass(frozen=True)
class Line:
    """One expectation of the policy; `number` is the file line it starts on."""

    number: int
    proto: str
    port: int
    chain: str = "input"
    sources: tuple[Network, ...] = ()
    dests: tuple[Network, ...] = ()
    expect: str = "accept"

    @property
    def families(self) -> tuple[int, ...]:
        """The address families to probe: both, unless from/to name only one."""
        families = {4, 6}
        for nets in (self.sources, self.dests):
            if nets:
                families &= {n.version for n in nets}
        return tuple(sorted(families))

    def source(self, family: int) -> Network | None:
        """The line's source network in IPv`family` (None: from anywhere)."""
        return next((n for n in self.sources if n.version == family), None)

    def dest(self, family: int) -> Network | None:
        """The line's destination network in IPv`family` (None: to anywhere)."""
        return next((n for n in self.dests if n.version == family), None)

    @property
    def service(self) -> str:
        """The service as PROTO/PORT, e.g. tcp/22."""
        return f"{self.proto}/{self.port}"

    def __str__(self) -> str:
        text = f"{self.chain.upper()} {self.service}"
        if self.sources:
            text += " from " + ", ".join(map(str, self.sources))
        if self.dests:
            text += " to " + ", ".join(map(str, self.dests))
        return f"{text}: {self.expect}"


def load_policy(path: str | os.PathLike[str]) -> list[Line]:
    """Read a policy file; SpecError names the file and line of anything wrong."""
    path = os.fspath(path)
    loader = yaml.SafeLoader(read_input(path, "policy"))
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
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
    return lines


def _line(number: int, raw: Any) -> Line:
    if not isinstance(raw, dict):
        raise ValueError("each line is a mapping like {proto: tcp, port: 22, expect: accept}")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                         f"known: {', '.join(sorted(_KEYS))}")
    proto, port = str(raw.get("proto", "")).lower(), raw.get("port")
    chain, expect = str(raw.get("chain", "input")).lower(), str(raw.get("expect", "")).lower()
    if proto not in ("tcp", "udp"):
        raise ValueError(f"proto must be tcp or udp, not {raw.get('proto')!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValueError(f"port must be a number 1-65535, not {port!r}")
    if chain not in CHAINS:
        raise ValueError(f"chain must be one of {', '.join(CHAINS)}, not {chain!r}")
    if expect not in _VERDICTS:
        raise ValueError(f"expect must be accept or drop, not {raw.get('expect')!r}")
    line = Line(number, proto, port, chain, _nets(raw.get("from")), _nets(raw.get("to")),
                _VERDICTS[expect])
    if not line.families:
        raise ValueError("from and to name no address family in common")
    return line


def _nets(value: Any) -> tuple[Network, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    try:
        return tuple(ipaddress.ip_network(str(item), strict=False) for item in items)
    except ValueError as exc:
        raise ValueError(f"bad CIDR: {exc}") from None
