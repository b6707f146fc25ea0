"""Capture with tcpdump, for when a pcap file written by tcpdump itself is wanted.

tcpdump is started inside the host's namespace and is ready only once it prints
"listening on"; probes sent before that would be missed, so `start` waits for it.
Stopping sends SIGINT so tcpdump flushes the file and reports its kernel drops.
"""

from __future__ import annotations

import re
import select
import signal
import subprocess
import time

from ..errors import SetupError, TrafficError
from .capture import Captured, CaptureStats
from .pcap import read_pcap

__all__ = ["TcpdumpCapture"]

_DROPPED = re.compile(r"(\d+) packets? dropped by kernel")


class TcpdumpCapture:
    """tcpdump on one interface of one namespace, writing `path`."""

    def __init__(
        self,
        port: str,
        namespace: str | None,
        ifname: str,
        path: str,
        *,
        expression: str = "",
        buffer_kib: int = 16384,
        ready_timeout: float = 10,
    ) -> None:
        self.port, self.path = port, path
        argv = [
            "tcpdump",
            "-i",
            ifname,
            "-U",
            "-n",
            "-B",
            str(buffer_kib),
            "-w",
            path,
            "--immediate-mode",
            "-Q",
            "in",
            *([expression] if expression else []),
        ]
        if namespace:
            argv = ["ip", "netns", "exec", namespace, *argv]
        try:
            self.proc = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
        except FileNotFoundError:
            raise SetupError(
                "capturing to a file needs tcpdump", remedy="apt-get install tcpdump"
            ) from None
        self._stderr: list[str] = []
        self._wait_ready(ready_timeout)
        self.drops = 0

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stderr], [], [], deadline - time.monotonic())
            line = self.proc.stderr.readline() if ready else ""
            self._stderr.append(line)
            if "listening on" in line:
                return
            if not line and self.proc.poll() is not None:
                break
        self.proc.kill()
        raise TrafficError(f"tcpdump on {self.port} did not start: {''.join(self._stderr)}")

    def stop(self) -> CaptureStats:
        """Stop tcpdump; the frames are then in `path` (and `frames()`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=10)
        found = _DROPPED.search(err or "")
        self.drops = int(found.group(1)) if found else 0
        return CaptureStats(len(self.frames()), self.drops)

    def frames(self) -> list[Captured]:
        return [Captured(self.port, data, ts) for ts, data in read_pcap(self.path)]
