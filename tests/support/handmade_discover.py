"""Networks made by hand with plain `ip`/`nft` commands, as someone else would have made
them: namespaces netprobe did not create, under a prefix unique to the test run, removed
(with the processes started in them) when the test ends."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

# No DAD and no router solicitations: addresses do not change state while a test looks.
_QUIET = "; ".join(
    f"echo 0 > /proc/sys/net/ipv6/conf/{c}/{k}"
    for c in ("all", "default") for k in ("accept_dad", "router_solicitations")
)


@dataclass
class Handmade:
    """The namespaces (prefix + name) and processes a test made; `sh` runs a command."""

    prefix: str
    names: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def ns(self, name: str) -> str:
        return self.prefix + name

    def add(self, *names: str) -> None:
        for name in names:
            subprocess.run(["ip", "netns", "add", self.ns(name)], check=True)
            self.names.append(self.ns(name))
            subprocess.run(["ip", "netns", "exec", self.ns(name), "sh", "-c", _QUIET], check=True)

    def sh(self, script: str) -> None:
        """Run shell lines; `$P` is the prefix."""
        subprocess.run(["bash", "-ec", script], check=True, env={**os.environ, "P": self.prefix})

    def nft(self, name: str, ruleset: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.ns(name), "nft", "-f", "-"],
                       input=ruleset.encode(), check=True)

    def container(self) -> int:
        """A process in a network namespace of its own that has no name (as a container's
        is): its pid."""
        proc = subprocess.Popen(["unshare", "--net", "sh", "-c", f"{_QUIET}; exec sleep 600"])
        self.procs.append(proc)
        for _ in range(20000):  # until it runs sleep, its namespace set up
            with suppress(OSError), open(f"/proc/{proc.pid}/comm") as comm:
                if comm.read().strip() == "sleep":
                    return proc.pid
            os.sched_yield()
        raise AssertionError("unshare --net did not enter a namespace")

    def cleanup(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@contextmanager
def handmade(tag: str) -> Iterator[Handmade]:
    """Namespaces named `tag` + this process's pid + a name; all removed at the end."""
    made = Handmade(f"{tag}{os.getpid() % 100000}")
    try:
        yield made
    finally:
        made.cleanup()


def _untimed(data: Any) -> Any:
    """Without the bridge's running timers (gc_timer, forward_delay_timer …), which tick."""
    if isinstance(data, dict):
        return {k: _untimed(v) for k, v in data.items() if not k.endswith("_timer")}
    if isinstance(data, list):
        return [_untimed(v) for v in data]
    return data


def snapshot(namespaces: list[str]) -> dict[str, str]:
    """`ip -j -d addr/route/link` and the namespace ids of each namespace (a name, or
    pid:PID), as text: what must be the same before and after a read-only step."""
    out = {}
    for ns in namespaces:
        enter = (["nsenter", f"--net=/proc/{ns[4:]}/ns/net", "--"] if ns.startswith("pid:")
                 else ["ip", "netns", "exec", ns])
        for what in (["-d", "addr"], ["-d", "route", "show", "table", "all"], ["-d", "link"],
                     ["-d", "neigh"], ["netns", "list-id"]):
            argv = [*enter, "ip", "-j", *what]
            text = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
            out[f"{ns} {' '.join(what)}"] = json.dumps(_untimed(json.loads(text or "[]")))
        out[f"{ns} nft"] = subprocess.run([*enter, "nft", "list", "ruleset"],
                                          capture_output=True, text=True, check=True).stdout
    return out
