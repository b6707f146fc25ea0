"""The result of an expectation: a verdict, and evidence readable without Wireshark."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._failing import failing
from ..errors import CheckFailed
from ..traffic._capture import Captured, CaptureStats
from ..traffic._craft import find_nonce
from ..traffic._decode import Fields, decode, summary
from ..traffic._pcap import write_pcap
from . import _evidence as evidence
from ._match import Diff, Match, compare, expected_fields, kind_of

if TYPE_CHECKING:
    from ..topology import Topology
    from ..traffic._craft import Template
    from ._expectation import Where


SHOWN_FRAMES = 5  # per port, in the evidence


class Verdict(enum.Enum):
    """An expectation's verdict; INCONCLUSIVE when the evidence cannot decide (say, lost frames)."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class Copy:
    """A frame carrying probe `index`'s nonce, and how it differs from what was expected."""

    index: int
    frame: Captured
    diffs: list[Diff]


@dataclass(frozen=True)
class PortReport:
    """What one watched port saw: every frame, the probes' copies, whether the barrier came."""

    port: str
    frames: list[Captured]
    copies: list[Copy]
    barrier_seen: bool
    stats: CaptureStats
    negative: bool  # the probes must not appear here
    related: list[Copy] = field(default_factory=list)  # ICMP errors, replies quoting a probe


@dataclass
class Outcome:
    """The verdict of one expectation, with the evidence it was decided on."""

    verdict: Verdict
    reason: str
    probe: str
    port: str
    where: Where
    match: Match
    sent: list[Fields]
    reports: dict[str, PortReport]
    decided_by: str
    elapsed: float
    barrier: str | None = None
    pcaps: dict[str, str] = field(default_factory=dict)
    injected: list[Captured] = field(default_factory=list)  # the probes, then the barrier
    matches: dict[str, Match] = field(default_factory=dict)  # each watched port's match
    frames_per_probe: int = 1  # several when a probe is a datagram's fragments
    # What explaining it needs, and what explaining found (the pytest plugin explains a
    # failure as it is asserted): never serialised, the topology never pickled.
    topo: Topology | None = field(default=None, repr=False, compare=False)
    frames: tuple[Template, ...] = field(default=(), repr=False, compare=False)
    explanation: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "topo": None}

    @property
    def count(self) -> int:
        """How many probes were sent."""
        return len(self.sent) // self.frames_per_probe

    def match_at(self, port: str) -> Match:
        """The match copies at `port` were judged by."""
        return self.matches.get(port, self.match)

    @property
    def passed(self) -> bool:
        """True when the verdict is PASS."""
        return self.verdict is Verdict.PASS

    def assert_passed(self) -> None:
        """Raise CheckFailed with the evidence (and pcap paths) unless the verdict is PASS;
        failure hooks (the pytest plugin's explanation) see it first, the topology standing."""
        __tracebackhide__ = True
        if not self.passed:
            if not self.pcaps:
                self.save_pcaps()
            failing(self)
            raise CheckFailed(self.evidence(), self)

    def save_pcaps(self, directory: str | None = None) -> dict[str, str]:
        """Write one pcapng per watched port; return {port: path}. Without `directory`:
        under $NETPROBE_EVIDENCE, else in a temporary directory removed at exit."""
        directory = directory or evidence.new_dir()
        os.makedirs(directory, exist_ok=True)
        for port, report in self.reports.items():
            path = os.path.join(directory, port.replace(":", "-").replace("@", "-") + ".pcapng")
            write_pcap(path, port, report.frames)
            self.pcaps[port] = path
        return self.pcaps

    def to_dict(self) -> dict[str, Any]:
        """The expectation as JSON data (format documented in docs/json.md)."""
        barrier_frames = self.injected[len(self.sent) :]
        return {
            "probe": self.probe,
            "port": self.port,
            "where": {
                "kind": self.where.kind,
                "ports": list(self.where.ports),
                "among": list(self.where.among) if self.where.among is not None else None,
            },
            "match": self.match.describe(),
            "matches": {p: m.describe() for p, m in self.matches.items() if m != self.match},
            "count": self.count,
            "frames_per_probe": self.frames_per_probe,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "decided_by": self.decided_by,
            "elapsed_ms": round(self.elapsed * 1000, 3),
            "barrier": self.barrier,
            "ports": {port: _port_dict(report) for port, report in self.reports.items()},
            "pcaps": dict(self.pcaps),
            "injected": [
                {"port": f.port, "frame": f.data.hex(), "barrier": f in barrier_frames}
                for f in self.injected
            ],
        }

    def evidence(self) -> str:
        """The verdict, what was sent and expected, and what each port saw, as text."""
        frames = f" of {self.frames_per_probe} frames" if self.frames_per_probe > 1 else ""
        lines = [
            f"{self.verdict.value}: {self.reason}",
            f"  probe: {self.probe}, {self.count}{frames} sent into {self.port}",
            f"  expected {self.where.kind} {' '.join(self.where.ports)}".rstrip()
            + f" ({self.match.describe()})",
            f"  decided by {self.decided_by} after {self.elapsed * 1000:.1f} ms",
        ]
        watched = [p for p, r in self.reports.items() if r.negative]
        if self.where.kind in ("at_exactly", "nowhere"):
            lines.insert(3, "  watched where it must not be: " + (" ".join(watched) or "no port"))
        if self.barrier:
            lines.append(f"  barrier: {self.barrier}")
        barriers = {find_nonce(f.data) for f in self.injected[len(self.sent) :]}
        for port, report in self.reports.items():
            own = self.match_at(port)
            lines += _port_lines(
                report, self.sent, own, barriers - {None}, self.frames_per_probe,
                own if own != self.match else None,
            )  # fmt: skip
        if self.pcaps:
            paths = list(self.pcaps.values())
            until = " (removed when this process exits)" if evidence.is_temporary(paths[0]) else ""
            lines.append(f"  pcaps{until}: " + " ".join(paths))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.evidence()


