"""The nftables rule that dropped a probe, from `nft monitor trace`.

A table of netprobe's own (`netprobe_trace_RUNID`, in each traced host) sets `meta
nftrace set 1` on the probe alone, matched by its 16-byte nonce, at prerouting with a
priority before every other chain. In a namespace netprobe did not create, the table's
removal is written to the run's record before the table is added, so `netprobe clean`
removes it after a kill. `nft monitor trace`, started inside the host and given time to
subscribe, then reports each chain and rule the probe went through with its verdict.
iptables-nft rulesets are nft tables underneath, so their rules show up too. The table
is deleted and the monitor stopped on every path.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import NetprobeError
from ..topology import Topology
from ..topology._kernel import nfnl
from ..traffic._craft import NONCE_LEN, Template

TABLE = "netprobe_trace"  # … followed by _RUNID: the name of netprobe's own trace tables
_NFNL_PROTO = "12"  # NETLINK_NETFILTER, as /proc/net/netlink shows it
_EVENT = re.compile(r"^trace id (\S+) (\S+) (\S+) (\S+) (.*)$")
_RULE = re.compile(r"^rule (?P<rule>.*?)(?: # handle (?P<handle>\d+))? \(verdict (?P<v>[^)]*)\)")
_COUNTER = re.compile(r"\s*counter packets \d+ bytes \d+")
_FAMILIES = ("ip", "ip6", "inet", "bridge")


@dataclass(frozen=True)
class TraceStep:
    """One line of `nft monitor trace`: a packet seen, a rule's verdict, or a policy."""

    trace_id: str
    family: str
    table: str
    chain: str
    kind: str  # "packet", "rule", "policy" or "other"
    rule: str | None = None
    handle: int | None = None
    verdict: str | None = None

    def describe(self) -> str:
        """The rule or chain policy this step is, in one line."""
        where = f"{self.family} {self.table} {self.chain}"
        if self.kind == "policy":
            return f"the policy of chain {where} ({self.verdict})"
        handle = f", handle {self.handle}" if self.handle is not None else ""
        return f"rule `{self.rule}` (chain {where}{handle})"

    @property
    def action(self) -> str | None:
        """drop or reject for a final verdict; None otherwise."""
        if self.verdict != "drop":
            return None
        return "reject" if self.rule and re.search(r"\breject\b", self.rule) else "drop"


def parse_monitor(text: str) -> list[TraceStep]:
    """Every trace line of `nft [-a] monitor trace` output, in order."""
    steps = []
    for line in text.splitlines():
        match = _EVENT.match(line.strip())
        if not match:
            continue
        trace_id, family, table, chain, rest = match.groups()
        steps.append(_step(trace_id, family, table, chain, rest))
    return steps


def _step(trace_id: str, family: str, table: str, chain: str, rest: str) -> TraceStep:
    if rest.startswith("packet:"):
        return TraceStep(trace_id, family, table, chain, "packet")
    rule = _RULE.match(rest)
    if rule:
        text = _COUNTER.sub("", rule.group("rule")).strip()
        handle = int(rule.group("handle")) if rule.group("handle") else None
        verdict = rule.group("v").strip()
        return TraceStep(trace_id, family, table, chain, "rule", text, handle, verdict)
    if rest.startswith("policy "):
        return TraceStep(trace_id, family, table, chain, "policy", verdict=rest.split()[1])
    return TraceStep(trace_id, family, table, chain, "other", rule=rest.strip())


def own_table(name: str) -> bool:
    """Whether nft table `name` is one of netprobe's trace tables."""
    return name.startswith(TABLE)


def table_name(runid: str) -> str:
    """The trace table of run `runid` (an nft identifier: letters, digits, underscores)."""
    return TABLE + "_" + re.sub(r"\W", "_", runid)


def final_verdict(steps: list[TraceStep]) -> TraceStep | None:
    """The first drop (or reject) outside netprobe's own table."""
    return next((s for s in steps if not own_table(s.table) and s.action is not None), None)


