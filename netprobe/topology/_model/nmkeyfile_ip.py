"""A keyfile's [ipv4] and [ipv6] groups → method, addresses, gateways, DNS and routes, in
both the spellings nm-settings-keyfile(5) reads: `address1=ADDR/PLEN[,GW]` and the older
`addresses1=ADDR;PLEN;GW;`, `route1=DEST/PLEN[,NEXTHOP[,METRIC]]`. Routes in a table other
than main (`route1_options=table=N`, or the profile's `route-table`) are policy routing, not
modelled: set aside with the reason, as a hook's `ip route add … table N` is."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .keyfile_syntax import KeyFile, Value
from .persistent import Address, Gateway, PersistentRoute

_METHODS: dict[str, dict[str, str | None]] = {
    "ipv4": {"auto": "dhcp", "manual": "static", "disabled": "disabled",
             "link-local": "link-local", "shared": "shared"},
    "ipv6": {"auto": "auto", "dhcp": "dhcp", "manual": "static", "disabled": "disabled",
             "link-local": "link-local", "shared": "shared", "ignore": None},
}  # fmt: skip
_NUMBERED = re.compile(r"^(address|addresses|route|routes)(\d*)$")
_DEFAULT_PREFIX = {4: 24, 6: 64}  # what NetworkManager assumes for an address without one
_MAIN_TABLES = ("0", "254")  # 0: unset, the main table


@dataclass(frozen=True)
class IpSettings:
    """What a profile's IP groups say."""

    method: str
    method6: str | None
    addresses: tuple[Address, ...]
    gateways: tuple[Gateway, ...]
    dns: tuple[Gateway, ...]
    routes: tuple[PersistentRoute, ...]
    skipped: tuple[tuple[str, str], ...] = ()  # (where, why): routes in another table


def read_ip(keyfile: KeyFile, name: str, *, port: bool) -> IpSettings:
    """The IP settings of the profile for interface `name`; a port has none (its link is
    up, its addresses are its controller's)."""
    if port:
        return IpSettings("manual", None, (), (), (), ())
    v4, v6 = _family(keyfile, "ipv4", name), _family(keyfile, "ipv6", name)
    return IpSettings(v4.method or "manual", v6.method, v4.addresses + v6.addresses,
                      v4.gateways + v6.gateways, v4.dns + v6.dns, v4.routes + v6.routes,
                      v4.skipped + v6.skipped)  # fmt: skip


@dataclass(frozen=True)
class _Family:
    method: str | None
    addresses: tuple[Address, ...]
    gateways: tuple[Gateway, ...]
    dns: tuple[Gateway, ...]
    routes: tuple[PersistentRoute, ...]
    skipped: tuple[tuple[str, str], ...]


def _family(keyfile: KeyFile, group: str, name: str) -> _Family:
    values = keyfile.groups.get(group, {})
    version = 4 if group == "ipv4" else 6
    method_value = values.get("method")
    method = _method(group, method_value)
    addresses: list[Address] = []
    gateways: list[Gateway] = []
    routes: list[PersistentRoute] = []
    for _, value in _numbered(values, "address"):
        address, gateway = _address(value, version)
        addresses.append(address)
        gateways += [gateway] if gateway is not None and not gateways else []
    if "gateway" in values:
        gateways = [_ip(values["gateway"], version, "gateway")]
    if method == "static" and not addresses:
        raise (method_value or values["method"]).error(
            f"{group}.method=manual with no {group}.addresses: NetworkManager refuses it")
    table = values["route-table"].text() if "route-table" in values else "0"
    skipped = []
    if table not in _MAIN_TABLES and gateways:
        skipped.append(_where(values["route-table"], f"the default route via {gateways[0]} in "
                              f"table {table} (policy routing): not modelled"))
        gateways = []
    for number, value in _numbered(values, "route"):
        route = _route(value, version, name)
        its = _table(values, number) or table
        if its in _MAIN_TABLES:
            routes.append(route)
        else:
            skipped.append(_where(value, f"route {route.to} in table {its} (policy routing): "
                                  "not modelled"))
    dns = [_ip_text(text, value, version, "DNS server")
           for value in ([values["dns"]] if "dns" in values else []) for text in value.items()]
    return _Family(method, tuple(addresses), tuple(gateways), tuple(dns), tuple(routes),
                   tuple(skipped))


