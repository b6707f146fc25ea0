"""Explain: where a failed probe died and why (kernel drop reasons, the nft rule that
dropped it, counter deltas and the state that bears on it), as a ranked list of causes."""

from __future__ import annotations

from ..traffic._droptrace import Drop, DropReport, DropTrace, Hop, parse_reasons
from ._cause import rank
from ._counters import Delta, Snapshot, deltas, snapshot
from ._explanation import Explanation, explain, wiring_of
from ._facts import Cause, Findings, HostFacts, LinkFacts
from ._nfttrace import NftReport, NftTrace, TraceStep, parse_monitor
from ._stackprobe import explain_probe

__all__ = [
    "Cause",
    "Delta",
    "Drop",
    "DropReport",
    "DropTrace",
    "Explanation",
    "Findings",
    "Hop",
    "HostFacts",
    "LinkFacts",
    "NftReport",
    "NftTrace",
    "Snapshot",
    "TraceStep",
    "deltas",
    "explain",
    "explain_probe",
    "parse_monitor",
    "parse_reasons",
    "rank",
    "snapshot",
    "wiring_of",
]