def match_expression(frame: Template, nonce: bytes) -> str | None:
    """An nft expression matching exactly this probe, by its nonce; None for frames
    netfilter's IP hooks never see (not IPv4 or IPv6)."""
    data = frame.data
    at, ethertype = 12, struct.unpack_from("!H", data, 12)[0]
    while ethertype in (0x8100, 0x88A8) and at + 6 <= len(data):
        at += 4
        ethertype = struct.unpack_from("!H", data, at)[0]
    if ethertype not in (0x0800, 0x86DD):
        return None
    value = "0x" + nonce.hex()
    if frame.csum_at is not None and frame.csum_from:
        return f"@th,{(frame.nonce_at - frame.csum_from) * 8},{NONCE_LEN * 8} {value}"
    return f"@nh,{(frame.nonce_at - at - 2) * 8},{NONCE_LEN * 8} {value}"


def trace_table(families: list[str], expression: str, name: str = TABLE) -> str:
    """The nft script of netprobe's trace tables (an inet one, and a bridge one if the
    host filters bridged frames)."""
    out = []
    for family in families:
        out.append(
            f"table {family} {name} {{\n"
            f"  chain pre {{\n    type filter hook prerouting priority -500;\n"
            f"    {expression} meta nftrace set 1\n  }}\n}}\n"
        )
    return "".join(out)


