"""DHCP as it runs: the dnsmasq processes of a namespace, their leases, a client's lease.

A dnsmasq is found by its process (its network namespace is the host's), whoever started
it, and read the way dnsmasq reads itself: its command line, then the --conf-file it
names (or its compiled-in /etc/dnsmasq.conf when it names none), and any conf-file those
name in turn. Leases are read from its lease file, one line per lease:
`EXPIRY MAC IP HOSTNAME CLIENTID` (EXPIRY 0: never; HOSTNAME `*`: none given).

Which interfaces it serves DHCP on is decided per packet, as dnsmasq's iface_check does,
whatever its socket mode (bind-interfaces, bind-dynamic or the wildcard): an interface
named by --interface or holding a --listen-address, every one when neither is given, never
one of --except-interface or --no-dhcp-interface.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

DEFAULT_CONF = "/etc/dnsmasq.conf"
DEFAULT_LEASES = "/var/lib/misc/dnsmasq.leases"  # Debian's build of dnsmasq
_MAX_NESTING = 8  # conf-file inside conf-file: dnsmasq's own limit is higher, no real one is
# Short options of dnsmasq that matter here, by their long names.
_SHORT = {"-i": "interface", "-I": "except-interface", "-F": "dhcp-range",
          "-l": "dhcp-leasefile", "-C": "conf-file", "-8": "log-facility",
          "-a": "listen-address", "-2": "no-dhcp-interface"}  # fmt: skip
_SHORT_FLAGS = {"-z": "bind-interfaces"}
_ALIASES = {"dhcp-lease": "dhcp-leasefile"}
_REQUIRED = {"interface", "except-interface", "dhcp-range", "dhcp-leasefile", "log-facility",
             "listen-address", "no-dhcp-interface"}


@dataclass(frozen=True)
class DhcpLease:
    """One lease a DHCP server handed out: `expires` in seconds since the epoch (0:
    never), `hostname` as the client gave it (None: it gave none)."""

    mac: str
    ip: str
    expires: int
    hostname: str | None = None


@dataclass(frozen=True)
class ClientLease:
    """What netprobe's DHCP client got: its address and prefix, the router (option 3),
    DNS servers (option 6), the server that answered, and the lease time in seconds."""

    ip: str
    prefix: int
    router: str | None = None
    dns: tuple[str, ...] = ()
    server: str | None = None
    lease_time: int | None = None


@dataclass(frozen=True)
class RunningDhcpServer:
    """A DHCP server running in a host, as its process and configuration say.
    `interfaces` and `listen_addresses`: the interfaces it serves, by name and by address
    (both () = every interface but `except_interfaces` and `no_dhcp_interfaces`);
    `bind`: its socket mode ("wildcard", "interfaces", "dynamic"); `ranges`: (first,
    last) of its DHCPv4 ranges, `ranges6` of its DHCPv6 ones; `lease_file` and `log`:
    paths (None: none); `options`: every (name, value) it was given, command line first,
    then its files."""

    pid: int
    program: str = "dnsmasq"
    interfaces: tuple[str, ...] = ()
    except_interfaces: tuple[str, ...] = ()
    listen_addresses: tuple[str, ...] = ()
    ranges: tuple[tuple[str, str], ...] = ()
    lease_file: str | None = None
    log: str | None = None
    options: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    no_dhcp_interfaces: tuple[str, ...] = ()
    bind: str = "wildcard"
    ranges6: tuple[tuple[str, str], ...] = ()

    def serves(self, ifname: str, addresses: Iterable[str] = ()) -> bool:
        """True when it answers DHCP arriving on `ifname`, which holds `addresses`."""
        if _matches(ifname, (*self.except_interfaces, *self.no_dhcp_interfaces)):
            return False
        if not self.interfaces and not self.listen_addresses:
            return True
        return _matches(ifname, self.interfaces) or any(
            a in self.listen_addresses for a in addresses)

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

    def leases(self) -> list[DhcpLease]:
        """The leases in its lease file now (none when it has no file, or it is unreadable)."""
        if self.lease_file is None:
            return []
        try:
            with open(self.lease_file, errors="replace") as src:
                return parse_leases(src.read())
        except OSError:
            return []


def _matches(ifname: str, patterns: Iterable[str]) -> bool:
    """dnsmasq's interface names: exact, or with a `*` wildcard."""
    return any(fnmatch.fnmatchcase(ifname, p) for p in patterns)


def parse_leases(text: str) -> list[DhcpLease]:
    """dnsmasq's lease file; DHCPv6 lines (after `duid`) and malformed lines are skipped."""
    leases = []
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "duid":
            break  # what follows is DHCPv6
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        hostname = None if parts[3] == "*" else parts[3]
        leases.append(DhcpLease(parts[1].lower(), parts[2], int(parts[0]), hostname))
    return leases


