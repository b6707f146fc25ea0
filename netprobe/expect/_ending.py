"""How a stack-sent probe ended, from what its socket said and what the captures saw.

Pure logic: the engine (`_probe.py`) gathers the evidence, this names the ending, where
it happened and, in the words a person uses, why that is the reading.
"""

from __future__ import annotations

import enum
from collections.abc import Set
from dataclasses import dataclass

from ..traffic._stack import SocketReport
from ._path import Sighting, Trace


class Ending(enum.Enum):
    """How a probe ended; DELIVERED_ANSWERED and DELIVERED (a UDP probe that reached the
    host holding its destination, which need not answer) are the ones that got through."""

    DELIVERED_ANSWERED = "delivered and answered"
    DELIVERED = "delivered, no answer"
    REFUSED = "refused"
    DROPPED = "dropped"
    NO_ROUTE = "no route"
    NO_NEIGHBOUR = "no neighbour"
    LOOPED = "looped"

    @property
    def ok(self) -> bool:
        """True for the endings that got through."""
        return self in (Ending.DELIVERED_ANSWERED, Ending.DELIVERED)


@dataclass(frozen=True)
class Verdict:
    """An ending, where it happened ("HOST:IFNAME", or a host), and why, in words."""

    ending: Ending
    where: str | None
    words: str


_ANSWERS = ("echo-reply", "syn-ack", "udp-reply")
_TIME_EXCEEDED = {4: 11, 6: 3}
_UNREACHABLE = {4: 3, 6: 1}
# Destination unreachable codes: net (and its kin) means no route; the rest a refusal.
_NO_ROUTE_CODES = {4: (0, 6, 11), 6: (0,)}
_NO_NEIGHBOUR_CODES = {4: (), 6: (3,)}
_SEND_NO_ROUTE = ("ENETUNREACH", "EHOSTUNREACH", "EADDRNOTAVAIL")
_SEND_DROPPED = ("EPERM", "EACCES")


def _icmp_words(error: Sighting | None, report: SocketReport | None) -> str:
    if error is not None and error.icmp is not None:
        src = error.fields.get("ip.src", error.fields.get("ip6.src"))
        return f"ICMP {error.icmp[0]}/{error.icmp[1]} from {src}, seen at {error.port}"
    if report is not None and report.icmp is not None:
        return f"ICMP {report.icmp[0]}/{report.icmp[1]} from {report.offender}"
    return ""


def classify(
    trace: Trace,
    report: SocketReport | None,
    *,
    sender: str,
    proto: str,
    version: int,
    holders: Set[tuple[str, str]] = frozenset(),
) -> Verdict:
    """The ending. `holders`: (host, address) pairs the live state says exist, to tell a
    UDP probe that reached its destination from one that died before."""
    if report is not None and report.at_send and report.kind != "answered":
        return _at_send(report, sender)
    looped = _looped(trace, report, version)
    if looped is not None:
        return looped
    answers = [r for r in trace.replies if r.kind in _ANSWERS]
    home = [r for r in answers if r.host == sender and r.direction == "in"]
    if (report is not None and report.kind == "answered") or home:
        via = f": {home[0].kind} back at {home[0].port}" if home else ""
        where = trace.last.port if trace.last is not None else None
        return Verdict(Ending.DELIVERED_ANSWERED, where, "answered" + via)
    if answers:  # it got there; the answer did not get back
        last, reached = answers[-1], trace.last.port if trace.last is not None else "?"
        return Verdict(
            Ending.DROPPED, last.port,
            f"it reached {reached} and was answered ({last.kind}), but the answer died on "
            f"the way back: last seen at {last.port} ({last.direction})",
        )  # fmt: skip
    refused = _refused(trace, report, version)
    if refused is not None:
        return refused
    return _silent(trace, report, sender=sender, proto=proto, holders=holders, version=version)


def _at_send(report: SocketReport, sender: str) -> Verdict:
    said = report.describe()
    if report.errno in _SEND_NO_ROUTE:
        return Verdict(Ending.NO_ROUTE, sender, f"{sender}'s own kernel refused to send: {said}")
    if report.errno in _SEND_DROPPED:
        return Verdict(
            Ending.DROPPED, sender, f"{sender}'s own OUTPUT rules dropped it at the send: {said}"
        )
    return Verdict(Ending.DROPPED, sender, f"{sender} could not send it: {said}")


