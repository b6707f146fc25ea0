"""The DHCP servers running in a host, as the dhcp check reads them: what each serves
(interfaces, ranges), its leases and its log, from `Topology.dhcp_servers` (the same for
a dnsmasq netprobe started and one started by hand in an adopted namespace)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from netprobe.topology import Topology


@dataclass(frozen=True)
class Lease:
    """One line of a dnsmasq lease file."""

    mac: str
    ip: str
    expires: int  # seconds since the epoch; 0: never
    hostname: str | None


@dataclass(frozen=True)
class Server:
    """A DHCP server process: `interfaces` () serves every interface."""

    pid: int
    program: str
    interfaces: tuple[str, ...]
    except_interfaces: tuple[str, ...]
    ranges: tuple[tuple[str, str], ...]
    lease_file: str | None
    log: str | None
    source: Any = None  # the topology's own object

    def leases(self) -> list[Lease]:
        """The leases it holds now (from its lease file)."""
        return [Lease(x.mac.lower(), x.ip, int(x.expires or 0), x.hostname)
                for x in self.source.leases()]

    def serves(self, ifname: str) -> bool:
        """True when it answers DHCP arriving on `ifname`."""
        if ifname in self.except_interfaces:
            return False
        return not self.interfaces or ifname in self.interfaces

    def log_lines(self, needle: str, last: int = 200) -> list[str]:
        """Its log's last `last` lines that contain `needle` (case-insensitive)."""
        if self.log is None:
            return []
        try:
            with open(self.log, errors="replace") as f:
                lines = f.read().splitlines()[-last:]
        except OSError:
            return []
        return [line for line in lines if needle.lower() in line.lower()]


def active(leases: Sequence[Lease], now: float | None = None) -> list[Lease]:
    """The leases not expired."""
    now = time.time() if now is None else now
    return [x for x in leases if x.expires == 0 or x.expires > now]


def servers(topo: Topology, host: str) -> list[Server]:
    """Every DHCP server running in `host`'s namespace now, as the topology reads them."""
    return [Server(s.pid, s.program, tuple(s.interfaces), tuple(s.except_interfaces),
                   tuple(s.ranges), s.lease_file, s.log, s) for s in topo.dhcp_servers(host)]
