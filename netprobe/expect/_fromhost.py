"""An expectation sent from a host's own stack: where the probe must (not) appear, in
what shape, and what must come back to the sender.

`expect` sends a crafted frame into a port; `expect_from_host` sends from a socket of
the host, so its routes, source address selection, OUTPUT rules (local DNAT, redirect)
and connection state take part. The probe is followed by `probe`; its copies are known by
their mark whatever NAT did to them, so `where` names ports and `match` says what the copy
there must look like (its rewrites). The reply is judged as an expectation of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._failing import failing
from ..errors import TrafficError
from ..topology import Port, Topology
from ..traffic._decode import decode
from ._expectation import Where, _text
from ._match import ROUTED, Match, compare, expected_fields
from ._outcome import Verdict
from ._probe import probe
from ._proberesult import ProbeResult

# What `reply` may ask for, and the reply kinds (or endings) that satisfy it.
REPLIES = {
    "answer": ("echo-reply", "syn-ack", "udp-reply", "answered"),
    "echo-reply": ("echo-reply",),
    "syn-ack": ("syn-ack",),
    "rst": ("rst",),
    "icmp-error": ("icmp-error",),
    "refused": ("rst", "icmp-error"),
    "none": (),
}


@dataclass
class HostOutcome:
    """The verdict of an expectation sent from a host's stack, with the probe's story."""

    verdict: Verdict
    reason: str
    result: ProbeResult
    where: Where | None
    reply: str | None
    matches: dict[str, Match] = field(default_factory=dict)  # port → its copy's shape
    back: dict[str, Match] = field(default_factory=dict)  # port → the reply's shape there
    # What explaining it needs (with `result`, `where`, `matches`) and what explaining
    # found (the pytest plugin explains a failure as it is asserted): never serialised.
    topo: Topology | None = field(default=None, repr=False, compare=False)
    explanation: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "topo": None}

    @property
    def passed(self) -> bool:
        """True when the verdict is PASS."""
        return self.verdict is Verdict.PASS

    def assert_passed(self) -> None:
        """Raise CheckFailed with the evidence unless the verdict is PASS; failure hooks
        (the pytest plugin's explanation) see it first, the topology standing."""
        __tracebackhide__ = True
        from ..errors import CheckFailed

        if not self.passed:
            failing(self)
            raise CheckFailed(self.evidence(), self)

    def evidence(self) -> str:
        """The verdict and the reason, then the probe's path and ending."""
        wanted = []
        if self.where is not None:
            ports = [_shaped(p, self.matches.get(p)) for p in self.where.ports]
            wanted.append(f"{self.where.kind} {' '.join(ports)}".rstrip())
        wanted += [f"the reply back at {_shaped(p, m)}" for p, m in self.back.items()]
        if self.reply is not None:
            wanted.append(f"reply {self.reply}")
        head = f"{self.verdict.value}: {self.reason}"
        return "\n".join([head, "  expected " + ", ".join(wanted), self.result.render()])

    def to_dict(self) -> dict[str, Any]:
        """The expectation as JSON data."""
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "where": None if self.where is None else {
                "kind": self.where.kind, "ports": list(self.where.ports),
                "among": list(self.where.among) if self.where.among is not None else None,
            },
            "reply": self.reply,
            "matches": {p: m.describe() for p, m in self.matches.items()},
            "back": {p: m.describe() for p, m in self.back.items()},
            "probe": self.result.to_dict(),
        }  # fmt: skip

    def __str__(self) -> str:
        return self.evidence()


def _shaped(port: str, match: Match | None) -> str:
    return port if match is None else f"{port} ({match.describe()})"


def expect_from_host(
    topo: Topology,
    host: str,
    proto: str,
    dst: str,
    port: int | None = None,
    *,
    where: Where | None = None,
    match: Match | Mapping[str | Port, Match] | None = None,
    reply: str | None = None,
    back: Mapping[str | Port, Match] | None = None,
    hosts: Sequence[str] | None = None,
    timeout: float = 1.0,
    sport: int | None = None,
) -> HostOutcome:
    """Send one `proto` probe from `host`'s own stack to `dst` (`port`) and judge it:
    `where` the ports it must (not) appear at, seen going in or out (any rewrite allowed
    unless `match` says what the copy there must be: ROUTED's mask is added; one Match
    for every port of `where`, or {port: Match}, a port not named allowing any);
    `reply`: one of "answer", "echo-reply", "syn-ack", "rst", "icmp-error", "refused" or
    "none", which must come back to `host` tied to the probe (None: not judged); `back`:
    {port: Match}, ports the reply (or ICMP error) must pass on its way back, in that shape
    relative to the reply as it was sent (masquerade: back at the inside port with the
    dst the inside host had). `sport`: the source port a tcp or udp probe leaves from
    (else one chosen for it)."""
    if reply is not None and reply not in REPLIES:
        raise ValueError(f"reply is one of {', '.join(REPLIES)}, not {reply!r}")
    matches = _per_port(match, where)
    backs = {_text(p): m for p, m in (back or {}).items()}
    result = probe(
        topo, host, dst, proto, port, hosts=hosts, timeout=timeout, sport=sport,
        awaits_answer=reply == "answer",  # a program's answer: no barrier decides it
    )  # fmt: skip
    verdict, reason = judge_host(result, where, matches, reply, backs)
    return HostOutcome(verdict, reason, result, where, reply, matches, backs, topo=topo)


