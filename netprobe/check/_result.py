"""A check's result: a verdict, the steps that led to it, and a diagnosis that names the fault."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CheckFailed
from ..expect._outcome import Outcome
from ..expect._outcome import Verdict as ExpectVerdict

if TYPE_CHECKING:
    from ..explain import Explanation



class Status(enum.Enum):
    """PASS, FAIL and INCONCLUSIVE as for expectations; SKIP when this machine lacks what
    the check needs; ERROR when the check could not run (bad input, a broken topology)."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    SKIP = "SKIP"
    ERROR = "ERROR"

    @classmethod
    def of(cls, verdict: ExpectVerdict) -> Status:
        """The status of an expectation's verdict (the same name)."""
        return cls(verdict.value)


_SEVERITY = [Status.ERROR, Status.FAIL, Status.INCONCLUSIVE, Status.PASS, Status.SKIP]


@dataclass
class Step:
    """One thing the check established, with its evidence (and, when an expectation
    failed, the explanation: ranked causes)."""

    name: str
    status: Status
    detail: str = ""
    outcome: Outcome | None = None
    explanation: Explanation | None = None
    key: str | None = None  # a stable identity when the name carries values that vary

    @property
    def id(self) -> str:
        """What pairs this step with the same step of another run (replay)."""
        return self.key or self.name

    def evidence_text(self) -> str | None:
        """The expectation's evidence as text (None for a step established otherwise)."""
        return self.outcome.evidence() if self.outcome is not None else None

    def evidence(self) -> str:
        """The verdict line; unless it passed, the evidence and explanation below."""
        head = f"[{self.status.value}] {self.name}" + (f": {self.detail}" if self.detail else "")
        if self.status is Status.PASS:
            return head
        text = self.evidence_text() or ""
        if self.explanation is not None:
            text += "\n" + self.explanation.render()
        body = "\n".join("    " + line for line in text.strip("\n").splitlines())
        return f"{head}\n{body}" if body else head


@dataclass
class Result:
    """What one run of a check found: its status, summary, steps and where its bundle went."""

    check: str
    status: Status
    summary: str
    steps: list[Step] = field(default_factory=list)
    diagnosis: str | None = None
    duration: float = 0.0
    topology: str | None = None
    bundle: str | None = None  # the bug-report bundle written for this result, if any
    not_run: list[str] = field(default_factory=list)  # steps planned but not taken
    traceback: str | None = None  # ERROR from a bug in the check: where it broke

    @property
    def verdict(self) -> Status:
        """The status, under the name expectations give it."""
        return self.status

    @property
    def passed(self) -> bool:
        """True when the status is PASS."""
        return self.status is Status.PASS

    @property
    def explanation(self) -> list[dict[str, Any]]:
        """The ranked causes of the first explained failure (most likely first)."""
        for step in self.steps:
            if step.explanation is not None and step.explanation.causes:
                return [cause.to_dict() for cause in step.explanation.causes]
        return []

    def assert_passed(self) -> None:
        """Raise CheckFailed with the evidence unless the check passed."""
        __tracebackhide__ = True
        if not self.passed:
            for step in self.steps:
                outcome = step.outcome
                if outcome is not None and step.status is not Status.PASS and not outcome.pcaps:
                    outcome.save_pcaps()
            raise CheckFailed(self.evidence(), self)

    def evidence(self) -> str:
        """The result as text: verdict, diagnosis, steps' evidence, steps not run, traceback."""
        lines = [f"{self.check}: {self.status.value} — {self.summary}"]
        if self.diagnosis:
            label = "remedy" if self.status is Status.SKIP else "diagnosis"
            lines.append(f"  {label}: {self.diagnosis}")
        lines += ["  " + step.evidence().replace("\n", "\n  ") for step in self.steps]
        if self.not_run:
            lines.append(f"  {len(self.not_run)} not run: {', '.join(self.not_run)}")
        if self.traceback:
            lines += ["  " + line for line in self.traceback.rstrip("\n").splitlines()]
        if self.bundle:
            lines.append(f"  bug-report bundle: {self.bundle}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.evidence()

    def to_dict(self) -> dict[str, Any]:
        """The result as the JSON results document holds it."""
        return {
            "check": self.check,
            "status": self.status.value,
            "summary": self.summary,
            "diagnosis": self.diagnosis,
            "duration": round(self.duration, 4),
            "topology": self.topology,
            "bundle": self.bundle,
            "explanation": self.explanation,
            "not_run": list(self.not_run),
            "traceback": self.traceback,
            "steps": [
                {
                    "id": s.id,
                    "name": s.name,
                    "status": s.status.value,
                    "detail": s.detail,
                    "evidence": s.evidence_text(),
                    "expectation": s.outcome.to_dict() if s.outcome else None,
                    "explanation": s.explanation.to_dict() if s.explanation else None,
                }
                for s in self.steps
            ],
        }


def overall(steps: list[Step]) -> Status:
    """The worst status among the steps (a check with no steps has proven nothing)."""
    if not steps:
        return Status.ERROR
    statuses = {s.status for s in steps}
    if statuses == {Status.SKIP}:
        return Status.SKIP
    return next(s for s in _SEVERITY if s in statuses)
