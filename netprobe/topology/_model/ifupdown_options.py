"""The option lines of one ifupdown `iface` stanza → typed values, with the line of any bad one.

Only the options netprobe reasons about are typed (addresses, gateways, MTU, bridge, bond,
VLAN, hook commands); every option line, known or not, stays in `Stanza.options` verbatim.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ...errors import SpecError

Address = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Gateway = ipaddress.IPv4Address | ipaddress.IPv6Address

# The hook options ifupdown runs through the shell; `up` means post-up and `down` pre-down.
HOOKS = ("pre-up", "up", "post-up", "down", "pre-down", "post-down")
BOND_MODES = ("balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad",
              "balance-tlb", "balance-alb")  # fmt: skip; index = the kernel's mode number
_TRUE, _FALSE = {"yes", "on", "1", "true"}, {"no", "off", "0", "false"}
_VLAN_NAME = re.compile(r"^vlan0*(\d+)$")  # the vlan package's vlan10 / vlan0010 names


@dataclass(frozen=True)
class Option:
    """One option line of a stanza. The key is spelt with dashes (`bridge_ports` is
    `bridge-ports`: ifupdown hands both to its scripts as IF_BRIDGE_PORTS)."""

    key: str
    value: str
    file: str
    line: int


@dataclass(frozen=True)
class Stanza:
    """One `iface NAME FAMILY METHOD` stanza and what its options say."""

    name: str
    family: str | None  # inet, inet6; None for ifupdown2's bare `iface NAME`
    method: str | None  # static, dhcp, manual, loopback...; None with family None
    file: str
    line: int
    options: tuple[Option, ...] = ()
    auto: bool = False  # named by `auto` (or `allow-auto`): brought up at boot
    hotplug: bool = False  # named by `allow-hotplug`: brought up when the kernel sees it
    addresses: tuple[Address, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    mtu: int | None = None
    bridge_ports: tuple[str, ...] | None = None  # None: not a bridge; (): `bridge-ports none`
    bridge_stp: bool | None = None
    bridge_fd: int | None = None
    bridge_vlan_aware: bool = False
    bridge_vids: tuple[tuple[int, int], ...] = ()  # inclusive ranges: 2-4094 is ((2, 4094),)
    bond_slaves: tuple[str, ...] | None = None  # None: not a bond
    bond_mode: str | None = None  # always by name: `bond-mode 4` is 802.3ad
    bond_miimon: int | None = None
    vlan_raw_device: str | None = None
    vlan_id: int | None = None
    commands: tuple[tuple[str, str], ...] = ()  # (hook, shell command), in file order

    def option(self, key: str) -> str | None:
        """The value of the last `key` line (dashes or underscores alike), or None."""
        key = key.replace("_", "-")
        values = [o.value for o in self.options if o.key == key]
        return values[-1] if values else None


def _bool(value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError("expected yes or no")


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not value.isdigit() or not low <= int(value) <= high:
            raise ValueError(f"expected a whole number from {low} to {high}")
        return int(value)

    return parse


def _ports(value: str) -> tuple[str, ...]:
    words = tuple(value.split())
    return () if words == ("none",) else words


def _vids(value: str) -> tuple[tuple[int, int], ...]:
    vid = _int_in(1, 4094)
    ranges = []
    for word in value.split():
        low, _, high = word.partition("-")
        first, last = vid(low), vid(high or low)
        if first > last:
            raise ValueError(f"range {word} runs backwards")
        ranges.append((first, last))
    return tuple(ranges)


def _bond_mode(value: str) -> str:
    if value.isdigit() and int(value) < len(BOND_MODES):
        return BOND_MODES[int(value)]
    if value not in BOND_MODES:
        raise ValueError(f"not a bonding mode (one of {', '.join(BOND_MODES)})")
    return value


def _word(value: str) -> str:
    if len(value.split()) != 1:
        raise ValueError("expected one interface name")
    return value


# Options holding one value; a repeated one keeps the last, as ifupdown2 does.
_SCALARS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "mtu": ("mtu", _int_in(68, 65535)),
    "bridge-ports": ("bridge_ports", _ports),
    "bridge-stp": ("bridge_stp", _bool),
    "bridge-fd": ("bridge_fd", _int_in(0, 255)),
    "bridge-vlan-aware": ("bridge_vlan_aware", _bool),
    "bridge-vids": ("bridge_vids", _vids),
    "bond-slaves": ("bond_slaves", _ports),
    "bond-mode": ("bond_mode", _bond_mode),
    "bond-miimon": ("bond_miimon", _int_in(0, 2**31 - 1)),
    "vlan-raw-device": ("vlan_raw_device", _word),
    "vlan-id": ("vlan_id", _int_in(0, 4094)),
}


@dataclass
class _Values:
    fields: dict[str, Any] = field(default_factory=dict)
    addresses: list[Address] = field(default_factory=list)
    gateways: list[Gateway] = field(default_factory=list)
    commands: list[tuple[str, str]] = field(default_factory=list)


def interpret(name: str, family: str | None, method: str | None, where: tuple[str, int],
              options: Iterable[Option]) -> Stanza:
    """The stanza `iface NAME FAMILY METHOD` at `where` (file, line) with these options."""
    options = tuple(options)
    netmask = next((o for o in reversed(options) if o.key == "netmask"), None)
    values = _Values()
    for option in sorted(options, key=lambda o: o.key != "netmask"):  # a bad netmask first
        try:
            _take(option, netmask, values)
        except ValueError as exc:
            raise SpecError(f"{option.key} {option.value!r}: {exc}", file=option.file,
                            line=option.line) from None
    fields = values.fields
    raw, vid = _vlan_of(name, fields.get("vlan_raw_device"), where)
    fields.setdefault("vlan_raw_device", raw)
    fields.setdefault("vlan_id", vid)
    return Stanza(name, family, method, where[0], where[1], options,
                  addresses=tuple(values.addresses), gateways=tuple(values.gateways),
                  commands=tuple(values.commands), **fields)  # fmt: skip


def merge(stanzas: list[Stanza]) -> Stanza:
    """Several stanzas of one name and family as the one interface ifupdown and ifupdown2
    make of them (the way a second address is often written): at the first's place,
    with the first method said, addresses, gateways, hooks and option lines of all in
    order, and each one-value option the last stanza that says it gives."""
    first, *rest = stanzas
    if not rest:
        return first
    fields = {}
    for key, (name, _parse) in _SCALARS.items():
        sayers = [s for s in stanzas if any(o.key == key for o in s.options)]
        fields[name] = getattr(sayers[-1] if sayers else first, name)
    return replace(
        first, method=next((s.method for s in stanzas if s.method is not None), None),
        options=tuple(o for s in stanzas for o in s.options),
        addresses=tuple(a for s in stanzas for a in s.addresses),
        gateways=tuple(g for s in stanzas for g in s.gateways),
        commands=tuple(c for s in stanzas for c in s.commands), **fields)  # fmt: skip


def _take(option: Option, netmask: Option | None, values: _Values) -> None:
    key, value = option.key, option.value
    if key in _SCALARS:
        name, parse = _SCALARS[key]
        values.fields[name] = parse(value)
    elif key == "address":
        values.addresses.extend(_address(word, netmask) for word in value.split())
    elif key == "netmask":
        _netmask(value)
    elif key == "gateway":
        values.gateways.extend(_gateway(word) for word in value.split())
    elif key in HOOKS:
        values.commands.append((key, value))


def _address(word: str, netmask: Option | None) -> Address:
    try:
        address = ipaddress.ip_interface(word)  # no prefix: a host address, as `ip addr add`
    except ValueError:
        raise ValueError("not an IP address with an optional /prefix") from None
    if "/" in word or netmask is None:
        return address
    try:
        return ipaddress.ip_interface(f"{word}/{netmask.value}")
    except ValueError:
        raise SpecError(f"netmask {netmask.value!r} does not fit the IPv{address.version} "
                        f"address {word}", file=netmask.file, line=netmask.line) from None


def _netmask(value: str) -> None:
    if value.isdigit() and int(value) <= 128:
        return
    try:
        ipaddress.IPv4Network(f"0.0.0.0/{value}")
    except ValueError:
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError("not a netmask (255.255.255.0) or prefix length (24)") from None
        raise ValueError("not a netmask: its one bits must come first, unbroken "
                         "(255.255.255.0), or give a prefix length (24)") from None


def _gateway(word: str) -> Gateway:
    try:
        return ipaddress.ip_address(word)
    except ValueError:
        raise ValueError("not an IP address") from None


def _vlan_of(name: str, raw: str | None, where: tuple[str, int]) -> tuple[str | None, int | None]:
    """The VLAN an interface name implies: eno1.50 is VLAN 50 on eno1; vlan50 needs a
    vlan-raw-device. (None, None) for a name that is no VLAN's."""
    parent, dot, tail = name.rpartition(".")
    if dot and parent and tail.isdigit():
        if int(tail) > 4094:
            raise SpecError(f"VLAN id {tail} of {name} is over 4094", file=where[0],
                            line=where[1])
        return raw or parent, int(tail)
    match = _VLAN_NAME.match(name)
    if match and raw is not None:
        return raw, int(match.group(1))
    return raw, None
