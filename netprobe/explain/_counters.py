"""Counters before and after a probe, and the state that bears on a failure.

Counters: interface statistics (/proc/net/dev), the SNMP counters of /proc/net/snmp,
/proc/net/netstat and /proc/net/snmp6, and nftables rule counters, per host namespace.
They are read from inside each namespace (this thread enters it), so a snapshot costs
file reads and, per host that has a ruleset, a netlink dump of its rules (the rule text
costs an `nft` run, made only where a counter moved). The deltas say which
counters the probe moved: IpInAddrErrors on a router, UdpNoPorts on a server.

State: ip_forward and each interface's forwarding, rp_filter (all, default, per
interface), each link's master and bridge port state, the FDB entry for a MAC, and the
kernel's route lookup for the probe.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..topology import Topology
from ..topology._kernel import netns, nfnl

_IF_FIELDS = (
    "rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "rx_fifo", "rx_frame",
    "rx_compressed", "rx_multicast",
    "tx_bytes", "tx_packets", "tx_errors", "tx_dropped", "tx_fifo", "tx_colls",
    "tx_carrier", "tx_compressed",
)  # fmt: skip
_SNMP_FILES = ("snmp", "netstat")


def parse_netdev(text: str) -> dict[str, dict[str, int]]:
    """/proc/net/dev → {device: {rx_packets: …, rx_dropped: …, …}}."""
    out = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        values = rest.split()
        if sep and len(values) >= len(_IF_FIELDS):
            out[name.strip()] = {k: int(v) for k, v in zip(_IF_FIELDS, values, strict=False)}
    return out


def parse_snmp(text: str) -> dict[str, int]:
    """/proc/net/snmp or /proc/net/netstat (header line, value line, per group) →
    {"IpInAddrErrors": …, "TcpExtIPReversePathFilter": …}."""
    out: dict[str, int] = {}
    lines = text.splitlines()
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        group, _, names = head.partition(":")
        _, _, numbers = values.partition(":")
        for name, number in zip(names.split(), numbers.split(), strict=False):
            if number.removeprefix("-").isdigit():
                out[group + name] = int(number)
    return out


def parse_snmp6(text: str) -> dict[str, int]:
    """/proc/net/snmp6 ("Ip6InNoRoutes  3" per line) → {name: value}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


_TABLE = re.compile(r"^table (\S+) (\S+) \{")
_CHAIN = re.compile(r"^chain (\S+) \{")
_COUNTER = re.compile(r"\s*counter packets (\d+) bytes \d+")
_HANDLE = re.compile(r"\s*# handle (\d+)\s*$")


def parse_nft_counters(text: str) -> dict[str, tuple[str, int]]:
    """`nft -a list ruleset` → {"family table chain #handle": (rule text, packets)} for
    every rule with a counter."""
    out: dict[str, tuple[str, int]] = {}
    table = chain = ""
    for raw in text.splitlines():
        line = raw.strip()
        match = _TABLE.match(line)
        if match:
            table = f"{match.group(1)} {match.group(2)}"
            continue
        match = _CHAIN.match(line)
        if match:
            chain = match.group(1)
            continue
        counter, handle = _COUNTER.search(line), _HANDLE.search(line)
        if counter and handle:
            rule = _HANDLE.sub("", _COUNTER.sub("", line)).strip()
            out[f"{table} {chain} #{handle.group(1)}"] = (rule, int(counter.group(1)))
    return out


