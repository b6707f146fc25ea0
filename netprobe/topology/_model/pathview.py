"""A probe's path as plain data for the topology's picture, and where it runs on it.

The layers that follow a probe (`netprobe.expect`, `netprobe.explain`) say what it did
in these terms; the picture only draws them. Pure: no kernel, no files.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class PathHop:
    """One interface that saw the probe ("HOST:IFNAME"), which way ("in", "out" or ""
    when not known), and the fields rewritten since the frame before it
    ("src 10.0.0.10 → 192.0.2.1")."""

    port: str
    direction: str = ""
    rewrites: tuple[str, ...] = ()

    @property
    def host(self) -> str:
        """The host that saw it."""
        return self.port.split(":", 1)[0]

    @property
    def ifname(self) -> str:
        """The interface that saw it."""
        return self.port.split(":", 1)[1] if ":" in self.port else ""


@dataclass(frozen=True)
class DrawnPath:
    """What a picture shows of one probe: its hops in order, how it ended (`ending` in
    words, `ok` when it got through), where (`where`: "HOST:IFNAME" or a host) and why
    (`cause`); the hosts whose rulesets NAT (`nat`) or filter (`firewall`)."""

    title: str
    hops: tuple[PathHop, ...] = ()
    ok: bool = False
    ending: str = ""
    where: str | None = None
    cause: str = ""
    nat: tuple[str, ...] = ()
    firewall: tuple[str, ...] = ()

    def role(self, host: str) -> str:
        """ "NAT", "firewall", "NAT, firewall" or "" for `host`."""
        return ", ".join(
            name for name, hosts in (("NAT", self.nat), ("firewall", self.firewall))
            if host in hosts
        )  # fmt: skip


@dataclass(frozen=True)
class Segment:
    """One edge of the picture the probe crossed, from node `a` to node `b`; `link` when
    the topology draws that edge (a veth, a port of a bridge), else a hop through a host;
    `label`: the rewrites that happened on the way."""

    a: str
    b: str
    label: str
    link: bool


def node_id(host: str, name: str) -> str:
    """The picture's node name of interface `name` of `host`."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{host}__{name}")


def segments(edges: list[tuple[str, str, str]], nodes: set[str], path: DrawnPath) -> list[Segment]:
    """The edges the probe crossed, in order, each once: a veth or bridge-port edge the
    topology has, a way through a host's own edges (in by one bridge port, out by
    another), or else a jump from one interface to the next."""
    graph: dict[str, set[str]] = {}
    for a, b, _style in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set()).add(a)
    out: list[Segment] = []
    seen: set[tuple[str, str]] = set()
    here: str | None = None
    for hop in path.hops:
        there = node_id(hop.host, hop.ifname)
        if there not in nodes:
            continue
        if here is not None and here != there:
            out += _walk(graph, here, there, ", ".join(hop.rewrites), seen)
        here = there
    return out


def _walk(
    graph: dict[str, set[str]], a: str, b: str, label: str, seen: set[tuple[str, str]]
) -> list[Segment]:
    """a → b: the edge between them, the shortest way over the host's own edges (same
    host prefix), or a jump; edges crossed before are not drawn twice."""
    if b in graph.get(a, ()):
        way = [a, b]
    else:
        way = _shortest(graph, a, b, a.split("__", 1)[0] + "__") or []
    steps = list(itertools.pairwise(way)) or [(a, b)]
    out = []
    for i, (x, y) in enumerate(steps):
        if (x, y) in seen:
            continue
        seen.add((x, y))
        out.append(Segment(x, y, label if i == len(steps) - 1 else "", bool(way)))
    return out


def _shortest(graph: dict[str, set[str]], a: str, b: str, prefix: str) -> list[str] | None:
    """The shortest way from a to b over nodes of one host (whose ids start `prefix`)."""
    if not b.startswith(prefix):
        return None
    back: dict[str, str] = {a: a}
    queue = deque([a])
    while queue:
        node = queue.popleft()
        if node == b:
            way = [b]
            while way[-1] != a:
                way.append(back[way[-1]])
            return way[::-1]
        for nxt in sorted(graph.get(node, ())):
            if nxt not in back and nxt.startswith(prefix):
                back[nxt] = node
                queue.append(nxt)
    return None


def ending_node(path: DrawnPath, nodes: set[str]) -> str | None:
    """The node the ending is drawn at: `where` as an interface, or the last interface of
    that host the probe was seen on, or its last hop."""
    where = path.where or (path.hops[-1].port if path.hops else None)
    if where is None:
        return None
    host, _, ifname = where.partition(":")
    if ifname and node_id(host, ifname) in nodes:
        return node_id(host, ifname)
    here = [node_id(h.host, h.ifname) for h in path.hops if h.host == host]
    known = [n for n in here if n in nodes]
    if known:
        return known[-1]
    last = [node_id(h.host, h.ifname) for h in path.hops]
    return next((n for n in reversed(last) if n in nodes), None)


def wrap(text: str, width: int = 46) -> list[str]:
    """`text` in lines of about `width` characters, broken at spaces (and at its own
    line breaks)."""
    lines: list[str] = []
    for paragraph in text.splitlines():
        start = len(lines)
        for word in paragraph.split():
            if len(lines) > start and len(lines[-1]) + 1 + len(word) <= width:
                lines[-1] += " " + word
            else:
                lines.append(word)
    return lines
