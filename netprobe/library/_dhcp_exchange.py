"""The server's side of a DHCP exchange, as the dhcp check watches it: the answers (OFFER,
ACK, NAK) to one client, read from the captures of the client's port and of the ports
they must never reach, and a barrier behind them.

A server's answer carries no nonce (servers clear `sname`), so it is known by its xid and
chaddr. Once the answer has reached the client, a broadcast sent from the server's port
behind it follows the same path through the bridge: when that barrier has reached every
port the answer must not, the answer had its chance there, and absence is proven.
"""

from __future__ import annotations

import select
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from netprobe.expect import Outcome
from netprobe.topology import Topology
from netprobe.traffic import Captured, DhcpMessage, arp, ethernet, find_nonce, parse_dhcp, ports

BARRIER_TIMEOUT = 1.0  # seconds for a broadcast to cross one bridge: it takes < 1 ms


@dataclass
class Answers:
    """What came back to the client for one request, and where else it went."""

    at_client: list[DhcpMessage] = field(default_factory=list)
    elsewhere: dict[str, list[DhcpMessage]] = field(default_factory=dict)
    barrier_missing: list[str] = field(default_factory=list)
    arp_answered: int = 0
    watched: float = 0.0  # seconds watched for other answers after the expected one

    def first(self, kinds: Iterable[str], server_mac: str | None = None) -> DhcpMessage | None:
        """The first answer of one of `kinds` (from `server_mac` if given)."""
        wanted = set(kinds)
        return next((m for m in self.at_client if m.kind in wanted
                     and (server_mac is None or m.eth_src == server_mac)), None)


class Watch:
    """Captures on the client's port and the ports its answers must not reach."""

    def __init__(self, topo: Topology, client: str, mac: str, others: list[str]) -> None:
        self.topo, self.client, self.mac, self.others = topo, client, mac, others
        self.pset = ports(topo)
        self.caps = {p: self.pset.capture(p) for p in [client, *others]}
        self.pending: dict[str, list[Captured]] = {p: [] for p in self.caps}
        self.leased: str | None = None  # the address the client answers ARP for
        self.server_ip: str | None = None

    def absorb(self, outcome: Outcome) -> None:
        """Frames an expectation read from ports watched here (they are judged too)."""
        for port, report in outcome.reports.items():
            if port in self.pending:
                self.pending[port] += report.frames

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select(list(self.caps.values()), [], [], max(0.0, timeout))
        for cap in ready:
            self.pending[cap.port] += cap.read()

    def answers(self, xid: int, kinds: set[str], server_mac: str, timeout: float,
                server_port: str, linger: float = 0.0) -> Answers:
        """Wait up to `timeout` s for an answer of `kinds` from `server_mac`, then `linger`
        s more for the other servers' answers, then send the barrier from `server_port`
        and read until it has reached every other port."""
        found = Answers(elsewhere={p: [] for p in self.others})
        self._until(xid, found, time.perf_counter() + timeout,
                    lambda: found.first(kinds, server_mac) is not None)
        if found.first(kinds, server_mac) is not None and linger > 0:
            self._until(xid, found, time.perf_counter() + linger, lambda: False)
            found.watched = linger
        if found.first(kinds, server_mac) is not None or found.at_client:
            self._barrier(xid, found, server_port)
        return found

    def _until(self, xid: int, found: Answers, deadline: float,
               done: Callable[[], bool]) -> None:
        """Read and sort what comes until `done()` or `deadline`."""
        self._sort(xid, found)
        while not done() and time.perf_counter() < deadline:
            self._read(min(0.05, deadline - time.perf_counter()))
            self._sort(xid, found)

    def _barrier(self, xid: int, found: Answers, server_port: str) -> None:
        frame, nonce = ethernet(self.topo.mac(server_port), "ff:ff:ff:ff:ff:ff").probe()
        self.pset.sender(server_port).send(frame)
        waiting = {self.client, *self.others}
        deadline = time.perf_counter() + BARRIER_TIMEOUT
        while waiting and time.perf_counter() < deadline:
            self._read(min(0.05, deadline - time.perf_counter()))
            for port in list(waiting):
                if any(find_nonce(c.data) == nonce for c in self.pending[port]):
                    waiting.discard(port)
            self._sort(xid, found)
        found.barrier_missing = sorted(waiting)

    def _sort(self, xid: int, found: Answers) -> None:
        """Move pending frames into `found`: answers to this client, ARP to answer."""
        for port, frames in self.pending.items():
            for captured in frames:
                if port == self.client and self._answer_arp(captured.data):
                    found.arp_answered += 1
                    continue
                msg = parse_dhcp(captured.data)
                if msg is None or msg.op != 2 or msg.xid != xid or msg.chaddr != self.mac:
                    continue
                (found.at_client if port == self.client else found.elsewhere[port]).append(msg)
            frames.clear()

    def _answer_arp(self, data: bytes) -> bool:
        """Answer an ARP request for the leased address, as the VM's stack would."""
        if self.leased is None or len(data) < 42 or data[12:14] != b"\x08\x06":
            return False
        op, sha, spa, tpa = struct.unpack_from("!H6s4s6x4s", data, 20)
        if op != 1 or tpa != bytes(int(b) for b in self.leased.split(".")):
            return False
        asker_mac = ":".join(f"{b:02x}" for b in sha)
        asker_ip = ".".join(str(b) for b in spa)
        reply, _ = arp(self.mac, self.leased, asker_ip, op="is-at", dst_mac=asker_mac).probe()
        self.pset.sender(self.client).send(reply)
        return True
