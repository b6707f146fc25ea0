"""What `netprobe probe` is asked to reach: "icmp", "tcp/22", "udp/53"."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..errors import SpecError

PROTOCOLS = ("icmp", "tcp", "udp")


@dataclass(frozen=True)
class Service:
    """A protocol, and for tcp and udp the port."""

    proto: str
    port: int | None = None

    def __str__(self) -> str:
        return self.proto + (f"/{self.port}" if self.port is not None else "")


def parse_service(text: str) -> Service:
    """ "icmp" (ping; "ping" too), "tcp/22", "udp/53" → a Service; else a SpecError."""
    proto, _, port = text.strip().lower().partition("/")
    proto = "icmp" if proto in ("ping", "icmp6", "icmpv6") else proto
    if proto not in PROTOCOLS:
        raise SpecError(f"probe what? {text!r}: expected icmp, tcp/PORT or udp/PORT")
    if proto == "icmp":
        if port:
            raise SpecError(f"icmp has no port: {text!r}")
        return Service("icmp")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise SpecError(f"{proto} needs a port 1..65535: {proto}/PORT, not {text!r}")
    return Service(proto, int(port))


def parse_address(text: str) -> str:
    """An IPv4 or IPv6 address as text, normalised; else a SpecError."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise SpecError(f"probe where? {text!r} is not an IP address") from None
