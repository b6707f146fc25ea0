"""Routes of the main table and sysctls: the configuration's against the kernel's.

A route counts as made by someone when its protocol says so (boot, static: `ip route add`,
ifupdown), not when the kernel made it with an address (kernel), a DHCP client (dhcp) or a
router advertisement (ra). A sysctl the configuration does not set is compared with the
kernel's default (forwarding off); a per-interface forwarding that only follows its
family's switch is said once, at the switch.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..topology._kernel.state import LiveRoute
from ..topology._model.persistent import PersistentConfig
from ..topology._model.sysctlfile import sysctl_name, sysctl_path
from ._drift_item import Drift
from ._drift_live import GLOBAL_SYSCTLS, PER_INTERFACE, LiveState
from ._drift_runtime import made_at_runtime

_MAIN = 254
_NOT_BY_HAND = ("kernel", "dhcp", "9", "ra", "redirect")  # 9: RTPROT_RA
_SKIPPED = (ipaddress.ip_network("fe80::/64"), ipaddress.ip_network("ff00::/8"))
_DEFAULTS = {"net/ipv4/ip_forward": "0", "net/ipv6/conf/all/forwarding": "0"}
_ALIASES = {"net/ipv4/conf/all/forwarding": "net/ipv4/ip_forward"}  # one switch, two names

GLOB = re.compile(r"[*?\[]")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class _Wanted:
    """A route the configuration makes: an interface's gateway, or a route it adds."""

    dst: Network
    via: str | None
    dev: str | None
    metric: int | None
    where: str

    def matches(self, route: LiveRoute) -> bool:
        return (route.dst == self.dst and self.via in (None, route.gateway)
                and self.dev in (None, route.dev)
                and self.metric in (None, route.metric))  # fmt: skip

    def __str__(self) -> str:
        words = ["default" if self.dst.prefixlen == 0 else str(self.dst)]
        for key, value in (("via", self.via), ("dev", self.dev), ("metric", self.metric)):
            if value is not None:
                words += [key, str(value)]
        return " ".join(words)


def route_drift(config: PersistentConfig, live: LiveState) -> list[Drift]:
    """Routes set at runtime that no configuration makes, and configured routes absent."""
    wanted = _wanted(config)
    main = [r for r in live.host.routes if r.table == _MAIN]
    out = [Drift("route", str(w), f"route {w}: configured, not there now: a reboot adds it",
                 w.where) for w in wanted if not any(w.matches(r) for r in main)]  # fmt: skip
    dhcp = {i.name for i in config.interfaces if i.method == "dhcp"}
    for route in main:
        if not _by_hand(route, config, live) or any(w.matches(route) for w in wanted):
            continue
        if route.dst.prefixlen == 0 and route.dev in dhcp:
            continue  # the DHCP server's router option, asked again at boot
        out.append(Drift("route", str(route), f"route {route}: set at runtime, in no "
                         "configuration: gone after a reboot"))
    return out


def _wanted(config: PersistentConfig) -> list[_Wanted]:
    out = []
    for iface in config.named():
        for gateway in iface.gateways:
            default = ipaddress.ip_network("::/0" if gateway.version == 6 else "0.0.0.0/0")
            out.append(_Wanted(default, str(gateway), None, None, iface.where))
    for route in config.routes:
        dst = _network(route.to, route.family)
        if dst is not None:
            out.append(_Wanted(dst, route.via, route.dev, route.metric, route.where))
    return out


def _network(to: str, family: int) -> Network | None:
    if to == "default":
        return ipaddress.ip_network("::/0" if family == 6 else "0.0.0.0/0")
    try:
        return ipaddress.ip_network(to, strict=False)
    except ValueError:
        return None


def _by_hand(route: LiveRoute, config: PersistentConfig, live: LiveState) -> bool:
    """Whether someone made `route` (not the kernel, DHCP or an RA), on a device of the
    box: one the configuration names, or one nothing made at runtime (a container's veth
    is its runtime's, whatever routes go through it)."""
    dst = route.dst
    if route.proto in _NOT_BY_HAND or any(
        n.version == dst.version and dst.prefixlen >= n.prefixlen and dst.network_address in n
        for n in _SKIPPED
    ):
        return False
    if route.dev is not None and config.interface(route.dev) is not None:
        return True
    dev = live.host.interface(route.dev) if route.dev else None
    return dev is None or made_at_runtime(dev, live.host) is None


def sysctl_drift(config: PersistentConfig, live: LiveState) -> list[Drift]:
    """Sysctls whose live value differs from what the configuration sets, or from the
    kernel's default where nothing sets them."""
    persisted = _persisted(config)
    out = []
    for path in dict.fromkeys([*GLOBAL_SYSCTLS, *persisted]):
        now = live.sysctls.get(path)
        expected, where = persisted.get(path) or (_DEFAULTS.get(path), None)
        if now is not None and expected is not None and now != expected:
            out.append(_sysctl(path, now, expected, where))
    for iface in live.host.interfaces:
        for pattern, switch in zip(PER_INTERFACE, GLOBAL_SYSCTLS, strict=True):
            path = pattern.format(iface.name)
            if path in persisted or path not in live.sysctls:
                continue  # compared above
            now, follows = live.sysctls[path], live.sysctls.get(switch)
            expected = (persisted.get(switch) or (None, None))[0] or _DEFAULTS[switch]
            if now != expected and now != follows:
                said = f"nothing persists it: it follows {sysctl_name(switch)},"
                out.append(_sysctl(path, now, expected, None, said))
    return out


def _persisted(config: PersistentConfig) -> dict[str, tuple[str | None, str | None]]:
    """Path → (value, where) of each sysctl the configuration sets, the last one winning
    as at boot."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for key, value, where in config.sysctls:
        if GLOB.search(key):
            continue  # systemd-sysctl's globs (conf.*.rp_filter): not compared
        path = sysctl_path(key)
        out[_ALIASES.get(path, path)] = (" ".join(value.split()), where)
    return out


def _sysctl(path: str, now: str, expected: str, where: str | None,
            said: str | None = None) -> Drift:
    name = sysctl_name(path)
    if said is None:
        said = "the configuration sets" if where else "nothing persists it: the kernel default"
    return Drift("sysctl", name, f"sysctl {name} = {now} now; {said} {expected} after a "
                 "reboot", where)