def _per_port(
    match: Match | Mapping[str | Port, Match] | None, where: Where | None
) -> dict[str, Match]:
    if match is None:
        return {}
    ports = where.ports if where is not None else ()
    if isinstance(match, Match):
        return dict.fromkeys(ports, match)
    per_port = {_text(p): m for p, m in match.items()}
    stray = [p for p in per_port if p not in ports]
    if stray:
        raise TrafficError(f"a match for {stray[0]}, which is not among where's ports")
    return per_port


def judge_host(
    result: ProbeResult,
    where: Where | None,
    match: Match | Mapping[str, Match] | None,
    reply: str | None,
    back: Mapping[str, Match] | None = None,
) -> tuple[Verdict, str]:
    """The verdict: a copy where none may be fails whatever else; capture loss makes the
    rest unprovable; absence counts only when the answer or a barrier decided it."""
    copies = result.trace.copies
    seen = {c.port for c in copies}
    if where is not None:
        among = where.among if where.among is not None else ()
        negative = where.kind in ("at_exactly", "nowhere")
        banned = [p for p in among if p not in where.ports] if negative else []
        leaked = [p for p in banned if p in seen]
        if leaked:
            return Verdict.FAIL, f"the probe reached {leaked[0]}, where it must not"
    if result.lost:
        lost = ", ".join(f"{h} ({n} dropped)" for h, n in result.lost.items())
        return Verdict.INCONCLUSIVE, f"capture lost frames in {lost}"
    if where is not None:
        found = _positives(result, where, match)
        if found is not None:
            return Verdict.FAIL, found
    if reply is not None:
        found = _reply(result, reply)
        if found is not None:
            return Verdict.FAIL, found
    found = _back(result, back or {})
    if found is not None:
        return Verdict.FAIL, found
    if result.decided_by.startswith("the deadline") and _needs_absence(where, reply):
        return Verdict.INCONCLUSIVE, (
            "no answer and no barrier came back: absence is not proven "
            f"({result.ending.value} at {result.where})"
        )
    return Verdict.PASS, f"as expected ({result.ending.value})"


def _needs_absence(where: Where | None, reply: str | None) -> bool:
    return reply == "none" or (where is not None and where.kind in ("at_exactly", "nowhere"))


def _positives(
    result: ProbeResult, where: Where, match: Match | Mapping[str, Match] | None
) -> str | None:
    by_port: dict[str, list[Any]] = {}
    for copy in result.trace.copies:
        by_port.setdefault(copy.port, []).append(copy)
    first = result.trace.copies[0] if result.trace.copies else None
    hits = []
    for port in where.ports:
        here = by_port.get(port, [])
        if not here:
            continue
        own = match if match is None or isinstance(match, Match) else match.get(port)
        if own is None or first is None:
            hits.append(port)
            continue
        diffs = _shape(first, own, here[0])
        if diffs:
            return f"the probe arrived altered at {port}: " + "; ".join(str(d) for d in diffs)
        hits.append(port)
    if where.kind == "at_any" and not hits:
        return f"the probe reached none of {', '.join(where.ports)} ({result.words})"
    missing = [p for p in where.ports if p not in hits]
    if where.kind != "at_any" and missing:
        return f"the probe never reached {missing[0]} ({result.ending.value}: {result.words})"
    return None


def _shape(base: Any, match: Match, seen: Any) -> list[Any]:
    """How `seen` differs from `base` (the first sighting) under `match` (ROUTED added);
    the IP id and the payload are the sender's and the replier's own."""
    wanted = Match(ROUTED.mask | match.mask, match.rewrites)
    expected, ignored = expected_fields(decode(base.frame.data), wanted)
    return compare(expected, ignored | {"ip.id", "payload"}, seen.fields)


def _back(result: ProbeResult, back: Mapping[str, Match]) -> str | None:
    """The ports the reply must pass, each in its shape, relative to the reply as sent."""
    answers = result.trace.replies + result.trace.errors
    for port, match in back.items():
        here = [r for r in answers if r.port == port]
        if not here:
            return f"the reply never passed {port} ({result.ending.value}: {result.words})"
        diffs = _shape(answers[0], match, here[0])
        if all(_shape(answers[0], match, r) for r in here):
            return f"the reply passed {port} altered: " + "; ".join(str(d) for d in diffs)
    return None


def _reply(result: ProbeResult, reply: str) -> str | None:
    back = [
        r for r in result.trace.replies + result.trace.errors
        if r.host == result.sender and r.direction == "in"
    ]  # fmt: skip
    kinds = {r.kind for r in back}
    if result.socket is not None and result.socket.kind == "answered":
        kinds.add("answered")
    if reply == "none":
        return f"a reply came back: {', '.join(sorted(kinds))}" if back else None
    if kinds & set(REPLIES[reply]):
        return None
    said = result.socket.describe() if result.socket else "nothing"
    return f"no {reply} came back to {result.sender} (the socket: {said}; {result.words})"
