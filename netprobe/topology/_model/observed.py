"""What discovery saw in a namespace netprobe did not build: `observed:` blocks of a spec.

An interface with an `observed` block exists already: it has no type, so netprobe creates
nothing for it and changes nothing about it. The block keeps what was there (its kind, a
veth's far end, its master, addresses, port state) so that pictures and `topo show` can
draw it and a bundle can rebuild it. A host's block keeps its routes, its permanent
neighbours, the sysctls that bear on forwarding and its nft ruleset.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from ...errors import SpecError

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _items(value: Iterable[Any] | None, what: str) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)):
        raise SpecError(f"{what} must be a list")
    return tuple(value)


def _optional(obj: object, name: str, *types: type) -> None:
    value = getattr(obj, name)
    if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
        raise SpecError(f"observed {name} must be {types[0].__name__}, not {value!r}")


@dataclass(frozen=True)
class Observed:
    """An interface as discovery found it. `kind` is the kernel's word (veth, bridge, tap,
    tun, openvswitch, macvlan, device …); `peer` a veth's far end "HOST:IFNAME" when that
    host was discovered too."""

    kind: str
    peer: str | None = None
    master: str | None = None
    mac: str | None = None
    mtu: int | None = None
    up: bool = True
    addresses: tuple[IPInterface, ...] = ()
    port_state: str | None = None  # as a bridge port: forwarding, blocking …

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not self.kind:
            raise SpecError(f"observed kind must be a word, not {self.kind!r}")
        for name in ("peer", "master", "mac", "port_state"):
            _optional(self, name, str)
        _optional(self, "mtu", int)
        if self.peer is not None and not all(self.peer.partition(":")[::2]):
            raise SpecError(f"observed peer must be HOST:IFNAME, not {self.peer!r}")
        if not isinstance(self.up, bool):
            raise SpecError("observed up must be true or false")
        try:
            addrs = tuple(ipaddress.ip_interface(a) for a in _items(self.addresses, "addresses"))
        except ValueError as exc:
            raise SpecError(f"observed addresses: {exc}") from None
        _set(self, "addresses", addrs)


@dataclass(frozen=True)
class ObservedRoute:
    """A route as the kernel had it; `to` is a network or "default" (IPv4) / "default6"."""

    to: str
    via: str | None = None
    dev: str | None = None
    src: str | None = None
    metric: int | None = None
    type: str = "unicast"  # blackhole, unreachable, prohibit …
    table: int = 254
    proto: str = "boot"  # kernel: made with an address (rebuilding the address makes it)

    def __post_init__(self) -> None:
        try:
            if self.to not in ("default", "default6"):
                ipaddress.ip_network(self.to, strict=False)
            for addr in (self.via, self.src):
                if addr is not None:
                    ipaddress.ip_address(addr)
        except ValueError as exc:
            raise SpecError(f"observed route: {exc}") from None
        _optional(self, "dev", str)
        _optional(self, "metric", int)
        _optional(self, "table", int)

    @property
    def family(self) -> int:
        """4 or 6."""
        if self.to in ("default", "default6"):
            return 6 if self.to == "default6" else 4
        return ipaddress.ip_network(self.to, strict=False).version


@dataclass(frozen=True)
class ObservedNeighbour:
    """A permanent neighbour entry: `ip` is at `mac` on `dev`."""

    ip: str
    mac: str
    dev: str

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.ip)
        except ValueError as exc:
            raise SpecError(f"observed neighbour: {exc}") from None


@dataclass(frozen=True)
class ObservedHost:
    """A host's routing and filtering as discovery found them. `origin` says where the
    namespace came from ("netns red", "docker container web, pid 4242")."""

    origin: str | None = None
    routes: tuple[ObservedRoute, ...] = ()
    neighbours: tuple[ObservedNeighbour, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    ruleset: str | None = None  # `nft list ruleset`, when not empty

    def __post_init__(self) -> None:
        _optional(self, "origin", str)
        _optional(self, "ruleset", str)
        _set(self, "routes", tuple(_made(ObservedRoute, r) for r in _items(self.routes, "routes")))
        neighbours = _items(self.neighbours, "neighbours")
        _set(self, "neighbours", tuple(_made(ObservedNeighbour, n) for n in neighbours))
        pairs: Any = self.sysctls
        items = pairs.items() if isinstance(pairs, Mapping) else _items(pairs, "sysctls")
        _set(self, "sysctls", tuple((str(k), str(v)) for k, v in items))


def _made(cls: type[Any], value: object) -> Any:
    """`value` as a `cls`: itself, or built from a mapping of its fields."""
    what = cls.__name__[8:].lower() or "interface"
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise SpecError(f"an observed {what} is a mapping, not {value!r}")
    allowed = {f.name for f in fields(cls)}
    unknown = set(value) - allowed
    if unknown:
        raise SpecError(
            f"unknown key {sorted(unknown)[0]!r} in an observed {what} "
            f"(expected one of: {', '.join(sorted(allowed))})"
        )
    try:
        return cls(**value)
    except TypeError as exc:  # a required key missing
        raise SpecError(f"observed {what}: {exc}") from None


def observed(value: object) -> Observed:
    """An interface's `observed:` mapping (plain YAML data) as an Observed."""
    result: Observed = _made(Observed, value)
    return result


def observed_host(value: object) -> ObservedHost:
    """A host's `observed:` mapping (plain YAML data) as an ObservedHost."""
    result: ObservedHost = _made(ObservedHost, value)
    return result