@dataclass(frozen=True)
class HostCounters:
    """One host's counters: per-link statistics, SNMP counters and nft rule counters by rule."""

    host: str
    links: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    snmp: Mapping[str, int] = field(default_factory=dict)
    nft: Mapping[str, tuple[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """Every host's counters at one moment, to subtract from a later one."""

    hosts: Mapping[str, HostCounters]


@dataclass(frozen=True)
class Delta:
    """A counter the probe moved: `kind` is link, snmp or nft."""

    host: str
    kind: str
    name: str
    change: int
    detail: str = ""  # the rule's text, for nft counters

    def describe(self) -> str:
        """The counter and its change in one line, e.g. "h1 rx_dropped +1"."""
        what = f"`{self.detail}`" if self.detail else self.name
        return f"{self.host} {what} {self.change:+d}"

    def to_dict(self) -> dict[str, Any]:
        """The delta as the results document holds it."""
        return {"host": self.host, "kind": self.kind, "name": self.name,
                "change": self.change, "detail": self.detail}  # fmt: skip


def read_proc(topo: Topology, host: str, paths: Iterable[str]) -> dict[str, str]:
    """Files under /proc/thread-self/net and /proc/sys/net, read inside `host`'s namespace
    (a missing file is left out)."""
    out = {}
    with netns.entered(topo.fd_of(host)):
        for path in paths:
            try:
                with open(path) as src:
                    out[path] = src.read()
            except OSError:
                continue
    return out


def _host_counters(topo: Topology, host: str, with_nft: bool) -> HostCounters:
    base = "/proc/thread-self/net/"
    files = read_proc(topo, host, [base + "dev", base + "snmp", base + "netstat", base + "snmp6"])
    snmp: dict[str, int] = {}
    for name in _SNMP_FILES:
        snmp.update(parse_snmp(files.get(base + name, "")))
    snmp.update(parse_snmp6(files.get(base + "snmp6", "")))
    nft: dict[str, tuple[str, int]] = {}
    if with_nft:  # over netlink: the rule text is read only where a counter moved
        try:
            nft = {k: ("", n) for k, n in nfnl.rule_counters(topo.fd_of(host)).items()}
        except OSError:
            nft = {}
    return HostCounters(host, parse_netdev(files.get(base + "dev", "")), snmp, nft)


def snapshot(
    topo: Topology,
    hosts: Iterable[str],
    *,
    nft_hosts: Iterable[str] = (),
    since: Snapshot | None = None,
    listings: dict[str, str] | None = None,
) -> Snapshot:
    """The counters of each host now (nft rule counters only for `nft_hosts`); with
    `since`, the rules whose counters moved since then carry their text (one `nft` run
    per host where one did, unless `listings` has that host's `nft -a list ruleset`
    already, read after the probe; a listing read here is added to it)."""
    with_nft = set(nft_hosts)
    now = {h: _host_counters(topo, h, h in with_nft) for h in hosts}
    for host, counted in now.items():
        was = since.hosts.get(host) if since is not None else None
        moved = [k for k, (_, n) in counted.nft.items() if was and k in was.nft
                 and was.nft[k][1] != n]  # fmt: skip
        if moved:
            listed = _listing(topo, host, listings if listings is not None else {})
            now[host] = replace(counted, nft=_with_text(listed, counted.nft))
    return Snapshot(now)


def _listing(topo: Topology, host: str, listings: dict[str, str]) -> str:
    """`nft -a list ruleset` of `host`, read once."""
    if host not in listings:
        result = topo.run(host, ["nft", "-a", "list", "ruleset"])
        listings[host] = result.stdout if result.ok else ""
    return listings[host]


def _with_text(listing: str, counted: Mapping[str, tuple[str, int]]) -> dict[str, tuple[str, int]]:
    """`counted` with each rule's text, as the `nft -a list ruleset` `listing` prints it."""
    listed = parse_nft_counters(listing)
    return {k: (listed.get(k, ("", 0))[0], n) for k, (_, n) in counted.items()}


def deltas(before: Snapshot, after: Snapshot) -> list[Delta]:
    """Every counter that changed between two snapshots, host by host."""
    out = []
    for host, now in after.hosts.items():
        was = before.hosts.get(host)
        if was is None:
            continue
        for dev, stats in now.links.items():
            old = was.links.get(dev, {})
            for key, value in stats.items():
                if key in old and value != old[key]:
                    out.append(Delta(host, "link", f"{dev} {key}", value - old[key]))
        for key, value in now.snmp.items():
            if key in was.snmp and value != was.snmp[key]:
                out.append(Delta(host, "snmp", key, value - was.snmp[key]))
        for key, (rule, packets) in now.nft.items():
            if key in was.nft and packets != was.nft[key][1]:
                out.append(Delta(host, "nft", key, packets - was.nft[key][1], rule))
    return out


def sysctls(topo: Topology, host: str, devices: Iterable[str]) -> dict[str, str]:
    """ip_forward, IPv6 forwarding, rp_filter (all, default, each of `devices`) and each
    device's own forwarding switches (IPv4 `forwarding`, which decides what arrives on
    it; IPv6 `force_forwarding`, where the kernel has it)."""
    keys = ["ipv4/ip_forward", "ipv6/conf/all/forwarding", "ipv4/conf/all/rp_filter",
            "ipv4/conf/default/rp_filter"]  # fmt: skip
    for dev in devices:
        keys += [f"ipv4/conf/{dev}/rp_filter", f"ipv4/conf/{dev}/forwarding",
                 f"ipv6/conf/{dev}/force_forwarding"]  # fmt: skip
    read = read_proc(topo, host, [f"/proc/sys/net/{k}" for k in keys])
    return {
        "net." + path.removeprefix("/proc/sys/net/").replace("/", "."): text.strip()
        for path, text in read.items()
    }


def route_lookup(topo: Topology, host: str, dst: str, src: str | None, iif: str | None) -> str:
    """The kernel's answer to `ip route get` for the probe as `host` receives it on `iif`
    (the input path: forwarding and rp_filter count), or its error message."""
    argv = ["ip", "route", "get", dst]
    if src and iif:
        argv += ["from", src, "iif", iif]
    result = topo.run(host, argv)
    text = (result.stdout if result.ok else result.stderr).strip()
    return " ".join(text.split()) or f"exit {result.returncode}"


def links(topo: Topology, host: str) -> dict[str, dict[str, Any]]:
    """`ip -d -j link` of a host by device name."""
    result = topo.run(host, ["ip", "-d", "-j", "link"])
    if not result.ok:
        return {}
    return {item["ifname"]: item for item in json.loads(result.stdout or "[]")}


def fdb_entry(topo: Topology, host: str, bridge: str, mac: str) -> list[str]:
    """The FDB entries of `bridge` for `mac` (empty: unknown, it would be flooded)."""
    result = topo.run(host, ["bridge", "-j", "fdb", "show", "br", bridge])
    if not result.ok:
        return []
    entries = json.loads(result.stdout or "[]")
    return [
        f"{e.get('mac')} dev {e.get('ifname')} {' '.join(e.get('flags', []))}".strip()
        for e in entries
        if str(e.get("mac", "")).lower() == mac.lower()
    ]


def conntrack(topo: Topology, host: str, address: str) -> list[str]:
    """Conntrack entries mentioning `address` (from /proc, else the conntrack tool)."""
    text = read_proc(topo, host, ["/proc/thread-self/net/nf_conntrack"]).get(
        "/proc/thread-self/net/nf_conntrack"
    )
    if text is None and any(
        os.access(os.path.join(d, "conntrack"), os.X_OK) for d in ("/usr/sbin", "/sbin")
    ):
        result = topo.run(host, ["conntrack", "-L"])
        text = result.stdout if result.ok else ""
    return [" ".join(line.split()) for line in (text or "").splitlines() if address in line]
