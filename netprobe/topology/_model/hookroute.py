"""`ip route add|replace …` and net-tools' `route add …` words → the route they add, for
the main table's unicast routes a configuration's hooks add; any other form is a
RouteError saying why it is not modelled."""

from __future__ import annotations

import ipaddress
from typing import NoReturn

from .persistent import PersistentRoute

_IP_VERBS = ("add", "replace", "append", "prepend")
_TYPES_NOT_MODELLED = ("blackhole", "unreachable", "prohibit", "throw", "local", "broadcast",
                       "multicast", "nat", "anycast")  # fmt: skip
# `ip route` keywords whose value changes nothing this model compares.
_IGNORED_VALUES = frozenset({
    "proto", "protocol", "src", "scope", "mtu", "advmss", "realm", "realms", "initcwnd",
    "initrwnd", "expires", "pref", "tos", "dsfield", "rtt", "rttvar", "window", "cwnd",
    "hoplimit", "congctl", "features", "quickack", "ssthresh", "reordering",
    "fastopen_no_cookie",
})  # fmt: skip
_IGNORED_FLAGS = frozenset({"onlink", "pervasive", "unicast"})
_MAIN_TABLES = ("main", "254")


class RouteError(ValueError):
    """A route command this model does not read (the message says why)."""


def parse_ip_route(args: list[str], where: str) -> PersistentRoute:
    """The route `ip ARGS` adds (ARGS after `ip`: `-4 route add 10.0.0.0/8 via …`)."""
    family, words = 0, list(args)
    while words and words[0].startswith("-"):
        flag = words.pop(0)
        if flag in ("-4", "-6"):
            family = int(flag[1])
        elif flag in ("-f", "-family") and words:
            family = {"inet": 4, "inet6": 6}.get(words.pop(0), family)
    if not words or not "route".startswith(words[0]):
        raise RouteError(f"ip {words[0] if words else ''} is not a route command".rstrip())
    verb = words[1] if len(words) > 1 else ""
    if not verb or not any(v.startswith(verb) for v in _IP_VERBS):
        raise RouteError(f"ip route {verb or 'without a verb'} adds no route")
    return _ip_route_spec(words[2:], family, where)


def _ip_route_spec(words: list[str], family: int, where: str) -> PersistentRoute:
    to = via = dev = None
    metric = None
    while words:
        word = words.pop(0)
        if word in _TYPES_NOT_MODELLED:
            raise RouteError(f"a {word} route is not modelled")
        if word in _IGNORED_FLAGS:
            continue
        if word == "nexthop":
            raise RouteError("a multipath route (nexthop) is not modelled")
        if word not in _IGNORED_VALUES | {"to", "via", "dev", "oif", "metric", "preference",
                                          "priority", "table"}:  # fmt: skip
            to = _prefix(word, family) if to is None else _extra(word)
            continue
        if not words:
            raise RouteError(f"{word} has no value")
        value = words.pop(0)
        if word == "via" and value in ("inet", "inet6") and words:
            value = words.pop(0)
        if word == "to":
            to = _prefix(value, family)
        elif word == "via":
            via = str(_address(value))
        elif word in ("dev", "oif"):
            dev = value
        elif word in ("metric", "preference", "priority"):
            metric = _metric(value)
        elif word == "table" and value not in _MAIN_TABLES:
            raise RouteError(f"a route in table {value} (policy routing) is not modelled")
    return _route(to, via, dev, metric, family, where)


def parse_route(args: list[str], where: str) -> PersistentRoute:
    """The route net-tools' `route ARGS` adds (`add -net 10.0.0.0 netmask 255.0.0.0 gw …`)."""
    family, words = 4, list(args)
    while words and words[0].startswith("-") and words[0] not in ("-net", "-host"):
        flag = words.pop(0)
        if flag == "-6" or (flag == "-A" and words and words.pop(0) == "inet6"):
            family = 6
    if not words or words.pop(0) != "add":
        raise RouteError("route without add adds no route")
    kind = words.pop(0) if words and words[0] in ("-net", "-host") else "-net"
    if not words:
        raise RouteError("route add names no destination")
    target, netmask, via, dev, metric = words.pop(0), None, None, None, None
    while words:
        word = words.pop(0)
        value = words.pop(0) if word in ("netmask", "gw", "metric", "dev", "mss", "window",
                                         "irtt") and words else None  # fmt: skip
        if word == "netmask":
            netmask = value
        elif word == "gw":
            via = str(_address(value or ""))
        elif word == "metric":
            metric = _metric(value or "")
        elif word == "reject":
            raise RouteError("a reject route is not modelled")
        elif word == "dev" or (value is None and word not in ("mod", "dyn", "reinstate")):
            dev = value or word
    if target != "default":
        if kind == "-host":
            target = f"{target}/{128 if family == 6 else 32}"
        elif netmask is not None:
            target = f"{target}/{netmask}"
        elif "/" not in target:
            raise RouteError(f"route add -net {target} has no netmask")
    return _route(_prefix(target, family), via, dev, metric, family, where)


def _route(to: str | None, via: str | None, dev: str | None, metric: int | None,
           family: int, where: str) -> PersistentRoute:
    if to is None:
        raise RouteError("names no destination")
    if family == 0:  # as ip(8) guesses it: from the destination, else the gateway
        family = 6 if ":" in (to if to != "default" else via or "") else 4
    if via is not None and ipaddress.ip_address(via).version != family:
        raise RouteError(f"gateway {via} is not an IPv{family} address")
    return PersistentRoute(to, via, dev, metric, where, family=family)


def _prefix(word: str, family: int) -> str:
    if word in ("default", "all", "any"):
        return "default"
    address, slash, length = word.partition("/")
    if family != 6 and ":" not in address and address.count(".") < 3:
        address += ".0" * (3 - address.count("."))  # iproute2's 10/8 is 10.0.0.0/8
    try:
        network = ipaddress.ip_network(f"{address}{slash}{length}")
    except ValueError as exc:
        raise RouteError(f"{word} is not a network ({exc})") from None
    if family and network.version != family:
        raise RouteError(f"{word} is not an IPv{family} network")
    return str(network)


def _address(word: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(word)
    except ValueError:
        raise RouteError(f"gateway {word!r} is not an IP address") from None


def _metric(word: str) -> int:
    if not word.isdigit():
        raise RouteError(f"metric {word!r} is not a number")
    return int(word)


def _extra(word: str) -> NoReturn:
    raise RouteError(f"ip route option {word!r} is not understood")
