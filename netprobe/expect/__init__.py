"""Expectations: where a probe must (and must not) come out, in what shape, and why not."""

from __future__ import annotations

from ._ending import Ending
from ._expectation import Barrier, Where, at, at_any, at_exactly, end_ports, expect, nowhere
from ._fromhost import REPLIES, HostOutcome, expect_from_host
from ._match import ROUTED, Diff, Match, compare, expected_fields
from ._outcome import Copy, Outcome, PortReport, Verdict
from ._probe import prepare, probe
from ._proberesult import Hop, ProbeResult

__all__ = [
    "REPLIES",
    "ROUTED",
    "Barrier",
    "Copy",
    "Diff",
    "Ending",
    "Hop",
    "HostOutcome",
    "Match",
    "Outcome",
    "PortReport",
    "ProbeResult",
    "Verdict",
    "Where",
    "at",
    "at_any",
    "at_exactly",
    "compare",
    "end_ports",
    "expect",
    "expect_from_host",
    "expected_fields",
    "nowhere",
    "prepare",
    "probe",
]