def _port_dict(report: PortReport) -> dict[str, Any]:
    return {
        "role": "must not see it" if report.negative else "must see it",
        "frames": len(report.frames),
        "copies": len(report.copies),
        "related": len(report.related),
        "barrier_seen": report.barrier_seen,
        "kernel_drops": report.stats.drops,
    }


def _port_lines(
    report: PortReport, sent: list[Fields], match: Match, barriers: set[bytes | None],
    frames: int = 1, own: Match | None = None,
) -> list[str]:  # fmt: skip
    """One port's lines: its role (and its own match, when it has one), the copies and
    how they differ, the closest frame when no copy came, the frames related or not."""
    role = "must not see it" if report.negative else "must see it"
    if own is not None:
        role += f"; {own.describe()}"
    stats = f", {report.stats.drops} lost" if report.stats.drops else ""
    lines = [
        f"  {report.port} ({role}): {len(report.frames)} frames{stats}"
        + (", barrier arrived" if report.barrier_seen else "")
    ]
    for copy in report.copies[:SHOWN_FRAMES]:
        state = "matches" if not copy.diffs else "differs"
        name = label(copy.index, frames)
        lines.append(f"    {name} {state}: {summary(decode(copy.frame.data))}")
        lines += [f"      {diff}" for diff in copy.diffs]
    if not report.copies and report.frames and not report.negative:
        lines += _closest(report.frames, sent[0], match)
    for rel in report.related[:SHOWN_FRAMES]:
        lines.append(
            f"    quotes {label(rel.index, frames)} (an ICMP error or a reply, not a copy): "
            f"{summary(decode(rel.frame.data))}"
        )
    known = {c.frame for c in report.copies} | {c.frame for c in report.related}
    shown = [f for f in report.frames if f not in known]
    lines += [
        f"    {'barrier: ' if find_nonce(f.data) in barriers else ''}{summary(decode(f.data))}"
        for f in shown[:SHOWN_FRAMES]
    ]
    if len(shown) > SHOWN_FRAMES:
        lines.append(f"    … {len(shown) - SHOWN_FRAMES} more")
    return lines


def _closest(frames: list[Captured], sent: Fields, match: Match) -> list[str]:
    """No copy arrived: among frames of the probe's kind (family, protocol, ICMP type),
    the one that differs in the fewest fields, and how; nothing when none is of its kind
    (an IPv6 multicast listener report says nothing about a lost IPv4 probe)."""
    expected, ignored = expected_fields(sent, match)
    ignored = ignored | {"payload"}  # another frame's payload always differs
    kind = kind_of(expected)
    decoded = [(decode(f.data), f) for f in frames[:500]]
    ranked = sorted(
        ((compare(expected, ignored, fields), f) for fields, f in decoded
         if kind_of(fields) == kind),
        key=lambda pair: len(pair[0]),
    )  # fmt: skip
    if not ranked:
        return []
    diffs, frame = ranked[0]
    lines = [f"    closest frame (no copy of the probe): {summary(decode(frame.data))}"]
    return lines + [f"      {diff}" for diff in diffs]


def label(index: int, frames: int) -> str:
    """How evidence names sent frame `index`: "probe 2", or "probe 2 frame 3" when each
    probe is several frames (fragments)."""
    if frames == 1:
        return f"probe {index + 1}"
    return f"probe {index // frames + 1} frame {index % frames + 1}"
