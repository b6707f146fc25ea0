"""Expectations: where a probe must (and must not) come out, in what shape, and why not."""

from __future__ import annotations

from ._expectation import Barrier, Where, at, at_any, at_exactly, end_ports, expect, nowhere
from ._match import ROUTED, Diff, Match, compare, expected_fields
from ._outcome import Copy, Outcome, PortReport, Verdict

__all__ = [
    "ROUTED",
    "Barrier",
    "Copy",
    "Diff",
    "Match",
    "Outcome",
    "PortReport",
    "Verdict",
    "Where",
    "at",
    "at_any",
    "at_exactly",
    "compare",
    "end_ports",
    "expect",
    "expected_fields",
    "nowhere",
]
