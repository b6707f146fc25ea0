"""What `netprobe probe` found: the probe's story, and why it died when it did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..expect import ProbeResult

if TYPE_CHECKING:
    from ..explain import Explanation


@dataclass
class Diagnosis:
    """One probe from a host's own stack: how it ended, its path, and the ranked causes
    of a failure. `ok` when it got through."""

    result: ProbeResult
    topology: str
    hosts: list[str]
    explanation: Explanation | None = None
    notes: list[str] = field(default_factory=list)
    bundle: str | None = None
    picture: str | None = None  # the file the path was drawn into (--picture)

    @property
    def ok(self) -> bool:
        """True when the probe got through (delivered, answered or not)."""
        return self.result.ok

    def to_dict(self) -> dict[str, Any]:
        """The diagnosis as JSON data (`netprobe probe --json`)."""
        return {
            "ok": self.ok,
            "topology": self.topology,
            "hosts": list(self.hosts),
            "probe": self.result.to_dict(),
            "explanation": self.explanation.to_dict() if self.explanation else None,
            "notes": list(self.notes),
            "bundle": self.bundle,
        }

    def render(self) -> str:
        """The probe's story, then (for a failure) the likeliest causes."""
        lines = [self.result.render()]
        if self.explanation is not None:
            lines.append(self.explanation.render())
        lines += [f"note: {n}" for n in self.notes]
        if self.bundle:
            lines.append(f"bundle: {self.bundle}")
        if self.picture:
            lines.append(f"picture: {self.picture}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()