def _table(values: dict[str, Value], number: int) -> str | None:
    """The table=N of routeN_options (routesN_options in older files), or None."""
    for key in (f"route{number or ''}_options", f"routes{number or ''}_options"):
        if key in values:
            for item in values[key].text().split(","):
                option, _, table = item.strip().partition("=")
                if option == "table":
                    return table.strip()
    return None


def _where(value: Value, why: str) -> tuple[str, str]:
    return f"{value.file}:{value.line}", why


def _method(group: str, value: Value | None) -> str | None:
    if value is None:  # NetworkManager's default: DHCP for IPv4, autoconfiguration for IPv6
        return "dhcp" if group == "ipv4" else "auto"
    text = value.text()
    if text not in _METHODS[group]:
        raise value.error(f"unknown {group}.method {text!r} (one of "
                          f"{', '.join(_METHODS[group])})")
    return _METHODS[group][text]


def _numbered(values: dict[str, Value], stem: str) -> list[tuple[int, Value]]:
    """address, address1, addresses2… (or route…) in number order."""
    found = []
    for key, value in values.items():
        match = _NUMBERED.match(key)
        if match and match.group(1).startswith(stem):
            found.append((int(match.group(2) or 0), value))
    return sorted(found, key=lambda item: item[0])


def _parts(value: Value) -> list[str]:
    """`A/P,GW,METRIC` or the older `A;P;GW;` list: the fields, `A/P` joined."""
    text = value.text()
    if ";" in text:
        items = value.items()
        return [f"{items[0]}/{items[1]}", *items[2:]] if len(items) > 1 else items
    return [p.strip() for p in text.split(",")]


def _address(value: Value, version: int) -> tuple[Address, Gateway | None]:
    parts = _parts(value)
    text = parts[0] if "/" in parts[0] else f"{parts[0]}/{_DEFAULT_PREFIX[version]}"
    try:
        address = ipaddress.ip_interface(text)
    except ValueError:
        raise value.error(f"{parts[0]!r} is not an IP address with a /prefix") from None
    if address.version != version:
        raise value.error(f"{parts[0]} is not an IPv{version} address")
    gateway = _ip_text(parts[1], value, version, "gateway") if len(parts) > 1 and parts[1] \
        else None
    return address, gateway


def _route(value: Value, version: int, name: str) -> PersistentRoute:
    parts = _parts(value)
    dest = parts[0] if "/" in parts[0] else f"{parts[0]}/{32 if version == 4 else 128}"
    try:
        network = ipaddress.ip_network(dest, strict=False)  # NetworkManager clears host bits
    except ValueError as exc:
        raise value.error(f"route {parts[0]!r} is not a network ({exc})") from None
    if network.version != version:
        raise value.error(f"route {parts[0]} is not an IPv{version} network")
    via = _ip_text(parts[1], value, version, "next hop") if len(parts) > 1 and parts[1] \
        else None
    metric = parts[2] if len(parts) > 2 and parts[2] else None
    if metric is not None and not metric.isdigit():
        raise value.error(f"route metric {metric!r} is not a number")
    to = "default" if network.prefixlen == 0 else str(network)
    return PersistentRoute(to, str(via) if via and not via.is_unspecified else None, name,
                           int(metric) if metric else None, f"{value.file}:{value.line}",
                           family=version)  # fmt: skip


def _ip(value: Value, version: int, what: str) -> Gateway:
    return _ip_text(value.text(), value, version, what)


def _ip_text(text: str, value: Value, version: int, what: str) -> Gateway:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise value.error(f"{what} {text!r} is not an IP address") from None
    if address.version != version:
        raise value.error(f"{what} {text} is not an IPv{version} address")
    return address
