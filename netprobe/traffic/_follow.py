"""Following a capture until told to stop: one line per frame, or a pcapng stream.

`netprobe topo capture` reads a capture socket and hands each frame to a sink as it
comes: a line of text for a terminal, or a pcapng block written and flushed at once, so
that a file cut short is still whole up to its last frame and Wireshark reading a pipe
shows frames as they pass. Stopping is a question asked between reads (a signal
handler sets it), never an exception in the middle of a write.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol, TextIO

from dpkt import pcapng

from ._capture import Captured, Source, wait_readable
from ._decode import decode, summary
from ._pcap import _idb

POLL = 0.2  # seconds between looks at whether to stop


class Sink(Protocol):
    """Where followed frames go."""

    def write(self, frame: Captured) -> None:
        """Take one frame (and flush it)."""


class LineSink:
    """One line per frame: its time, its direction, and what it is."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, frame: Captured) -> None:
        """Print the frame's line."""
        stamp = time.strftime("%H:%M:%S", time.localtime(frame.time))
        micros = f"{frame.time % 1:.6f}"[1:]
        way = "Out" if frame.outgoing else "In "
        self.out.write(f"{stamp}{micros} {way} {summary(decode(frame.data))}\n")
        self.out.flush()


class PcapngSink:
    """A pcapng stream whose one interface is named after the port."""

    def __init__(self, out: BinaryIO, port: str) -> None:
        self.out = out
        self.writer = pcapng.Writer(out, snaplen=65535, idb=_idb(port))
        out.flush()  # the header first: a reader (Wireshark) starts at once

    def write(self, frame: Captured) -> None:
        """Write the frame's block."""
        self.writer.writepkt(frame.data, ts=frame.time)
        self.out.flush()


@dataclass(frozen=True)
class Followed:
    """How a followed capture ended: frames written, kernel drops, and why it stopped."""

    frames: int
    drops: int
    ended: str  # "stopped" (a signal), "count", "gone" (the interface's lab), "closed"


def follow(
    source: Source,
    sink: Sink,
    *,
    stop: Callable[[], bool],
    gone: Callable[[], bool] = lambda: False,
    count: int | None = None,
) -> Followed:
    """Hand every frame `source` receives to `sink` until `stop()` says so, `count`
    frames were written, `gone()` (the namespace went away) or the reader of the sink
    went (a closed pipe)."""
    frames = 0
    ended = "count"
    try:
        while count is None or frames < count:
            if stop():
                ended = "stopped"
                break
            if not wait_readable([source], POLL):
                if gone():
                    ended = "gone"
                    break
                continue
            for frame in source.read(limit=64 if count is None else count - frames):
                sink.write(frame)
                frames += 1
    except BrokenPipeError:
        ended = "closed"
    return Followed(frames, source.stats().drops, ended)
