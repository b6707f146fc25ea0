"""The DHCP servers running in a host, as the dhcp check reads them: what each serves
(interfaces, ranges), its leases and its log. The topology answers when it can
(`Topology.dhcp_servers`, the same for a dnsmasq netprobe started and one started by
hand); otherwise each dnsmasq is found by its process in the host's namespace, its
configuration read from its command line and its --conf-file."""

from __future__ import annotations

import os
import shlex
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
    source: Any = None  # the topology's own object, when it gave one

    def leases(self) -> list[Lease]:
        """The leases it holds now (from its lease file)."""
        if self.source is not None:
            return [Lease(x.mac, x.ip, int(x.expires or 0), x.hostname)
                    for x in self.source.leases()]
        return read_leases(self.lease_file)

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


def read_leases(path: str | None) -> list[Lease]:
    """dnsmasq's lease file: "EXPIRES MAC IP HOSTNAME CLIENT-ID" per line."""
    if path is None:
        return []
    try:
        with open(path) as f:
            rows = [line.split() for line in f]
    except OSError:
        return []
    return [Lease(r[1].lower(), r[2], int(r[0]), None if r[3] == "*" else r[3])
            for r in rows if len(r) >= 4 and r[0].isdigit() and "." in r[2]]


def active(leases: Sequence[Lease], now: float | None = None) -> list[Lease]:
    """The leases not expired."""
    now = time.time() if now is None else now
    return [x for x in leases if x.expires == 0 or x.expires > now]


def servers(topo: Topology, host: str) -> list[Server]:
    """Every DHCP server running in `host`'s namespace now."""
    ask = getattr(topo, "dhcp_servers", None)
    if callable(ask):
        return [Server(s.pid, s.program, tuple(s.interfaces), tuple(s.except_interfaces),
                       tuple(tuple(r) for r in s.ranges), s.lease_file, s.log, s)
                for s in ask(host)]
    inode = os.fstat(topo.fd_of(host)).st_ino
    return [found for pid in _pids_in(inode) if (found := _dnsmasq(pid)) is not None]


def _pids_in(inode: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}/ns/net").st_ino == inode:
                out.append(int(name))
        except OSError:
            continue
    return sorted(out)


def _dnsmasq(pid: int) -> Server | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None
    if not argv or os.path.basename(argv[0]) != "dnsmasq":
        return None
    options = _options(argv[1:])
    for conf in [v for k, v in options if k == "conf-file" and v]:
        options += _conf_options(conf)
    values: dict[str, list[str]] = {}
    for key, value in options:
        values.setdefault(key, []).append(value)
    ranges = tuple(r for v in values.get("dhcp-range", []) if (r := _range(v)) is not None)
    return Server(
        pid, "dnsmasq",
        tuple(n for v in values.get("interface", []) for n in v.split(",") if n),
        tuple(n for v in values.get("except-interface", []) for n in v.split(",") if n),
        ranges,
        (values.get("dhcp-leasefile") or ["/var/lib/misc/dnsmasq.leases"])[-1],
        next((v for v in reversed(values.get("log-facility", [])) if v.startswith("/")), None),
    )


_SHORT = {"-i": "interface", "-I": "except-interface", "-F": "dhcp-range",
          "-l": "dhcp-leasefile", "-8": "log-facility", "-C": "conf-file"}


def _options(argv: list[str]) -> list[tuple[str, str]]:
    """(long name, value) of each option of a dnsmasq command line."""
    out, args = [], iter(argv)
    for arg in args:
        if arg.startswith("--"):
            key, _, value = arg[2:].partition("=")
            out.append((key, value))
        elif arg[:2] in _SHORT:
            out.append((_SHORT[arg[:2]], arg[2:] or next(args, "")))
    return out


def _conf_options(path: str) -> list[tuple[str, str]]:
    try:
        with open(path) as f:
            lines = [line.strip() for line in f]
    except OSError:
        return []
    out = []
    for line in lines:
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.append((key.strip(), shlex.split(value)[0] if value.strip() else ""))
    return out


def _range(value: str) -> tuple[str, str] | None:
    """(first, last) of a --dhcp-range value (tags, modes, netmask and lease skipped)."""
    parts = [p for p in value.split(",") if not p.startswith(("set:", "tag:", "net:"))]
    addrs = [p for p in parts if p.count(".") == 3 and all(x.isdigit() for x in p.split("."))]
    if len(addrs) >= 2 and addrs[1].split(".")[0] != "255":
        return addrs[0], addrs[1]
    return (addrs[0], addrs[0]) if addrs else None
