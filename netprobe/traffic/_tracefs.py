"""A private tracefs instance: its own ring buffer, events and filters, removed afterwards.

netprobe never touches the top-level trace buffer (other tools may be using it): it makes
`instances/netprobe-<runid>-<pid>-<n>`, enables the events it needs there, writes a
marker line before each probe, reads what the kernel logged and removes the instance
on every path. Instances left by a killed process (its pid is gone) are removed the next
time an instance is made.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import os
import re
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType

from .._capabilities import TRACEFS, mount_tracefs
from ..errors import SetupError

PREFIX = "netprobe-"
_counter = itertools.count(1)
_NAME = re.compile(r"^netprobe-(?:[\w]+-)?(\d+)-\d+$")


def instance_names(root: str = TRACEFS) -> list[str]:
    """netprobe's trace instances that exist now."""
    try:
        names = os.listdir(os.path.join(root, "instances"))
    except OSError:
        return []
    return sorted(n for n in names if n.startswith(PREFIX))


def stale(names: Iterable[str]) -> list[str]:
    """The instances whose owning process is gone (the pid is the name's second number)."""
    out = []
    for name in names:
        match = _NAME.match(name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            out.append(name)
    return out


def remove_stale(root: str = TRACEFS) -> list[str]:
    """Remove the trace instances of processes that are gone (what `netprobe clean` does)."""
    gone = stale(instance_names(root))
    for name in gone:
        _rmdir(os.path.join(root, "instances", name))
    return gone


@dataclass
class Instance:
    """A private trace instance. Use as a context manager: it is removed on the way out."""

    runid: str = "x"
    root: str = TRACEFS
    buffer_kb: int = 2048
    name: str = field(init=False, default="")
    path: str = field(init=False, default="")
    notes: list[str] = field(default_factory=list)
    mounted: bool = field(init=False, default=False)  # tracefs was mounted for it
    monotonic: bool = field(init=False, default=False)  # stamps are CLOCK_MONOTONIC's
    _pipe: int | None = field(init=False, default=None)  # trace_pipe, read by `take`

    def __enter__(self) -> Instance:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Make a fresh trace instance (mounting tracefs if needed), removing dead runs' ones."""
        done = mount_tracefs(self.root)
        if done:
            self.mounted = True
            self.notes.append(done + " (unmounted afterwards)")
        for name in stale(instance_names(self.root)):
            _rmdir(os.path.join(self.root, "instances", name))
        safe = re.sub(r"\W", "", self.runid) or "x"
        self.name = f"{PREFIX}{safe}-{os.getpid()}-{next(_counter)}"
        self.path = os.path.join(self.root, "instances", self.name)
        try:
            os.mkdir(self.path)
        except OSError as exc:
            raise SetupError(
                f"cannot make trace instance {self.path}: {exc.strerror}",
                remedy="run as root with tracefs mounted",
            ) from exc
        try:
            self._write("buffer_size_kb", str(self.buffer_kb))
        except OSError:
            self.notes.append("the trace buffer size could not be set")
        with contextlib.suppress(OSError):  # reading `trace` must not pause the recording
            self._write("options/pause-on-trace", "0")
        with contextlib.suppress(OSError):  # stamps comparable with time.monotonic()
            self._write("trace_clock", "mono")
            self.monotonic = True

    def switch(self, on: bool) -> None:
        """Start or stop recording; an idle instance is cheap to keep, where making and
        removing one costs tens of milliseconds."""
        self._write("tracing_on", "1" if on else "0")

    def take(self) -> str:
        """The lines logged since the last `take`, consumed from `trace_pipe` without
        waiting (emptying the buffer by `trace` costs an RCU grace period)."""
        if self._pipe is None:
            self._pipe = os.open(os.path.join(self.path, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
        chunks = []
        while True:
            try:
                chunk = os.read(self._pipe, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def close(self) -> None:
        """Disable everything and remove the instance (safe to call twice)."""
        if self._pipe is not None:  # a reader holding it open keeps the instance busy
            os.close(self._pipe)
            self._pipe = None
        if not self.path or not os.path.isdir(self.path):
            return
        try:
            self._write("tracing_on", "0")
            self._write("events/enable", "0")
        except OSError:
            pass
        try:
            _rmdir(self.path)
        except OSError as exc:  # the explanation stands; the instance is clean's to remove
            self.notes.append(f"the trace instance {self.name} is left: {exc}")
        if self.mounted:  # leave the machine as found (busy: another user, it stays)
            subprocess.run(["umount", self.root], capture_output=True, check=False)
            self.mounted = False

    def has_event(self, event: str) -> bool:
        """True when this kernel has the trace event "system/name"."""
        return os.path.isdir(os.path.join(self.path, "events", event))

    def enable(self, event: str, filter: str | None = None) -> None:
        """Enable "system/name", with an event filter expression if given."""
        if filter:
            self._write(f"events/{event}/filter", filter)
        self._write(f"events/{event}/enable", "1")

    def format(self, event: str) -> str:
        """The format file of the trace event "system/name"."""
        return self._read(f"events/{event}/format")

    def mark(self, text: str) -> None:
        """Write `text` (one line) into the trace buffer: it shows where a probe's events start."""
        self._write("trace_marker", text.replace("\n", " ") + "\n")

    def read(self) -> str:
        """The buffer as text (not consumed)."""
        return self._read("trace")

    def overruns(self) -> int:
        """Events lost because the ring buffer overflowed, summed over CPUs."""
        total = 0
        per_cpu = os.path.join(self.path, "per_cpu")
        for cpu in sorted(os.listdir(per_cpu)) if os.path.isdir(per_cpu) else []:
            stats = _parse_stats(self._read(f"per_cpu/{cpu}/stats"))
            total += stats.get("overrun", 0) + stats.get("dropped events", 0)
        return total

    def _write(self, rel: str, text: str) -> None:
        with open(os.path.join(self.path, rel), "w") as out:
            out.write(text)

    def _read(self, rel: str) -> str:
        with open(os.path.join(self.path, rel)) as src:
            return src.read()


def _parse_stats(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip().isdigit():
            out[key.strip()] = int(value.strip())
    return out


def _rmdir(path: str) -> None:
    """rmdir an instance; the kernel refuses (EBUSY) while a reader holds it open."""
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)
    os.rmdir(path)


class Symbols:
    """Kernel addresses → "symbol+0xoff", from /proc/kallsyms when it shows addresses."""

    _loaded: Symbols | None = None

    @classmethod
    def lazy(cls) -> Symbols:
        """Symbols read from /proc/kallsyms on the first address to resolve (reading it
        takes ~0.3 s, and the tracepoint usually prints symbols itself)."""
        return cls("", lazy=True)

    def __init__(self, text: str | None = None, *, lazy: bool = False) -> None:
        self._lazy = lazy
        if lazy:
            self.addrs: list[int] = []
            self.names: list[str] = []
            return
        if text is None:
            try:
                with open("/proc/kallsyms") as src:
                    text = src.read()
            except OSError:
                text = ""
        pairs = sorted(_symbols(text))
        self.addrs = [a for a, _ in pairs]
        self.names = [n for _, n in pairs]

    def resolve(self, location: str) -> str:
        """A symbol for a hex address; anything else (already a symbol) unchanged."""
        text = location.removeprefix("0x")
        if not re.fullmatch(r"[0-9a-fA-F]{8,16}", text):
            return location
        if self._lazy:
            if Symbols._loaded is None:
                Symbols._loaded = Symbols()
            self.addrs, self.names, self._lazy = Symbols._loaded.addrs, Symbols._loaded.names, False
        addr = int(text, 16)
        at = bisect.bisect_right(self.addrs, addr) - 1
        if at < 0 or not addr:
            return location
        return f"{self.names[at]}+{addr - self.addrs[at]:#x}"


def _symbols(text: str) -> Iterable[tuple[int, str]]:
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in "tTwW":
            addr = int(parts[0], 16)
            if addr:  # kptr_restrict shows every address as 0
                yield addr, parts[2]
