"""dnsmasq started by a test in a host of a live topology (or of a hand-made network):
its own lease file and log in a temp dir, no /etc file read, no DNS; it returns once the
server's socket is bound (evidence: `ss` lists UDP port 67 in the namespace)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from netprobe.topology import Topology


def argv(directory: Path, name: str, interface: str, first: str, last: str, *,
         router: str | None = None, dns: Sequence[str] = (), lease_time: int = 3600,
         extra: Sequence[str] = ()) -> list[str]:
    """The command line of one dnsmasq serving `interface` with first..last."""
    out = ["dnsmasq", "--keep-in-foreground", "--conf-file=", "--no-hosts", "--no-resolv",
           "--port=0", f"--interface={interface}", "--bind-interfaces",
           f"--dhcp-range={first},{last},{lease_time}",
           f"--dhcp-leasefile={directory / (name + '.leases')}",
           f"--pid-file={directory / (name + '.pid')}", "--log-dhcp",
           f"--log-facility={directory / (name + '.log')}", *extra]
    if router is not None:
        out.append(f"--dhcp-option=3,{router}")
    if dns:
        out.append(f"--dhcp-option=6,{','.join(dns)}")
    return out


def wait_bound(run: Callable[[], str], proc: subprocess.Popen[bytes] | None = None) -> None:
    """Until `run()` (ss in the namespace) shows a socket on UDP 67."""
    deadline = time.monotonic() + 10
    while ":67 " not in run() + " ":
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"dnsmasq exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("dnsmasq never bound UDP port 67")
        time.sleep(0.02)


def start(topo: Topology, host: str, command: list[str]) -> subprocess.Popen[bytes]:
    """Start dnsmasq in `host` of `topo` (stopped at teardown) and wait until bound."""
    proc = topo.spawn(host, command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_bound(lambda: topo.run(host, ["ss", "-H", "-uln"]).stdout, proc)
    return proc