def _looped(trace: Trace, report: SocketReport | None, version: int) -> Verdict | None:
    again = trace.looped()
    exceeded = next(
        (e for e in trace.errors if e.icmp and e.icmp[0] == _TIME_EXCEEDED[version]), None
    )
    by_socket = (
        report is not None
        and report.icmp is not None
        and (report.icmp[0] == _TIME_EXCEEDED[version])
    )
    if again is None and exceeded is None and not by_socket:
        return None
    parts = []
    if again is not None:
        first = next(
            c for c in trace.copies if (c.port, c.direction) == (again.port, again.direction)
        )
        parts.append(
            f"seen again at {again.port} ({again.direction}) with ttl {again.ttl} "
            f"after ttl {first.ttl}"
        )
    if exceeded is not None or by_socket:
        parts.append("time exceeded: " + _icmp_words(exceeded, report))
    where = again.port if again is not None else (exceeded.port if exceeded else None)
    return Verdict(Ending.LOOPED, where, "; ".join(parts))


def _refused(trace: Trace, report: SocketReport | None, version: int) -> Verdict | None:
    rst = next((r for r in trace.replies if r.kind == "rst"), None)
    if rst is not None:
        src = rst.fields.get("ip.src", rst.fields.get("ip6.src"))
        return Verdict(Ending.REFUSED, rst.port, f"a TCP RST from {src}, first seen at {rst.port}")
    error = trace.errors[0] if trace.errors else None
    icmp = error.icmp if error is not None else (report.icmp if report else None)
    if icmp is not None:
        words = _icmp_words(error, report)
        where = error.port if error is not None else (report.offender if report else None)
        if icmp[0] != _UNREACHABLE[version] or (version, icmp[1]) == (4, 4):
            return Verdict(Ending.DROPPED, where, "an ICMP error came back: " + words)
        if icmp[1] in _NO_ROUTE_CODES[version]:
            return Verdict(Ending.NO_ROUTE, where, "a router has no route: " + words)
        if icmp[1] in _NO_NEIGHBOUR_CODES[version]:
            return Verdict(Ending.NO_NEIGHBOUR, where, "a router found no neighbour: " + words)
        return Verdict(Ending.REFUSED, where, "refused: " + words)
    if report is not None and report.kind == "refused":
        return Verdict(Ending.REFUSED, None, "the socket said " + report.describe())
    if report is not None and report.kind == "error":
        return Verdict(Ending.DROPPED, None, "the socket said " + report.describe())
    return None


def _silent(
    trace: Trace,
    report: SocketReport | None,
    *,
    sender: str,
    proto: str,
    holders: Set[tuple[str, str]],
    version: int = 4,
) -> Verdict:
    last = trace.last
    host = last.host if last is not None else sender
    if proto == "udp" and last is not None and last.direction == "in":
        dst = last.fields.get("ip.dst", last.fields.get("ip6.dst"))
        if (last.host, str(dst)) in holders:
            return Verdict(
                Ending.DELIVERED,
                last.port,
                f"reached {last.port}, whose host holds {dst}; nothing came back "
                "(a UDP service need not answer, and no ICMP error said it is closed)",
            )
    asked = [  # the next hop's resolution, not the ND chatter of an IPv4 probe's link
        (p, t) for p, t in trace.unanswered
        if p.split(":", 1)[0] == host and (":" in t) == (version == 6)
    ]  # fmt: skip
    if asked:
        port, target = asked[0]
        return Verdict(
            Ending.NO_NEIGHBOUR,
            port,
            f"{host} asked for {target} on {port} (ARP/ND) and nobody answered",
        )
    if last is None:
        return Verdict(Ending.DROPPED, sender, f"it never left {sender}: no interface saw it")
    more = " and went no further" if last.direction == "in" else ", and its peer never saw it"
    return Verdict(Ending.DROPPED, last.port, f"last seen at {last.port} ({last.direction}){more}")
