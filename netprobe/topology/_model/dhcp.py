"""DHCP servers of a spec: one dnsmasq each, run by netprobe inside a host.

Only what a DhcpServer says by itself is checked here (addresses, the order of its
range, its lease time); where it may serve, and whether its range lies in a subnet of
its interface, is `validate`'s (validate_dhcp.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import SpecError

_U32_MAX = 2**32 - 1


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass in __post_init__


def _tuple(value: Iterable[Any] | None, what: str) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (bytes, Mapping)):
        raise SpecError(f"{what} must be a list")
    return tuple(value)


DHCP_MIN_LEASE = 120  # seconds: dnsmasq raises anything shorter to this


@dataclass(frozen=True)
class DhcpServer:
    """A DHCP server (one dnsmasq, run by netprobe inside the host) serving `interface`
    only. `range`: (first, last) IPv4 addresses, or "FIRST-LAST"; `router` (option 3):
    None sends the interface's own address, as dnsmasq does; `dns` (option 6): none sent
    when empty. The addresses must lie in a subnet of the interface (`validate`)."""

    interface: str
    range: tuple[str, str]
    lease_time: int = 3600
    router: str | None = None
    dns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.interface, str) or not self.interface:
            raise SpecError(f"a DHCP server's interface must be a name, not {self.interface!r}")
        _set(self, "range", dhcp_range(self.range))
        lease_time(self.lease_time)
        if self.router is not None:
            _set(self, "router", ipv4(self.router, "DHCP router"))
        dns = [self.dns] if isinstance(self.dns, str) else _tuple(self.dns, "DHCP dns")
        _set(self, "dns", tuple(ipv4(a, "DHCP dns server") for a in dns))


def lease_time(value: object) -> int:
    """`value` if it is a lease time dnsmasq takes, else SpecError."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not DHCP_MIN_LEASE <= value < _U32_MAX  # all ones: "infinite"
    ):
        raise SpecError(
            f"DHCP lease_time must be seconds, {DHCP_MIN_LEASE} (dnsmasq's least) to "
            f"{_U32_MAX - 1}, not {value!r}"
        )
    return value


def ipv4(value: object, what: str) -> str:
    """`value` as an IPv4 address in its usual form, else SpecError naming `what`."""
    try:
        return str(ipaddress.IPv4Address(value if isinstance(value, str) else str(value)))
    except ValueError:
        raise SpecError(f"{what} must be an IPv4 address, not {value!r}") from None


def dhcp_range(value: object) -> tuple[str, str]:
    """(first, last) from "FIRST-LAST" or a pair, first not above last."""
    if isinstance(value, str):
        parts: list[object] = list(value.split("-"))
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = []
    if len(parts) != 2:
        raise SpecError(f"a DHCP range is FIRST-LAST or [first, last], not {value!r}")
    first, last = (ipv4(p.strip() if isinstance(p, str) else p, "a DHCP range's end")
                   for p in parts)
    if ipaddress.IPv4Address(first) > ipaddress.IPv4Address(last):
        raise SpecError(f"DHCP range {first}-{last}: the first address is above the last")
    return first, last
