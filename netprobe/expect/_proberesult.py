"""What `probe` found: the path hop by hop, the rewrites, the replies, and the ending."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..traffic._decode import summary
from ..traffic._stack import SocketReport
from ._ending import Ending
from ._path import Sighting, Trace, causal

SHOWN_HOPS = 40  # a loop repeats itself: the first ones say enough
_REWRITTEN = (("src", "ip.src", "ip6.src"), ("dst", "ip.dst", "ip6.dst"),
              ("sport", "l4.sport", "icmp.id"), ("dport", "l4.dport", "icmp.id"))  # fmt: skip


@dataclass(frozen=True)
class Hop:
    """One interface that saw the probe (or its reply): when, which way, in what shape,
    and what changed since the frame before it."""

    port: str
    direction: str
    ms: float  # after the send
    src: str | None
    sport: int | None
    dst: str | None
    dport: int | None
    ttl: int | None
    kind: str
    rewrites: tuple[str, ...]
    summary: str

    def to_dict(self) -> dict[str, Any]:
        """The hop as JSON data."""
        return {
            "port": self.port, "direction": self.direction, "ms": round(self.ms, 3),
            "src": self.src, "sport": self.sport, "dst": self.dst, "dport": self.dport,
            "ttl": self.ttl, "kind": self.kind, "rewrites": list(self.rewrites),
            "frame": self.summary,
        }  # fmt: skip

    def text(self) -> str:
        """One line: time, port, direction, addresses, and the rewrites."""
        ends = f"{_end(self.src, self.sport)} > {_end(self.dst, self.dport)}"
        what = "" if self.kind == "probe" else f" {self.kind}"
        changed = f"  [{', '.join(self.rewrites)}]" if self.rewrites else ""
        head = f"{self.ms:8.3f} ms  {self.port:<20} {self.direction:<3}"
        return f"{head} {ends} ttl {self.ttl}{what}{changed}"


def _end(address: str | None, port: int | None) -> str:
    return f"{address}" + (f".{port}" if port is not None else "")


def _field(fields: dict[str, Any], names: Sequence[str]) -> Any:
    return next((fields[n] for n in names if n in fields), None)


def hops(sightings: list[Sighting], sent_at: float) -> list[Hop]:
    """Sightings as hops, each with the rewrites since the one before it."""
    out: list[Hop] = []
    before: dict[str, Any] | None = None
    for s in sightings:
        now = {name: _field(s.fields, names) for name, *names in _REWRITTEN}
        changes = tuple(
            f"{name} {before[name]} → {now[name]}"
            for name in now
            if before is not None and before[name] != now[name]
        )
        out.append(Hop(
            s.port, s.direction, (s.frame.time - sent_at) * 1000, now["src"], now["sport"],
            now["dst"], now["dport"], s.ttl, s.kind, changes, summary(s.fields),
        ))  # fmt: skip
        before = now
    return out


@dataclass
class ProbeResult:
    """How a probe from a host's own stack ended, with the path it took there."""

    sender: str
    dst: str
    proto: str
    port: int | None
    ending: Ending
    where: str | None
    words: str
    trace: Trace
    socket: SocketReport | None
    src: str | None
    sport: int | None
    decided_by: str
    barriers: list[str]
    elapsed: float
    sent_at: float
    lost: dict[str, int] = field(default_factory=dict)
    watched: list[str] = field(default_factory=list)
    size: int | None = None  # the bytes an icmp or udp probe carried, DF set

    @property
    def ok(self) -> bool:
        """True when the probe got through (delivered, answered or not)."""
        return self.ending.ok

    @property
    def path(self) -> list[Hop]:
        """The probe's copies, in order, with their rewrites."""
        return hops(self.trace.copies, self.sent_at)

    @property
    def reply_path(self) -> list[Hop]:
        """Its replies and the ICMP errors about it, in order."""
        return hops(causal(self.trace.replies + self.trace.errors), self.sent_at)

    @property
    def target(self) -> str:
        """What was probed: "10.0.2.2 tcp/80"."""
        return f"{self.dst} {self.proto}" + (f"/{self.port}" if self.port else "")

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON data."""
        return {
            "from": self.sender,
            "to": self.dst,
            "proto": self.proto,
            "port": self.port,
            "size": self.size,
            "ok": self.ok,
            "ending": self.ending.name,
            "ending_text": self.ending.value,
            "where": self.where,
            "why": self.words,
            "socket": None if self.socket is None else {
                "kind": self.socket.kind, "errno": self.socket.errno,
                "icmp": list(self.socket.icmp) if self.socket.icmp else None,
                "offender": self.socket.offender, "at_send": self.socket.at_send,
            },
            "source": {"address": self.src, "port": self.sport},
            "tcp_isn": self.trace.isn,
            "path": [h.to_dict() for h in self.path],
            "reply_path": [h.to_dict() for h in self.reply_path],
            "unanswered_neighbour_requests": [
                {"port": p, "target": t} for p, t in self.trace.unanswered
            ],
            "decided_by": self.decided_by,
            "barriers": list(self.barriers),
            "capture_lost": dict(self.lost),
            "watched": list(self.watched),
            "elapsed_ms": round(self.elapsed * 1000, 3),
        }  # fmt: skip

    def render(self) -> str:
        """The result as text: the ending in words, then the path and the replies."""
        where = f" at {self.where}" if self.where else ""
        lines = [
            f"{self.sender} → {self.target}: {self.ending.value.upper()}{where}",
            f"  {self.words}",
            f"  socket: {self.socket.describe() if self.socket else 'the socket heard nothing'}",
            f"  decided by {self.decided_by} after {self.elapsed * 1000:.1f} ms",
        ]
        if self.lost:
            lines.append(
                "  capture lost frames: " + ", ".join(f"{h} {n}" for h, n in self.lost.items())
            )
        path = self.path
        lines.append(f"  path ({len(path)} sightings):" if path else "  path: no interface saw it")
        lines += ["    " + h.text() for h in path[:SHOWN_HOPS]]
        if len(path) > SHOWN_HOPS:
            lines.append(f"    … {len(path) - SHOWN_HOPS} more")
        back = self.reply_path
        if back:
            lines.append("  back:")
            lines += ["    " + h.text() for h in back[:SHOWN_HOPS]]
        for port, target in self.trace.unanswered:
            lines.append(f"  unanswered ARP/ND: {port} asked for {target}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()
