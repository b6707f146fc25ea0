"""Kernel drop reasons for one probe, from the `skb:kfree_skb` tracepoint.

The kernel logs every freed-on-error socket buffer with a reason (NO_SOCKET, OTHERHOST,
NETFILTER_DROP, ...) and the code location that dropped it; that log covers every
namespace, so most of it is unrelated traffic. A drop is attributed to the probe by the
buffer's address: the probe is seen leaving its port (`net:net_dev_xmit`) and arriving
at each device of the topology (`net:netif_receive_skb`, filtered on the topology's
device names, and by the probe's length, since names like eth0 repeat between
namespaces). A `kfree_skb` of an address on that chain is the probe's drop; a
`consume_skb` ends the chain (the address may be reused). Names of the reasons come from
the tracepoint's own format file, never from a table compiled into netprobe.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._tracefs import Instance, Symbols

KFREE, CONSUME = "kfree_skb", "consume_skb"
RECEIVE, XMIT = "netif_receive_skb", "net_dev_xmit"
EVENTS = ("skb/kfree_skb", "skb/consume_skb", "net/netif_receive_skb", "net/net_dev_xmit")
ETH_HLEN = 14
CLONE_WINDOW = 0.01  # s: a copy of the probe is made within this of its last sighting
_SLACK = (0, 4, -4, 8, -8)  # VLAN tags added or removed on the way

_LINE = re.compile(
    r"^\s*(?P<task>.*?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:[\w.]{4,6}\s+)?(?P<ts>\d+\.\d+):\s+(?P<event>\w+):\s?(?P<body>.*)$"
)
_PAIR = re.compile(r"(\w+)=(\S*)")
_SYMBOLIC = re.compile(r"__print_symbolic\(\s*REC->reason\s*,(?P<table>.*)\)", re.S)
_ENTRY = re.compile(r"\{\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*\"(\w+)\"\s*\}")


def parse_reasons(format_text: str) -> dict[int, str]:
    """{number: name} from `events/skb/kfree_skb/format` (its print fmt's symbolic table);
    empty when this kernel's tracepoint has no drop reasons."""
    match = _SYMBOLIC.search(format_text)
    if not match:
        return {}
    return {int(num, 0): name for num, name in _ENTRY.findall(match.group("table"))}


@dataclass(frozen=True)
class TraceEvent:
    """One line of the trace buffer."""

    event: str
    task: str
    pid: int
    cpu: int
    ts: float
    fields: Mapping[str, str]
    text: str

    @property
    def skbaddr(self) -> str:
        """The buffer's address, which ties the events of one packet together ("" if absent)."""
        return self.fields.get("skbaddr", "")

    @property
    def dev(self) -> str:
        """The device the event names ("" if absent)."""
        return self.fields.get("dev", "")

    @property
    def length(self) -> int:
        """The packet's length in bytes (-1 if absent)."""
        value = self.fields.get("len", "")
        return int(value) if value.isdigit() else -1


def parse_line(line: str) -> TraceEvent | None:
    """A trace buffer line → its event (None for headers and lines not understood)."""
    match = _LINE.match(line)
    if not match:
        return None
    body = match.group("body")
    fields = dict(_PAIR.findall(body))
    _head, sep, reason = body.partition("reason: ")
    if sep:
        fields["reason"] = reason.strip()
    if match.group("event") == "tracing_mark_write":
        fields["marker"] = body.strip()
    return TraceEvent(
        match.group("event"),
        match.group("task").strip(),
        int(match.group("pid")),
        int(match.group("cpu")),
        float(match.group("ts")),
        fields,
        line.strip(),
    )


def parse_trace(text: str, marker: str | None = None) -> list[TraceEvent]:
    """The events of a trace buffer; with `marker`, only those after that marker line."""
    events = [e for e in map(parse_line, text.splitlines()) if e is not None]
    if marker is None:
        return events
    at = next((i for i, e in enumerate(events) if e.fields.get("marker") == marker), len(events))
    return events[at + 1 :]


@dataclass(frozen=True)
class Wiring:
    """Which host each kernel device name belongs to, and which device each veth end's
    frames arrive on: what turns a trace's device names into hosts."""

    names: Mapping[str, tuple[str, ...]]  # kernel device name → hosts having it
    peers: Mapping[tuple[str, str], tuple[str, str]]  # (host, dev) → (host, dev)

    def locate(
        self, dev: str, hint: str | None, sent_from: Sequence[tuple[str, str]] = ()
    ) -> str | None:
        """The host of `dev`: the peer of a device the buffer was sent from, else the
        hint, else the only host with a device of that name."""
        for sender in reversed(sent_from):
            peer = self.peers.get(sender)
            if peer is not None and peer[1] == dev:
                return peer[0]
        hosts = self.names.get(dev, ())
        if hint in hosts:
            return hint
        return hosts[0] if len(hosts) == 1 else None


@dataclass(frozen=True)
class Hop:
    """The probe seen on a device: sent (net_dev_xmit) or received (netif_receive_skb)."""

    event: str
    device: str
    host: str | None

    def describe(self) -> str:
        """Where the packet was seen, e.g. "arrived on h1:eth0"."""
        verb = "left by" if self.event == XMIT else "arrived on"
        return f"{verb} {self.host or '?'}:{self.device}"


@dataclass(frozen=True)
class Drop:
    """A freed-on-error buffer: why, where in the kernel, and on which host."""

    reason: str
    location: str
    host: str | None
    device: str | None
    protocol: int
    skbaddr: str

    def describe(self) -> str:
        """The drop's reason, kernel location and device in one line."""
        where = f" on {self.host or '?'}:{self.device}" if self.device else ""
        return f"kfree_skb reason {self.reason} at {self.location}{where}"


@dataclass(frozen=True)
class DropReport:
    """What the drop trace found for one probe."""

    available: bool
    drops: tuple[Drop, ...] = ()
    path: tuple[Hop, ...] = ()
    others: tuple[Drop, ...] = ()  # in the window, on buffers not attributed to the probe
    overruns: int = 0
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The report as the results document holds it."""
        return {
            "available": self.available,
            "drops": [d.describe() for d in self.drops],
            "path": [h.describe() for h in self.path],
            "other_drops": len(self.others),
            "overruns": self.overruns,
            "notes": list(self.notes),
        }


@dataclass
class _Chain:
    """The buffers known to carry the probe, and where each was last seen.

    A buffer not yet on the chain joins it only where the probe can be: as the first
    event on the probe's own port, or sent out of a host the probe has already reached,
    right after it was last seen (a bridge's flood copies). Unrelated frames of the same
    length on devices that share a name (eth0 in every namespace) stay out, and so do
    new buffers sent out of the sender's port (its other frames: a barrier) or of a device
    the probe arrived on (an answer going back, an echo reply as long as the probe: no
    bridge floods a copy back out of the port it came in by). How fast the machine is
    then changes nothing of the path.
    """

    wiring: Wiring
    frame_len: int
    first_dev: str | None = None
    where: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    sent: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    path: list[Hop] = field(default_factory=list)
    reached: set[str] = field(default_factory=set)
    last_host: str | None = None
    last_ts: float = 0.0

    def plausible(self, event: TraceEvent) -> bool:
        if event.dev not in self.wiring.names:
            return False
        base = self.frame_len - (ETH_HLEN if event.event == RECEIVE else 0)
        return any(event.length == base + delta for delta in _SLACK)

    def joins(self, event: TraceEvent, host: str | None) -> bool:
        """May a buffer not seen before be a copy of the probe?"""
        if not self.plausible(event):
            return False
        if not self.path:
            return self.first_dev is None or event.dev == self.first_dev
        recent = event.ts - self.last_ts <= CLONE_WINDOW
        back = (host, event.dev) in self.arrived or (host, event.dev) == self.origin
        return (
            event.event == XMIT and host is not None and host in self.reached and recent
            and not back
        )  # fmt: skip

    @property
    def origin(self) -> tuple[str | None, str]:
        """The device the probe was first seen on (its sender's port)."""
        first = self.path[0]
        return first.host, first.device

    @property
    def arrived(self) -> set[tuple[str | None, str]]:
        """The devices the probe was received on."""
        return {(h.host, h.device) for h in self.path if h.event == RECEIVE}

    def see(self, event: TraceEvent, first_host: str) -> None:
        addr = event.skbaddr
        known = addr in self.where
        hint = self.where[addr][0] if known else self.last_host or first_host
        host = self.wiring.locate(event.dev, hint, self.sent.get(addr, ()))
        if not known and not self.joins(event, host):
            return
        self.last_host = host or self.last_host
        self.last_ts = event.ts
        self.where[addr] = (host, event.dev)
        if host is not None:
            self.reached.add(host)
            if event.event == XMIT:
                self.sent.setdefault(addr, []).append((host, event.dev))
        self.path.append(Hop(event.event, event.dev, host))

    def ended(self, now: float) -> bool:
        """Whether the probe is done with, by the trace itself: every buffer that carried
        it was freed or consumed, and no copy can join any more (CLONE_WINDOW has passed
        since its last sighting; `now` on the trace's clock)."""
        return bool(self.path) and not self.where and now - self.last_ts > CLONE_WINDOW


def attribute(
    events: Iterable[TraceEvent],
    *,
    frame_len: int,
    first_host: str,
    wiring: Wiring,
    symbols: Symbols | None = None,
    first_dev: str | None = None,
) -> tuple[list[Drop], list[Hop], list[Drop]]:
    """(the probe's drops, its path, other drops) from the events after its marker;
    `first_dev` is the kernel name of the device the probe is sent into."""
    chain, drops, others = _follow(events, first_host, _Chain(wiring, frame_len, first_dev),
                                   symbols)  # fmt: skip
    return drops, chain.path, others


def _follow(
    events: Iterable[TraceEvent], first_host: str, chain: _Chain, symbols: Symbols | None
) -> tuple[_Chain, list[Drop], list[Drop]]:
    drops: list[Drop] = []
    others: list[Drop] = []
    for event in events:
        if event.event in (XMIT, RECEIVE):
            chain.see(event, first_host)
        elif event.event == CONSUME:
            chain.where.pop(event.skbaddr, None)
            chain.sent.pop(event.skbaddr, None)
        elif event.event == KFREE:
            host, dev = chain.where.pop(event.skbaddr, (None, None))
            drop = _drop(event, host, dev, symbols)
            (drops if dev is not None else others).append(drop)
    return chain, drops, others


def _drop(event: TraceEvent, host: str | None, dev: str | None, symbols: Symbols | None) -> Drop:
    location = event.fields.get("location", "?")
    if symbols is not None:
        location = symbols.resolve(location)
    protocol = event.fields.get("protocol", "")
    return Drop(
        event.fields.get("reason", "NOT_SPECIFIED"),
        location,
        host,
        dev,
        int(protocol) if protocol.isdigit() else -1,
        event.skbaddr,
    )


# The kernel refuses an event filter of a page or more (EINVAL): about 250 names.
FILTER_MAX = 4000


def _device_filter(names: Sequence[str]) -> str:
    """The net/ events' filter: each device by name; where that is too long for the
    kernel (a large topology), names differing only in a trailing number as one glob
    (p0..p999: `name ~ "p[0-9]*"`), else by first letter. A glob may let another
    topology's devices in too: more events to read, never a wrong one, since the trace
    follows the probe's own buffers."""
    exact = " || ".join(f'name == "{n}"' for n in sorted(names))
    if len(exact) <= FILTER_MAX:
        return exact
    stems: dict[str, list[str]] = {}
    for name in names:
        stems.setdefault(name.rstrip("0123456789"), []).append(name)
    terms = []
    for stem, group in sorted(stems.items()):
        if stem and len(group) > 1:
            terms.append(f'name ~ "{_glob_quote(stem)}[0-9]*"')
        else:
            terms += [f'name == "{n}"' for n in group]
    stemmed = " || ".join(terms)
    if len(stemmed) <= FILTER_MAX:
        return stemmed
    firsts = sorted({_glob_quote(n[0]) for n in names if n})
    return " || ".join(f'name ~ "{c}*"' for c in firsts)


def _glob_quote(text: str) -> str:
    """`text` matched literally in a kernel glob (its specials in brackets)."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


class DropTrace:
    """A trace instance armed for probes through one topology's devices."""

    def __init__(self, wiring: Wiring, *, runid: str = "x") -> None:
        self.wiring = wiring
        self.instance = Instance(runid)
        self.reasons: dict[int, str] = {}
        self.symbols: Symbols | None = None
        self._markers = 0
        self._filter = ""
        self._pending = ""  # a line the kernel has not finished giving

    def __enter__(self) -> DropTrace:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Make the instance and enable the events (SetupError if tracefs is unusable)."""
        self.instance.open()
        try:
            self.reasons = parse_reasons(self.instance.format("skb/kfree_skb"))
            self._filter = _device_filter(list(self.wiring.names))
            for event in EVENTS:
                if not self.instance.has_event(event):
                    self.instance.notes.append(f"this kernel has no {event} tracepoint")
                    continue
                self.instance.enable(event, self._filter if event.startswith("net/") else None)
            self.symbols = Symbols.lazy()
        except BaseException:
            self.instance.close()
            raise

    def begin(self, wiring: Wiring) -> None:
        """Record again, for `wiring`'s devices now (an open instance kept for the next
        probes, idle in between)."""
        self.wiring = wiring
        names = _device_filter(list(wiring.names))
        if names != self._filter:
            for event in EVENTS:
                if event.startswith("net/") and self.instance.has_event(event):
                    self.instance.enable(event, names)
            self._filter = names
        self.instance.take()  # what the last probe left behind
        self._pending = ""
        self.instance.switch(True)

    def events(self) -> list[TraceEvent]:
        """The events logged since the last read (`trace_pipe`, consumed, without waiting)."""
        lines = (self._pending + self.instance.take()).split("\n")
        self._pending = lines.pop()
        return [e for e in map(parse_line, lines) if e is not None]

    def end(self) -> None:
        """Stop recording until the next `begin`."""
        with contextlib.suppress(OSError):  # gone: close() has nothing left to do
            self.instance.switch(False)

    def close(self) -> None:
        """Disable and remove the trace instance (and unmount tracefs if it was mounted for it)."""
        self.instance.close()

    def mark(self, what: str) -> str:
        """Write a marker before a probe; returns the marker text to read from."""
        self._markers += 1
        text = f"netprobe probe {self._markers}: {what}"
        self.instance.mark(text)
        return text

    def collect(
        self,
        marker: str,
        *,
        frame_len: int,
        first_host: str,
        first_dev: str | None = None,
        quiet: float = 0.03,
        deadline: float = 0.5,
    ) -> DropReport:
        """Read until the trace shows the probe done with (`_Chain.ended`), else until
        nothing new arrives for `quiet` seconds, then attribute."""
        chain, drops, others = self._settle(
            marker, (quiet, deadline), lambda: _Chain(self.wiring, frame_len, first_dev),
            first_host,
        )  # fmt: skip
        notes = list(self.instance.notes)
        overruns = self.instance.overruns()
        if overruns:
            notes.append(f"the trace ring buffer overran: {overruns} events lost")
        if not self.reasons:
            notes.append("this kernel's kfree_skb tracepoint gives no drop reasons")
        path = tuple(chain.path)
        return DropReport(True, tuple(drops), path, tuple(others), overruns, tuple(notes))

    def _settle(
        self, marker: str, waits: tuple[float, float], fresh: Callable[[], _Chain],
        first_host: str,
    ) -> tuple[_Chain, list[Drop], list[Drop]]:
        quiet, deadline = waits
        start = last_change = time.perf_counter()
        events: list[TraceEvent] = []
        marked = False
        while True:
            new = self.events()
            if not marked:
                at = next((i for i, e in enumerate(new) if e.fields.get("marker") == marker), None)
                marked, new = (True, new[at + 1 :]) if at is not None else (False, [])
            events += new
            found = _follow(events, first_host, fresh(), self.symbols)
            now = time.perf_counter()
            if self.instance.monotonic and found[0].ended(time.monotonic()):
                return found
            if new:
                last_change = now
            if now - last_change >= quiet or now - start >= deadline:
                return found
            time.sleep(0.002)
