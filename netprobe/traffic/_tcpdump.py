"""Capture with tcpdump, for when a pcap file written by tcpdump itself is wanted.

tcpdump is started inside the host's namespace and is ready only once it prints
"listening on"; probes sent before that would be missed, so `start` waits for it.
Stopping sends SIGINT so tcpdump flushes the file and reports its kernel drops.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time

from ..errors import SetupError, TrafficError
from ..topology._kernel import owner, process
from ._capture import Captured, CaptureStats
from ._pcap import read_pcap

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
        # The tag `clean` looks for: the run whose namespace it is; elsewhere one that no
        # run id can be (they never contain "-"), so that no run's clean ever stops it.
        runid = owner.runid_of(namespace or "") or f"tcpdump-{os.getpid()}"
        try:
            self.proc = process.popen(
                argv, runid=runid, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except FileNotFoundError:
            raise SetupError(
                "capturing to a file needs tcpdump", remedy="apt-get install tcpdump"
            ) from None
        self._stderr = b""
        self._wait_ready(ready_timeout)
        self.drops = 0

    def _wait_ready(self, timeout: float) -> None:
        """Read stderr unbuffered until tcpdump says it is listening (or gives up)."""
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        deadline = time.monotonic() + timeout
        while b"listening on" not in self._stderr:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(left, 0))
            chunk = os.read(fd, 4096) if ready else b""
            self._stderr += chunk
            if left <= 0 or (not chunk and self.proc.poll() is not None):
                self.proc.kill()
                self.proc.wait()
                text = self._stderr.decode(errors="replace").strip()
                raise TrafficError(f"tcpdump on {self.port} did not start: {text}")

    def stop(self) -> CaptureStats:
        """Stop tcpdump; the frames are then in `path` (and `frames()`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        found = _DROPPED.search((self._stderr + (err or b"")).decode(errors="replace"))
        self.drops = int(found.group(1)) if found else 0
        return CaptureStats(len(self.frames()), self.drops)

    def frames(self) -> list[Captured]:
        """The frames tcpdump wrote to `path`."""
        return [Captured(self.port, data, ts) for ts, data in read_pcap(self.path)]