@dataclass(frozen=True)
class NftReport:
    """The trace of one probe in one host."""

    host: str
    steps: tuple[TraceStep, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def verdict(self) -> TraceStep | None:
        """The step that decided the packet's fate (None when no verdict was traced)."""
        return final_verdict(list(self.steps))

    def to_dict(self) -> dict[str, Any]:
        """The report as the results document holds it."""
        final = self.verdict
        return {
            "host": self.host,
            "verdict": final.describe() if final else None,
            "steps": [s.describe() for s in self.steps if s.kind in ("rule", "policy")],
            "notes": list(self.notes),
        }


@dataclass
class _Monitor:
    host: str
    families: list[str]
    undo: dict[str, dict[str, Any]] = field(default_factory=dict)  # family → record entry
    proc: subprocess.Popen[bytes] | None = None
    text: bytes = b""
    notes: list[str] = field(default_factory=list)


class NftTrace:
    """Trace tables and monitors in every host that has an nftables ruleset."""

    def __init__(
        self, topo: Topology, hosts: list[str] | None = None, *, foreign: set[str] | None = None
    ) -> None:
        self.topo = topo
        self.hosts = hosts if hosts is not None else list(topo.hosts)
        self.foreign = foreign or set()  # hosts netprobe did not make: tables go on record
        self.table = table_name(topo.runid)
        self.monitors: list[_Monitor] = []
        self._families: dict[str, list[str]] | None = None

    def ruleset_hosts(self) -> list[str]:
        """The hosts that have an nftables ruleset (iptables-nft included) to trace."""
        if self._families is None:
            found = [self._families_of(h) for h in self.hosts]
            self._families = {h: f for h, f in zip(self.hosts, found, strict=True) if f}
        return list(self._families)

    def arm(self, expression: str, hosts: list[str] | None = None) -> None:
        """Add the trace tables and start each monitor; return once all listen."""
        chosen = self.ruleset_hosts() if hosts is None else hosts
        try:
            for host in chosen:
                mon = _Monitor(host, list((self._families or {}).get(host, ["inet"])))
                self.monitors.append(mon)
                self._note_undo(mon)
                script = trace_table(mon.families, expression, self.table)
                self.topo.run(host, ["nft", "-f", "-"], input=script, check=True)
                mon.proc = self._start(host)
            for mon in self.monitors:
                if mon.proc is not None and not _subscribed(mon.proc.pid):
                    mon.notes.append("nft monitor trace did not start listening in time")
        except BaseException:
            self.disarm()
            raise

    def collect(self, quiet: float = 0.03) -> list[NftReport]:
        """Stop the monitors and parse what each reported."""
        try:
            for mon in self.monitors:
                mon.text += _drain(mon.proc, quiet) if mon.proc else b""
        finally:
            self.disarm()
        return [
            NftReport(m.host, tuple(parse_monitor(m.text.decode(errors="replace"))), tuple(m.notes))
            for m in self.monitors
        ]

    def disarm(self) -> None:
        """Stop every monitor, then delete every trace table, whatever fails on the way
        (safe to call twice)."""
        try:
            for mon in self.monitors:
                try:
                    _stop(mon)
                finally:
                    if mon.proc is not None and mon.proc.returncode is None:
                        mon.proc.kill()
                        mon.proc.wait()
        finally:
            for mon in self.monitors:
                for family in list(mon.families):
                    with contextlib.suppress(NetprobeError):
                        self.topo.run(mon.host, ["nft", "delete", "table", family, self.table])
                    mon.families.remove(family)
                    entry = mon.undo.pop(family, None)
                    if entry is not None:
                        self.topo.forget_undo(entry)

    def _note_undo(self, mon: _Monitor) -> None:
        """Put each table to add in a namespace netprobe did not make on the run's record
        first, so that a run killed before `disarm` still has it removed."""
        if mon.host not in self.foreign:
            return
        ns = self.topo.namespace(mon.host) or ""
        for family in mon.families:
            entry = {"ns": ns, "nft_table": [family, self.table]}
            self.topo.note_undo(entry)
            mon.undo[family] = entry

    def _families_of(self, host: str) -> list[str] | None:
        """The trace tables `host` needs; None when it has no ruleset to trace (its
        tables read over netlink: no process)."""
        if shutil.which("nft") is None:
            return None
        try:
            found = nfnl.tables(self.topo.fd_of(host))
        except OSError:
            return None
        tables = [family for family, name in found if not own_table(name)]
        if not tables:
            return None
        return ["inet", "bridge"] if "bridge" in tables else ["inet"]

    def _start(self, host: str) -> subprocess.Popen[bytes]:
        argv = ["nft", "-a", "monitor", "trace"]
        return self.topo.spawn(host, argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def _subscribed(pid: int, timeout: float = 2.0) -> bool:
    """Whether process `pid` holds a netfilter netlink socket joined to a multicast group
    (nft monitor prints nothing when it is ready; /proc/PID/net/netlink tells)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            with open(f"/proc/{pid}/net/netlink") as src:
                lines = src.read().splitlines()[1:]
        except OSError:
            return False
        for line in lines:
            cols = line.split()
            mine = len(cols) > 3 and cols[1] == _NFNL_PROTO and cols[2] == str(pid)
            if mine and int(cols[3], 16):
                return True
        time.sleep(0.002)
    return False


def _drain(proc: subprocess.Popen[bytes], quiet: float) -> bytes:
    """What the monitor printed: read until it is idle (`_idle`: it has printed all the
    kernel gave it), else until `quiet` seconds pass without more. Called once the probe
    is done with: the kernel queued its trace while the probe went through."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    text, last = b"", time.perf_counter()
    while time.perf_counter() - last < quiet:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            if _idle(proc.pid):  # what it printed before it slept is in the pipe now
                with contextlib.suppress(BlockingIOError):
                    text += os.read(fd, 1 << 16)
                break
            time.sleep(0.002)
            continue
        if not chunk:
            break
        text, last = text + chunk, time.perf_counter()
    os.set_blocking(fd, True)
    return text


def _idle(pid: int) -> bool:
    """Whether monitor `pid` waits on an empty netlink socket (nothing queued for it,
    asleep): whatever the kernel traced is printed."""
    try:
        with open(f"/proc/{pid}/stat") as src:
            state = src.read().rpartition(")")[2].split()[0]
        with open(f"/proc/{pid}/net/netlink") as src:
            lines = src.read().splitlines()[1:]
    except (OSError, IndexError):
        return False
    mine = [c for c in map(str.split, lines) if len(c) > 4 and c[1] == _NFNL_PROTO
            and c[2] == str(pid)]  # fmt: skip
    return state == "S" and bool(mine) and all(c[4] == "0" for c in mine)


def _stop(mon: _Monitor) -> None:
    """End an `nft monitor trace` and keep what it printed."""
    if mon.proc is None or mon.proc.returncode is not None:
        return
    mon.proc.terminate()
    try:
        out, _ = mon.proc.communicate(timeout=2)
    except subprocess.TimeoutExpired:
        mon.proc.kill()
        out, _ = mon.proc.communicate()
    mon.text += out or b""
