"""Where DHCP servers and clients may be, and whether a server's addresses fit its subnet.

A server (dnsmasq) serves one interface of a host netprobe makes or adopts (never the
machine's own namespace, whose port 67 is the machine's), and hands out a range inside
one of that interface's IPv4 subnets. A real client (`dhcp: true`, busybox udhcpc) sets
the address and the default route it is given, so it runs only in a host netprobe makes;
on a TAP, `dhcp: true` says the VM's side is a client, and nothing runs for it.
"""

from __future__ import annotations

import ipaddress
from collections import Counter

from ...errors import SpecError
from .dhcp import DhcpServer
from .spec import Host, Interface, OvsBond, Tap


def _fail(message: str, *path: str) -> SpecError:
    return SpecError(message, path=("hosts", *path))


def check_dhcp(host: Host, existing: set[str]) -> None:
    """Raise SpecError for the first DHCP server or client of `host` that cannot be."""
    for index, server in enumerate(host.dhcp_servers):
        _check_server(host, server, existing, (host.name, "dhcp_servers", str(index)))
    for name, count in Counter(s.interface for s in host.dhcp_servers).items():
        if count > 1:
            raise _fail(
                f"{count} DHCP servers on {host.name}:{name}: one dnsmasq serves an interface",
                host.name,
                "dhcp_servers",
            )
    for iface in host.interfaces:
        if iface.dhcp:
            _check_client(host, iface)


def _check_server(
    host: Host, server: DhcpServer, existing: set[str], path: tuple[str, ...]
) -> None:
    where = f"DHCP server on {host.name}:{server.interface}"
    if host.root:
        raise _fail(
            f"{where}: the root namespace is the machine's own, and so is its DHCP port; "
            "serve from a host netprobe makes or adopts",
            *path,
        )
    iface = host.interface(server.interface)
    if iface is None:
        raise _fail(
            f"{where}: {server.interface!r} is not an interface of {host.name!r}",
            *path,
            "interface",
        )
    if isinstance(iface.kind, OvsBond) or iface.master is not None:
        raise _fail(
            f"{where}: {iface.name!r} is a port of {iface.master!r}, which takes its frames; "
            f"serve {iface.master!r} instead",
            *path,
        )
    if not iface.up:
        raise _fail(f"{where}: {iface.name!r} is down (up: false)", *path)
    subnets = _subnets(iface)
    if not subnets:
        if iface.name in existing:
            return  # it exists already: its kernel addresses are checked when built
        raise _fail(
            f"{where}: {iface.name!r} has no IPv4 address, and dnsmasq serves only the "
            "subnets of its interface's addresses",
            *path,
        )
    _check_fit(server, subnets, where, (*path, "range"))


def _subnets(iface: Interface) -> list[ipaddress.IPv4Interface]:
    addresses = list(iface.addresses)
    if iface.observed is not None:
        addresses += iface.observed.addresses
    return [a for a in addresses if isinstance(a, ipaddress.IPv4Interface)]


def _check_fit(
    server: DhcpServer,
    subnets: list[ipaddress.IPv4Interface],
    where: str,
    path: tuple[str, ...],
) -> None:
    """The range lies in one subnet of the interface, off its own address, network and
    broadcast addresses."""
    first, last = (ipaddress.IPv4Address(a) for a in server.range)
    home = next((a for a in subnets if first in a.network and last in a.network), None)
    if home is None:
        nets = ", ".join(str(a.network) for a in subnets)
        raise _fail(
            f"{where}: range {first}-{last} is not inside one subnet of the interface ({nets})",
            *path,
        )
    net = home.network
    if net.prefixlen < 31 and (first == net.network_address or last == net.broadcast_address):
        raise _fail(
            f"{where}: range {first}-{last} includes the network or broadcast address of {net}",
            *path,
        )
    own = [a.ip for a in subnets if first <= a.ip <= last]
    if own:
        raise _fail(
            f"{where}: range {first}-{last} includes the interface's own address {own[0]}",
            *path,
        )


def _check_client(host: Host, iface: Interface) -> None:
    path = (host.name, "interfaces", iface.name)
    if isinstance(iface.kind, Tap):
        return  # the VM's side is the client; netprobe plays it when a check asks
    if not host.owned:
        raise _fail(
            f"dhcp: true on {host.name}:{iface.name} runs a client that sets the address and "
            f"the default route it gets: only in a host netprobe makes ({host.name!r} is "
            f"{'the root namespace' if host.root else 'adopted'}); a TAP's VM side may be one",
            *path,
        )
    if isinstance(iface.kind, OvsBond) or iface.master is not None:
        raise _fail(
            f"dhcp: true on {host.name}:{iface.name}: a port of {iface.master!r} hands its "
            f"frames to it; give `dhcp: true` to {iface.master!r}",
            *path,
        )
    if not iface.up:
        raise _fail(f"dhcp: true on {host.name}:{iface.name}, which is down (up: false)", *path)
    if any(s.interface == iface.name for s in host.dhcp_servers):
        raise _fail(
            f"{host.name}:{iface.name} has both a DHCP server and `dhcp: true`", *path
        )
