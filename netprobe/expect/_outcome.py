"""The result of an expectation: a verdict, and evidence readable without Wireshark."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CheckFailed
from ..traffic._capture import Captured, CaptureStats
from ..traffic._decode import Fields, decode, summary
from ..traffic._pcap import write_pcap
from . import _evidence as evidence
from ._match import Diff, Match, compare, expected_fields

if TYPE_CHECKING:
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

    @property
    def count(self) -> int:
        """How many probes were sent."""
        return len(self.sent)

    @property
    def passed(self) -> bool:
        """True when the verdict is PASS."""
        return self.verdict is Verdict.PASS

    def assert_passed(self) -> None:
        """Raise CheckFailed with the evidence (and pcap paths) unless the verdict is PASS."""
        __tracebackhide__ = True
        if not self.passed:
            if not self.pcaps:
                self.save_pcaps()
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
        barrier_frames = self.injected[self.count :]
        return {
            "probe": self.probe,
            "port": self.port,
            "where": {
                "kind": self.where.kind,
                "ports": list(self.where.ports),
                "among": list(self.where.among) if self.where.among is not None else None,
            },
            "match": self.match.describe(),
            "count": self.count,
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
        lines = [
            f"{self.verdict.value}: {self.reason}",
            f"  probe: {self.probe}, {len(self.sent)} sent into {self.port}",
            f"  expected {self.where.kind} {' '.join(self.where.ports)}".rstrip()
            + f" ({self.match.describe()})",
            f"  decided by {self.decided_by} after {self.elapsed * 1000:.1f} ms",
        ]
        if self.barrier:
            lines.append(f"  barrier: {self.barrier}")
        for report in self.reports.values():
            lines += _port_lines(report, self.sent, self.match)
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


def _port_lines(report: PortReport, sent: list[Fields], match: Match) -> list[str]:
    role = "must not see it" if report.negative else "must see it"
    stats = f", {report.stats.drops} lost" if report.stats.drops else ""
    lines = [
        f"  {report.port} ({role}): {len(report.frames)} frames{stats}"
        + (", barrier arrived" if report.barrier_seen else "")
    ]
    for copy in report.copies[:SHOWN_FRAMES]:
        state = "matches" if not copy.diffs else "differs"
        lines.append(f"    probe {copy.index + 1} {state}: {summary(decode(copy.frame.data))}")
        lines += [f"      {diff}" for diff in copy.diffs]
    if not report.copies and report.frames and not report.negative:
        lines += _closest(report.frames, sent[0], match)
    for rel in report.related[:SHOWN_FRAMES]:
        lines.append(
            f"    quotes probe {rel.index + 1} (an ICMP error or a reply, not a copy): "
            f"{summary(decode(rel.frame.data))}"
        )
    known = {c.frame for c in report.copies} | {c.frame for c in report.related}
    shown = [f for f in report.frames if f not in known]
    lines += [f"    {summary(decode(f.data))}" for f in shown[:SHOWN_FRAMES]]
    if len(shown) > SHOWN_FRAMES:
        lines.append(f"    … {len(shown) - SHOWN_FRAMES} more")
    return lines


def _closest(frames: list[Captured], sent: Fields, match: Match) -> list[str]:
    """No copy arrived: the frame that differs in the fewest fields, and how."""
    expected, ignored = expected_fields(sent, match)
    ignored = ignored | {"payload"}  # another frame's payload always differs
    ranked = sorted(
        ((compare(expected, ignored, decode(f.data)), f) for f in frames[:500]),
        key=lambda pair: len(pair[0]),
    )
    diffs, frame = ranked[0]
    lines = [f"    closest frame (no copy of the probe): {summary(decode(frame.data))}"]
    return lines + [f"      {diff}" for diff in diffs]
