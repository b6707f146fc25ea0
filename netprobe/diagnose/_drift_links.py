"""Interfaces, bridge and bond ports, MTUs and addresses: the configuration's against the
kernel's, each difference worded as what a reboot does about it."""

from __future__ import annotations

import ipaddress

from ..topology._kernel.state import IPInterface, LiveHost, LiveInterface
from ..topology._model.persistent import PersistentConfig, PersistentInterface
from ._drift_item import Drift
from ._drift_live import LiveState
from ._drift_runtime import kernel_own, made_at_runtime

_LINK_LOCAL6 = ipaddress.ip_network("fe80::/10")
_LOOPBACK = {ipaddress.ip_interface("127.0.0.1/8"), ipaddress.ip_interface("::1/128")}
_DEFAULT_MTU = 1500
_MADE = ("bridge", "bond", "vlan")  # kinds the configuration creates, not only configures


def interface_drift(config: PersistentConfig, live: LiveState) -> list[Drift]:
    """Every difference of interfaces, ports, MTUs and addresses, configured ones first."""
    out: list[Drift] = []
    up = config.brought_up()
    for iface in config.named():
        now = live.host.interface(iface.name)
        if now is None:
            if iface.name in up:  # a stanza of a NIC this box may not have: no reboot makes it
                out.append(_absent(iface))
            continue
        if iface.kind != "loopback":  # lo is up in every namespace, whatever says so
            out += _configured(iface, now, config, live)
        out += _addresses(iface, now, live)
    for now in live.host.interfaces:
        if now.kind != "loopback" and config.interface(now.name) is None \
                and not kernel_own(now):
            out += _unconfigured(now, config, live)
    return out


def _absent(iface: PersistentInterface) -> Drift:
    if iface.kind in _MADE:
        message = f"{iface.name}: a {iface.kind} the configuration makes; absent now"
    else:
        message = (f"{iface.name}: configured, absent now (a reboot brings it up if the "
                   "device is there)")
    return Drift("link", iface.name, message, iface.where)


def _configured(iface: PersistentInterface, now: LiveInterface, config: PersistentConfig,
                live: LiveState) -> list[Drift]:
    out = []
    if iface.kind in _MADE and now.kind != iface.kind:
        out.append(Drift("link", iface.name, f"{iface.name}: of kind {now.kind} now; "
                         f"the configuration makes a {iface.kind}", iface.where))
    up = iface.name in config.brought_up()
    if up and not now.up:
        out.append(Drift("link", iface.name, f"{iface.name}: down now; the configuration "
                         "brings it up at boot", iface.where))
    elif not up and now.up and iface.method != "disabled":
        out.append(Drift("link", iface.name, f"{iface.name}: up now; nothing brings it up at "
                         "boot (no auto or allow-hotplug): down after a reboot", iface.where))
    out += _mtu(iface, now)
    out += _master(iface, now, config, live.host)
    return out


def _mtu(iface: PersistentInterface, now: LiveInterface) -> list[Drift]:
    if iface.mtu is not None and now.mtu != iface.mtu:
        return [Drift("mtu", iface.name, f"{iface.name}: MTU {now.mtu} now; the configuration "
                      f"sets {iface.mtu}", iface.where)]
    if iface.mtu is None and iface.kind == "ethernet" and now.kind in ("device", "veth", "dummy") \
            and now.mtu != _DEFAULT_MTU:
        return [Drift("mtu", iface.name, f"{iface.name}: MTU {now.mtu} now; no configuration "
                      f"sets one: the default {_DEFAULT_MTU} after a reboot", iface.where)]
    return []


def _master(iface: PersistentInterface, now: LiveInterface, config: PersistentConfig,
            host: LiveHost) -> list[Drift]:
    if iface.master is not None and now.master != iface.master:
        master = config.interface(iface.master)
        where = master.where if master else iface.where
        state = f"a port of {now.master}" if now.master else "in no bridge or bond"
        return [Drift("port", f"{iface.name} in {iface.master}", f"{iface.name}: {state} now; "
                      f"{iface.master}'s ports name it: a port of {iface.master} after a "
                      "reboot", where)]
    if iface.master is None and now.master is not None:
        return [_extra_port(now, config, host)]
    return []


def _extra_port(now: LiveInterface, config: PersistentConfig, host: LiveHost) -> Drift:
    master = config.interface(now.master or "")
    kind = master.kind if master else (m.kind if (m := host.interface(now.master or "")) else "")
    option = "bond-slaves" if kind == "bond" else "bridge-ports"
    return Drift("port", f"{now.name} in {now.master}",
                 f"{now.name}: a port of {now.master} now; {option} does not name it: out of "
                 f"{now.master} after a reboot", master.where if master else None)


def _unconfigured(now: LiveInterface, config: PersistentConfig, live: LiveState) -> list[Drift]:
    why = made_at_runtime(now, live.host)
    if why is not None:
        place = f", a port of {now.master}" if now.master else ""
        addresses = "".join(f", {a}" for a in _own(now.addresses, now))
        return [Drift("link", now.name, f"{now.name} ({why}{place}{addresses}): in no "
                      "configuration, made at runtime", runtime=True)]
    out = []
    if now.master is not None:
        out.append(_extra_port(now, config, live.host))
    elif now.kind != "device":
        out.append(Drift("link", now.name, f"{now.name} ({now.kind}): no configuration "
                         "makes it: gone after a reboot"))
    elif now.up:
        out.append(Drift("link", now.name, f"{now.name}: up now, in no configuration: down "
                         "after a reboot"))
    out += [_extra_address(now, a) for a in _own(now.addresses, now)
            if (now.name, a) not in live.dynamic]
    return out


def _addresses(iface: PersistentInterface, now: LiveInterface, live: LiveState) -> list[Drift]:
    wanted = set(iface.addresses)
    have = _own(now.addresses, now)
    out = [Drift("address", f"{a} on {iface.name}", f"address {a} on {iface.name}: configured, "
                 "not there now: a reboot adds it", iface.where)
           for a in iface.addresses if a not in have]  # fmt: skip
    for address in have:
        if address in wanted:
            continue
        if address.version == 4 and iface.method == "dhcp":
            continue  # DHCP's answer, asked again at boot
        if address.version == 6 and iface.method6 in ("auto", "dhcp"):
            continue
        if address.version == 6 and iface.method6 is None and (iface.name, address) in \
                live.dynamic:
            continue  # SLAAC's: the kernel autoconfigures where no inet6 stanza says how
        out.append(_extra_address(now, address, iface.where))
    if iface.method == "dhcp" and not now.ipv4:
        out.append(Drift("address", f"DHCP on {iface.name}", f"{iface.name}: asks DHCP for an "
                         "address at boot; it has no IPv4 address now", iface.where))
    return out


def _extra_address(now: LiveInterface, address: IPInterface, where: str | None = None) -> Drift:
    return Drift("address", f"{address} on {now.name}", f"address {address} on {now.name}: "
                 "in no configuration (ip addr add?): gone after a reboot", where)


def _own(addresses: tuple[IPInterface, ...], now: LiveInterface) -> list[IPInterface]:
    """The addresses someone gave: not IPv6 link-local ones, nor the loopback's own."""
    return [a for a in addresses if a.ip not in _LINK_LOCAL6
            and not (now.kind == "loopback" and a in _LOOPBACK)]  # fmt: skip