def argv_options(argv: list[str]) -> list[tuple[str, str]]:
    """(long name, value) of each option on a dnsmasq command line ("" for a flag)."""
    out: list[tuple[str, str]] = []
    args = iter(argv[1:])
    for arg in args:
        if arg.startswith("--"):
            name, sep, value = arg[2:].partition("=")
            name = _ALIASES.get(name, name)
            if not sep and name in _REQUIRED:
                value = next(args, "")  # `--interface eth0`, as getopt takes it
            out.append((name, value))
        elif arg in _SHORT_FLAGS:
            out.append((_SHORT_FLAGS[arg], ""))
        elif arg[:2] in _SHORT:
            value = arg[2:] or next(args, "")
            out.append((_SHORT[arg[:2]], value))
    return out


def conf_options(text: str) -> list[tuple[str, str]]:
    """(name, value) of each line of a dnsmasq configuration file."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        out.append((_ALIASES.get(name.strip(), name.strip()), value.strip()))
    return out


Reader = Callable[[str], "str | None"]  # a file's text by its path (None: unreadable)


def all_options(argv: list[str], read: Reader | None = None) -> list[tuple[str, str]]:
    """The command line's options, then those of the files it names, as dnsmasq reads."""
    reader = read or _read_file
    options = argv_options(argv)
    files = [v for k, v in options if k == "conf-file"]
    if not files:
        files = [DEFAULT_CONF]
    for path in files:
        options += _file_options(path, reader, 0)
    return options


def _file_options(path: str, read: Reader, depth: int) -> list[tuple[str, str]]:
    text = read(path) if path and depth < _MAX_NESTING else None
    if text is None:
        return []
    options = conf_options(text)
    for name, value in list(options):
        if name == "conf-file":
            options += _file_options(value, read, depth + 1)
    return options


def _read_file(path: str) -> str | None:
    try:
        with open(path, errors="replace") as src:
            return src.read(1_000_000)
    except OSError:
        return None


def server_from(pid: int, argv: list[str], read: Reader | None = None) -> RunningDhcpServer:
    """A RunningDhcpServer from a dnsmasq's pid and command line."""
    options = all_options(argv, read)
    values = _values(options)
    leasefile: str | None = values.get("dhcp-leasefile", [DEFAULT_LEASES])[-1] or None
    if "leasefile-ro" in values:
        leasefile = None
    log = (values.get("log-facility") or [""])[-1]
    ranges = [r for r in map(dhcp_range_ends, values.get("dhcp-range", [])) if r]
    return RunningDhcpServer(
        pid=pid,
        program=os.path.basename(argv[0]) if argv else "dnsmasq",
        interfaces=_names(values.get("interface", [])),
        except_interfaces=_names(values.get("except-interface", [])),
        ranges=tuple(r for r in ranges if ":" not in r[0]),
        lease_file=leasefile,
        log=log if log.startswith("/") else None,
        options=tuple(options),
        listen_addresses=_names(values.get("listen-address", [])),
        no_dhcp_interfaces=_names(values.get("no-dhcp-interface", [])),
        bind=_bind(values),
        ranges6=tuple(r for r in ranges if ":" in r[0]),
    )


def _bind(values: dict[str, list[str]]) -> str:
    if "bind-dynamic" in values:
        return "dynamic"  # dnsmasq: bind-dynamic wins over bind-interfaces
    return "interfaces" if "bind-interfaces" in values else "wildcard"


def _values(options: list[tuple[str, str]]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in options:
        values.setdefault(name, []).append(value)
    return values


def _names(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip() for v in values for n in v.split(",") if n.strip()))


def dhcp_range_ends(value: str) -> tuple[str, str] | None:
    """(first, last) of a dhcp-range value, past its tags; a range of one mode (static,
    proxy …) is (first, first). None: no address in it."""
    items = [i.strip() for i in value.split(",")]
    while items and not _is_address(items[0]):
        items.pop(0)  # tag:, set:, net: and the old bare network-id
    if not items:
        return None
    last = items[1] if len(items) > 1 and _is_address(items[1]) else items[0]
    return items[0], last


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def running_servers(ns_fd: int) -> list[RunningDhcpServer]:
    """Every dnsmasq whose network namespace is `ns_fd`, by pid."""
    ns = os.fstat(ns_fd)
    return [server_from(pid, argv) for pid, argv in _processes("dnsmasq", ns.st_ino, ns.st_dev)]


def _processes(comm: str, ino: int, dev: int) -> Iterator[tuple[int, list[str]]]:
    for entry in sorted(filter(str.isdigit, os.listdir("/proc")), key=int):
        try:
            here = os.stat(f"/proc/{entry}/ns/net")
            if (here.st_ino, here.st_dev) != (ino, dev):
                continue
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != comm:
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue  # gone meanwhile
        if argv:
            yield int(entry), argv


def read_client_lease(path: str) -> ClientLease | None:
    """The lease netprobe's udhcpc script wrote to `path` (None: none there)."""
    try:
        with open(path) as src:
            fields = dict(line.partition("=")[::2] for line in src.read().splitlines())
        return ClientLease(
            ip=fields["ip"],
            prefix=int(fields["prefix"]),
            router=fields.get("router") or None,
            dns=tuple(fields.get("dns", "").split()),
            server=fields.get("server") or None,
            lease_time=int(fields["lease"]) if fields.get("lease", "").isdigit() else None,
        )
    except (OSError, KeyError, ValueError):
        return None
