"""A one-shot DHCP exchange played by busybox udhcpc inside the container: its script
reports the lease and changes nothing (the addresses and routes the container holds stay
as whatever client configured them left them)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from netprobe.topology import Topology

# udhcpc calls its script with deconfig, then bound (or leasefail); only bound is reported
_REPORT = """#!/bin/sh
[ "$1" = bound ] && echo "lease ip=$ip subnet=$subnet router=$router serverid=$serverid \
lease=$lease dns=$dns"
exit 0
"""
RETRIES, WAIT = 4, 2  # discovers sent, seconds waited for an offer after each


@dataclass(frozen=True)
class Exchange:
    """What one udhcpc run got: the lease's fields (empty when none), and its log."""

    lease: dict[str, str]
    log: str


def exchange(topo: Topology, host: str, ifname: str) -> Exchange:
    """Run `udhcpc -q -n -f` once on `host`'s `ifname`: DISCOVER, OFFER, REQUEST, ACK, then
    exit; the interface's addresses and routes are left as they were."""
    with tempfile.TemporaryDirectory(prefix="netprobe-udhcpc-") as tmp:
        script = Path(tmp, "report")
        script.write_text(_REPORT)
        script.chmod(0o700)
        argv = ["busybox", "udhcpc", "-q", "-n", "-f", "-i", ifname, "-t", str(RETRIES),
                "-T", str(WAIT), "-s", str(script)]
        done = topo.run(host, argv, timeout=RETRIES * WAIT + 20)
    lease: dict[str, str] = {}
    for line in done.stdout.splitlines():
        if line.startswith("lease "):
            lease = dict(word.partition("=")[::2] for word in line.split()[1:])
    return Exchange(lease, (done.stderr + done.stdout).strip())
