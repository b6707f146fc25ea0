"""DHCP as the lxc check sees it: a one-shot DHCP exchange played by busybox udhcpc inside
the container (its script reports the lease and changes nothing), and the dnsmasq processes
running in a host's network namespace, read from their command line and --conf-file."""

from __future__ import annotations

import os
import shlex
import tempfile
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Dnsmasq:
    """A dnsmasq running in a host's namespace, as its options have it."""

    pid: int
    interfaces: tuple[str, ...] = ()  # () = every interface
    except_interfaces: tuple[str, ...] = ()
    ranges: tuple[str, ...] = ()  # dhcp-range values as written
    listen: tuple[str, ...] = ()  # listen-address: the interfaces holding them are served too
    lease_file: str = "/var/lib/misc/dnsmasq.leases"
    options: dict[str, list[str]] = field(default_factory=dict, compare=False)

    def serves(self, ifname: str, address: str) -> bool:
        """Does it answer DHCP on `ifname`, whose address is `address` (it has a range, and
        the interface is its, by name or by a listen-address)?"""
        listed = not (self.interfaces or self.listen) or ifname in self.interfaces \
            or address in self.listen
        return bool(self.ranges) and listed and ifname not in self.except_interfaces

    def leased(self, mac: str) -> list[str]:
        """The addresses its lease file holds for `mac`."""
        try:
            lines = Path(self.lease_file).read_text().splitlines()
        except OSError:
            return []
        return [w[2] for w in (line.split() for line in lines)
                if len(w) >= 3 and w[1].lower() == mac.lower()]


_SHORT = {"-i": "interface", "-I": "except-interface", "-F": "dhcp-range",
          "-l": "dhcp-leasefile", "-a": "listen-address", "-C": "conf-file"}
_WANTED = ("interface", "except-interface", "dhcp-range", "dhcp-leasefile", "listen-address",
           "conf-file")


_LISTS = ("interface", "except-interface", "listen-address")


def dnsmasqs(topo: Topology, host: str) -> list[Dnsmasq]:
    """Every dnsmasq whose network namespace is `host`'s (started by anyone)."""
    own = topo.run(host, ["readlink", "/proc/self/ns/net"]).stdout.strip()
    found = []
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "dnsmasq":
                continue
            if os.readlink(f"/proc/{pid}/ns/net") != own:
                continue
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:  # gone meanwhile
            continue
        found.append(_from_options(pid, _options(argv[1:])))
    return found


def _options(argv: list[str]) -> dict[str, list[str]]:
    """The options dnsmasq was given that matter here, from its argv and its conf-file."""
    out: dict[str, list[str]] = {}
    words = iter(argv)
    for word in words:
        name, sep, value = word.lstrip("-").partition("=")
        if word in _SHORT:
            name, value = _SHORT[word], next(words, "")
        elif word.startswith("--") and not sep and name in _WANTED:
            value = next(words, "")
        if name in _WANTED:
            out.setdefault(name, []).extend(value.split(",") if name in _LISTS else [value])
    for conf in out.get("conf-file", []):
        for key, values in _conf(conf).items():
            out.setdefault(key, []).extend(values)
    return out


def _conf(path: str) -> dict[str, list[str]]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return {}
    out: dict[str, list[str]] = {}
    for line in (raw.strip() for raw in lines):
        name, _, value = line.partition("=")
        if name.strip() in _WANTED[:-1] and not line.startswith("#"):
            words = shlex.split(value) or [""]
            out.setdefault(name.strip(), []).extend(
                words[0].split(",") if name.strip() in _LISTS else words)
    return out


def _from_options(pid: int, opts: dict[str, list[str]]) -> Dnsmasq:
    leases = opts.get("dhcp-leasefile", [])
    return Dnsmasq(
        pid, tuple(i for i in opts.get("interface", []) if i),
        tuple(i for i in opts.get("except-interface", []) if i),
        tuple(opts.get("dhcp-range", [])), tuple(a for a in opts.get("listen-address", []) if a),
        leases[-1] if leases else Dnsmasq.lease_file, opts,
    )
