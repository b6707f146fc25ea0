"""What a check's Result says, with the evidence as the message when it is not what a test needs."""

from __future__ import annotations

from netprobe.check import Result, Status

DELIVERED = "the probe was delivered, not dropped: it reached "


def top_cause(result: Result) -> str:
    """The text of explain's top cause for the first explained failure."""
    assert result.explanation, result.evidence()
    text: str = result.explanation[0]["text"]
    return text


def delivered_cause(result: Result) -> str:
    """The top cause, which must say the probe arrived where it must not (a leak, a flood)."""
    text = top_cause(result)
    assert text.startswith(DELIVERED), text
    return text


def diagnosis_of(result: Result) -> str:
    """The diagnosis of a result that must have failed."""
    assert result.status is Status.FAIL, result.evidence()
    assert result.diagnosis is not None, result.evidence()
    return result.diagnosis


def failed_steps(result: Result) -> list[str]:
    """The names of the steps that failed, in order."""
    return [s.name for s in result.steps if s.status is Status.FAIL]
