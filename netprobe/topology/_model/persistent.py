"""What a box's persistent network configuration says it will be after a reboot, whatever
wrote it (ifupdown's /etc/network/interfaces, NetworkManager's keyfiles): one model for
`topo from-config` (configuration → a lab) and `drift` (configuration versus the live
kernel). Pure: it reads files, never the kernel.

Each item keeps `where` ("FILE:LINE") so what a user is told points at the line to edit.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .ifupdown import Interfaces
from .ifupdown_options import HOOKS, Stanza, merge

Address = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Gateway = ipaddress.IPv4Address | ipaddress.IPv6Address

# What an interface is: a bridge, bond or VLAN the configuration creates; `ethernet` one
# it only configures (a NIC, or a veth someone else makes); `loopback`.
KINDS = ("ethernet", "bridge", "bond", "vlan", "loopback")
# link-local and shared are NetworkManager's (shared: it runs a DHCP server and NATs out).
METHODS = ("static", "dhcp", "manual", "auto", "loopback", "disabled", "link-local", "shared")


@dataclass(frozen=True)
class PersistentInterface:
    """One interface as the configuration brings it up at boot."""

    name: str
    kind: str  # one of KINDS
    where: str  # FILE:LINE of its stanza or profile
    method: str = "manual"  # IPv4's: static, dhcp, manual (up, no address), disabled
    method6: str | None = None  # IPv6's, when the configuration says one
    boot: bool = True  # brought up at boot (`auto` / allow-hotplug, NM autoconnect)
    addresses: tuple[Address, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    mtu: int | None = None
    master: str | None = None  # the bridge or bond it is a port of
    mac: str | None = None  # a MAC the configuration sets (or matches a NIC by)
    bridge_stp: bool | None = None
    bridge_fd: int | None = None
    vlan_aware: bool = False
    vids: tuple[tuple[int, int], ...] = ()  # inclusive ranges
    bond_mode: str | None = None  # by name (802.3ad, active-backup, …)
    bond_miimon: int | None = None
    vlan_parent: str | None = None
    vlan_id: int | None = None
    dns: tuple[Gateway, ...] = ()  # name servers the configuration sets (NM's ipv4/ipv6.dns)
    stand_in: bool = False  # the configuration names no interface (an NM profile matching a
    # NIC by its MAC, or any NIC): `name` is one netprobe made up


@dataclass(frozen=True)
class Command:
    """A shell command the configuration runs when an interface goes up or down
    (ifupdown's pre-up/up/post-up/down/pre-down/post-down; NM dispatcher scripts are not
    read)."""

    interface: str
    hook: str  # pre-up, up, post-up, down, pre-down, post-down
    text: str
    where: str


@dataclass(frozen=True)
class PersistentRoute:
    """A route the configuration adds (NM's ipv4.routes, `up ip route add …` lines)."""

    to: str  # a network in CIDR form, or "default"
    via: str | None
    dev: str | None
    metric: int | None
    where: str
    family: int = 4  # 4 or 6 ("default" is either)


@dataclass(frozen=True)
class FirewallLine:
    """A firewall command an up-hook runs (`iptables …`, `ip6tables …`, `nft …`,
    `iptables-restore < FILE`), kept as its words: the lab runs it as it is."""

    command: Command  # the hook line it is (or is one of the commands of)
    argv: tuple[str, ...]  # its words, quotes resolved, redirections left out
    family: str | None  # ip (iptables), ip6 (ip6tables), nft's family; None: a ruleset file's own
    file: str | None = None  # the ruleset it reads (`< FILE`, `nft -f FILE`)

    @property
    def tool(self) -> str:
        """iptables, ip6tables, iptables-restore, ip6tables-restore or nft, whatever the
        path or backend (`/usr/sbin/iptables-nft` is iptables)."""
        return tool_name(self.argv[0])


def tool_name(argv0: str) -> str:
    """The tool a command's first word runs, whatever its path or netfilter backend."""
    name = argv0.rsplit("/", 1)[-1]
    for backend in ("-legacy", "-nft"):  # iptables-nft-restore is iptables-restore
        name = name.replace(f"{backend}-", "-").removesuffix(backend)
    return name


@dataclass(frozen=True)
class PersistentConfig:
    """A box's persistent configuration: interfaces in reading order, hook commands, the
    routes and sysctls they set, and every file read."""

    interfaces: tuple[PersistentInterface, ...] = ()
    commands: tuple[Command, ...] = ()
    routes: tuple[PersistentRoute, ...] = ()
    sysctls: tuple[tuple[str, str, str], ...] = ()  # (key as net.ipv4.ip_forward, value, where)
    files: tuple[str, ...] = ()
    firewall: tuple[FirewallLine, ...] = ()  # in the order the up-hooks run them
    skipped: tuple[tuple[str, str], ...] = ()  # (where, why): profiles not read (wifi, vpn…)

    def sysctl(self, key: str) -> str | None:
        """The value `key` (net.ipv4.ip_forward) is left with at boot: the last one set."""
        return next((v for k, v, _ in reversed(self.sysctls) if k == key), None)

    def interface(self, name: str) -> PersistentInterface | None:
        """The interface `name` (None when the configuration has none): the first read of
        that name, as `named` keeps it."""
        return next((i for i in self.interfaces if i.name == name), None)

    def named(self) -> tuple[PersistentInterface, ...]:
        """One interface per name, in reading order, the first read of each (what
        `interface` returns): read_config refuses an ifupdown name twice and lets
        ifupdown's stanza win over a NetworkManager profile, which comes later."""
        return tuple({i.name: i for i in reversed(self.interfaces)}[n]
                     for n in dict.fromkeys(i.name for i in self.interfaces))  # fmt: skip

    def brought_up(self) -> frozenset[str]:
        """The interfaces boot brings up: those auto/allow-hotplug (or NM's autoconnect)
        names, and what those need: the ports of a master brought up, the parent of a
        VLAN brought up. The one rule drift, from-config and the hooks read go by."""
        up = {i.name for i in self.interfaces if i.boot}
        grown = True
        while grown:
            before = len(up)
            for iface in self.interfaces:
                if iface.master in up:
                    up.add(iface.name)
                if iface.kind == "vlan" and iface.name in up and iface.vlan_parent:
                    up.add(iface.vlan_parent)
            grown = len(up) > before
        return frozenset(up)

    def ports(self, master: str) -> tuple[str, ...]:
        """The interfaces whose master is `master`, in reading order."""
        return tuple(i.name for i in self.interfaces if i.master == master)


def from_ifupdown(config: Interfaces) -> PersistentConfig:
    """`config` as the model: the stanzas of one name are one interface, those of a
    family merged in order (ifupdown2's bare `iface NAME` with the inet ones); masters
    come from bridge-ports and bond-slaves. Hook commands are kept as they are, each at
    its own line: interpreting them is hookcommand's."""
    names = list(dict.fromkeys(s.name for s in config.stanzas))
    masters = _masters(config)
    interfaces, commands = [], []
    for name in names:
        four = [s for s in config.stanzas if s.name == name and s.family in ("inet", None)]
        inet = merge(four) if four else None
        inet6 = config.stanza(name, "inet6")
        stanzas = [s for s in (inet, inet6) if s is not None]
        interfaces.append(_interface(name, stanzas, inet, inet6, masters.get(name)))
        commands += [Command(name, o.key, o.value, f"{o.file}:{o.line}")  # in reading order
                     for s in config.stanzas if s.name == name
                     for o in s.options if o.key in HOOKS]  # fmt: skip
    interfaces += _bare_ports(config, masters, set(names))
    return PersistentConfig(tuple(interfaces), tuple(commands), files=config.files)


def _bare_ports(config: Interfaces, masters: dict[str, str], named: set[str]
                ) -> list[PersistentInterface]:
    """Ports that `bridge-ports` or `bond-slaves` name without a stanza of their own:
    ifup brings them up, unconfigured, with their master."""
    found = []
    for port, master in masters.items():
        stanza = config.stanza(master, "inet") or config.stanza(master, None) \
            or config.stanza(master, "inet6")
        if port in named or stanza is None:
            continue
        found.append(PersistentInterface(
            name=port, kind="ethernet", where=f"{stanza.file}:{stanza.line}",
            boot=stanza.auto or stanza.hotplug, master=master))  # fmt: skip
    return found


def _masters(config: Interfaces) -> dict[str, str]:
    found: dict[str, str] = {}
    for stanza in config.stanzas:
        for port in (*(stanza.bridge_ports or ()), *(stanza.bond_slaves or ())):
            found[port] = stanza.name
    return found


def _interface(name: str, stanzas: list[Stanza], inet: Stanza | None, inet6: Stanza | None,
               master: str | None) -> PersistentInterface:
    first = stanzas[0]

    def pick(attr: str) -> object:
        return next((getattr(s, attr) for s in stanzas if getattr(s, attr) not in (None, ())),
                    None)

    kind = _kind(first, stanzas)
    method = (inet.method or "manual") if inet is not None else "disabled"
    return PersistentInterface(
        name=name, kind=kind, where=f"{first.file}:{first.line}",
        method="loopback" if kind == "loopback" else method,
        method6=inet6.method if inet6 is not None else None,
        boot=any(s.auto or s.hotplug for s in stanzas),
        addresses=tuple(a for s in stanzas for a in s.addresses),
        gateways=tuple(g for s in stanzas for g in s.gateways),
        mtu=pick("mtu"),  # type: ignore[arg-type]
        master=master,
        mac=_mac(stanzas),
        bridge_stp=pick("bridge_stp"),  # type: ignore[arg-type]
        bridge_fd=pick("bridge_fd"),  # type: ignore[arg-type]
        vlan_aware=any(s.bridge_vlan_aware for s in stanzas),
        vids=pick("bridge_vids") or (),  # type: ignore[arg-type]
        bond_mode=pick("bond_mode"),  # type: ignore[arg-type]
        bond_miimon=pick("bond_miimon"),  # type: ignore[arg-type]
        vlan_parent=pick("vlan_raw_device"),  # type: ignore[arg-type]
        vlan_id=pick("vlan_id"),  # type: ignore[arg-type]
    )  # fmt: skip


def _mac(stanzas: list[Stanza]) -> str | None:
    """`hwaddress [ether] MAC`, the MAC ifupdown sets on the interface."""
    value = next((s.option("hwaddress") for s in stanzas if s.option("hwaddress")), None)
    return value.split()[-1].lower() if value else None


def _kind(first: Stanza, stanzas: list[Stanza]) -> str:
    if first.method == "loopback" or first.name == "lo":
        return "loopback"
    if any(s.bridge_ports is not None for s in stanzas):
        return "bridge"
    if any(s.bond_slaves is not None for s in stanzas):
        return "bond"
    if any(s.vlan_id is not None for s in stanzas):
        return "vlan"
    return "ethernet"
