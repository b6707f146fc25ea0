"""NetworkManager's keyfile profiles (nm-settings-keyfile(5), the files in
/etc/NetworkManager/system-connections) → the persistent model. Pure: it reads files.

Read: ethernet, bridge, bond and VLAN profiles, ports of a bridge or bond
(`connection.master`/`controller` with `slave-type`/`port-type`), ipv4/ipv6 methods,
addresses, gateways, DNS, routes, MTU, MACs, autoconnect. Profiles of other types (wifi,
vpn…) are listed as skipped. NetworkManager's defaults are filled in where the kernel's
differ: a profile without [ipv4] asks DHCP, a bridge without `stp=` runs STP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import SpecError
from .ifupdown_options import BOND_MODES
from .keyfile_syntax import KeyFile, Value, parse_keyfile
from .nmkeyfile_ip import IpSettings, read_ip
from .persistent import PersistentConfig, PersistentInterface, PersistentRoute

_TYPES = {"802-3-ethernet": "ethernet", "ethernet": "ethernet", "bridge": "bridge",
          "bond": "bond", "vlan": "vlan"}  # fmt: skip
# Types NetworkManager has that this model does not read: skipped, not refused.
_OTHER_TYPES = frozenset({
    "802-11-wireless", "wifi", "802-11-olpc-mesh", "vpn", "wireguard", "team", "infiniband",
    "gsm", "cdma", "bluetooth", "pppoe", "adsl", "generic", "tun", "ip-tunnel", "macvlan",
    "vxlan", "dummy", "loopback", "ovs-bridge", "ovs-port", "ovs-interface", "ovs-patch",
    "ovs-dpdk", "6lowpan", "wpan", "veth", "vrf", "wifi-p2p", "macsec", "hsr", "ipvlan",
    "wimax",
})  # fmt: skip
_PORT_TYPES = ("bridge", "bond")
_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


@dataclass
class _Profile:
    keyfile: KeyFile
    id: str
    uuid: str | None
    kind: str
    name: str
    stand_in: bool
    where: str
    autoconnect: bool
    priority: int
    controller: Value | None  # connection.controller / master, as written
    port_type: str | None


def read_keyfiles(paths: Sequence[str]) -> PersistentConfig:
    """The profiles in the keyfiles at `paths`: one interface per name (of several
    profiles for a name, the autoconnecting one of highest autoconnect-priority, the
    first on a tie), ports' controllers and VLANs' parents resolved by interface name,
    connection uuid or id. Raises SpecError naming the file and line of any problem."""
    profiles, skipped = [], []
    for path in paths:
        keyfile = parse_keyfile(path)
        profile = _profile(keyfile)
        if isinstance(profile, str):
            skipped.append((f"{keyfile.file}:{keyfile.lines.get('connection', 1)}", profile))
        else:
            profiles.append(profile)
    chosen, losers = _choose(profiles)
    skipped += losers
    interfaces: list[PersistentInterface] = []
    routes: list[PersistentRoute] = []
    for profile in chosen:
        interface, ip = _interface(profile, profiles)
        interfaces.append(interface)
        routes += ip.routes
        skipped += ip.skipped
    return PersistentConfig(tuple(interfaces), routes=tuple(routes), files=tuple(paths),
                            skipped=tuple(skipped))  # fmt: skip


def _profile(keyfile: KeyFile) -> _Profile | str:
    """The profile of `keyfile`, or why it is skipped."""
    if "connection" not in keyfile.groups:
        raise SpecError("no [connection] group: not a NetworkManager profile", file=keyfile.file)
    where = f"{keyfile.file}:{keyfile.lines['connection']}"
    type_value = keyfile.get("connection", "type")
    kind = _kind(keyfile, type_value)
    if kind in _OTHER_TYPES:
        return f"a {kind} profile: not modelled"
    ident = _text(keyfile, "connection", "id") or keyfile.file.rsplit("/", 1)[-1]
    uuid = _text(keyfile, "connection", "uuid")
    name, stand_in = _name(keyfile, kind, uuid)
    controller = keyfile.get("connection", "controller") or keyfile.get("connection", "master")
    port_value = keyfile.get("connection", "port-type") or keyfile.get("connection",
                                                                        "slave-type")
    port_type = port_value.text() if port_value else None
    if controller is not None and port_type not in _PORT_TYPES:
        if port_type is None:
            raise controller.error("a port profile (controller set) says no port-type")
        return f"a port of a {port_type}: not modelled"
    return _Profile(keyfile, ident, uuid.lower() if uuid else None, kind, name, stand_in,
                    where, _bool(keyfile.get("connection", "autoconnect"), True),
                    _int(keyfile.get("connection", "autoconnect-priority"), 0, -999, 999) or 0,
                    controller, port_type)  # fmt: skip


def _kind(keyfile: KeyFile, value: Value | None) -> str:
    if value is None:  # NetworkManager takes the type from the one base setting present
        found = [_TYPES[g] for g in keyfile.groups if g in _TYPES]
        if len(set(found)) != 1:
            raise SpecError("connection.type is missing", file=keyfile.file,
                            line=keyfile.lines["connection"])
        return found[0]
    text = value.text()
    if text in _TYPES:
        return _TYPES[text]
    if text in _OTHER_TYPES:
        return text
    raise value.error(f"unknown connection type {text!r}")


def _name(keyfile: KeyFile, kind: str, uuid: str | None) -> tuple[str, bool]:
    """The interface the profile is for, and whether netprobe had to make the name up."""
    for group in ("connection", kind):  # bridge.interface-name… are older spellings
        name = _text(keyfile, group, "interface-name")
        if name:
            return name, False
    if kind == "vlan":  # NetworkManager names it PARENT.ID; resolved once parents are known
        return "", False
    if kind != "ethernet":
        raise SpecError(f"a {kind} profile needs connection.interface-name", file=keyfile.file,
                        line=keyfile.lines["connection"])
    mac = _text(keyfile, "ethernet", "mac-address") or _text(keyfile, "802-3-ethernet",
                                                              "mac-address")
    # nic + the MAC's 12 hex digits: 15 characters, the longest name Linux allows
    tail = (mac or "").replace(":", "").lower() or (uuid or "0" * 12).replace("-", "")[:12]
    return f"nic{tail}", True


def _choose(profiles: list[_Profile]) -> tuple[list[_Profile], list[tuple[str, str]]]:
    """One profile per interface name, in reading order; the others with why."""
    best: dict[str, _Profile] = {}
    for profile in profiles:
        key = profile.name or f"vlan:{profile.where}"
        held = best.get(key)
        if held is None or (profile.autoconnect, profile.priority) > (held.autoconnect,
                                                                       held.priority):
            best[key] = profile
    chosen = [p for p in profiles if best.get(p.name or f"vlan:{p.where}") is p]
    losers = [(p.where, f"{best[p.name].where} is the profile {p.name} comes up with")
              for p in profiles if not any(p is c for c in chosen)]  # fmt: skip
    return chosen, losers


def _interface(profile: _Profile,
               profiles: list[_Profile]) -> tuple[PersistentInterface, IpSettings]:
    keyfile, kind = profile.keyfile, profile.kind
    master = _controller(profile, profiles)
    parent, vid = _vlan(profile, profiles) if kind == "vlan" else (None, None)
    name = profile.name or f"{parent}.{vid}"
    ip = read_ip(keyfile, name, port=master is not None)
    ethernet = _group(keyfile, "ethernet")
    fields: dict[str, Any] = {}
    if kind in ("bridge", "bond"):
        fields = _bridge(keyfile) if kind == "bridge" else _bond(keyfile)
    interface = PersistentInterface(
        name=name, kind=kind, where=profile.where, method=ip.method, method6=ip.method6,
        boot=profile.autoconnect, addresses=ip.addresses, gateways=ip.gateways,
        mtu=_mtu(ethernet.get("mtu")), master=master, mac=_mac(keyfile, ethernet),
        vlan_parent=parent, vlan_id=vid, dns=ip.dns, stand_in=profile.stand_in, **fields,
    )  # fmt: skip
    return interface, ip


def _controller(profile: _Profile, profiles: list[_Profile]) -> str | None:
    """The interface name of the profile's controller (its bridge or bond)."""
    value = profile.controller
    if value is None:
        return None
    target = _find(value.text(), profiles)
    if target is None:
        raise value.error(f"port of {value.text()!r}, but no profile read is that "
                          f"{profile.port_type} (by interface name, uuid or id)")
    if target.kind != profile.port_type:
        raise value.error(f"a {profile.port_type} port, but {value.text()!r} is a "
                          f"{target.kind} profile")
    return target.name


def _vlan(profile: _Profile, profiles: list[_Profile]) -> tuple[str, int]:
    keyfile = profile.keyfile
    parent_value, id_value = keyfile.get("vlan", "parent"), keyfile.get("vlan", "id")
    if parent_value is None or id_value is None:
        raise SpecError("a VLAN profile needs vlan.parent and vlan.id", file=keyfile.file,
                        line=keyfile.lines.get("vlan", keyfile.lines["connection"]))
    parent = parent_value.text()
    found = _find(parent, profiles)
    if found is not None:
        parent = found.name
    elif _looks_like_uuid(parent):
        raise parent_value.error(f"VLAN parent {parent} is no profile read")
    return parent, _int(id_value, None, 0, 4094)  # type: ignore[return-value]


def _find(ref: str, profiles: list[_Profile]) -> _Profile | None:
    """The profile `ref` means: by interface name, then uuid, then connection id."""
    return (next((p for p in profiles if p.name == ref and not p.stand_in), None)
            or next((p for p in profiles if p.uuid == ref.lower()), None)
            or next((p for p in profiles if p.id == ref), None))


def _looks_like_uuid(text: str) -> bool:
    return len(text) == 36 and text.count("-") == 4


def _bridge(keyfile: KeyFile) -> dict[str, Any]:
    group = keyfile.groups.get("bridge", {})
    return {"bridge_stp": _bool(group.get("stp"), True),
            "bridge_fd": _int(group.get("forward-delay"), 15, 2, 30),
            "vlan_aware": _bool(group.get("vlan-filtering"), False)}  # fmt: skip


def _bond(keyfile: KeyFile) -> dict[str, Any]:
    group = keyfile.groups.get("bond", {})
    mode = group.get("mode")
    text = mode.text() if mode else "balance-rr"
    if text.isdigit() and int(text) < len(BOND_MODES):
        text = BOND_MODES[int(text)]
    if mode is not None and text not in BOND_MODES:
        raise mode.error(f"bond mode {text!r} is not one of {', '.join(BOND_MODES)}")
    # With neither miimon nor arp_interval, NetworkManager monitors links with miimon=100.
    default = None if "arp_interval" in group else 100
    return {"bond_mode": text, "bond_miimon": _int(group.get("miimon"), default, 0, 2**31 - 1)}


def _group(keyfile: KeyFile, name: str) -> dict[str, Value]:
    """[ethernet] and its long name [802-3-ethernet], merged."""
    return {**keyfile.groups.get("802-3-ethernet", {}), **keyfile.groups.get(name, {})}


def _mac(keyfile: KeyFile, ethernet: dict[str, Value]) -> str | None:
    """The MAC the profile sets (cloned-mac-address, bridge.mac-address) or matches by."""
    for value in (ethernet.get("cloned-mac-address"), keyfile.get("bridge", "mac-address"),
                  ethernet.get("mac-address")):  # fmt: skip
        if value is not None and value.text().count(":") == 5:
            return value.text().lower()
    return None


def _mtu(value: Value | None) -> int | None:
    mtu = _int(value, 0, 0, 65535)
    return mtu or None  # 0: leave the MTU as it is


def _text(keyfile: KeyFile, group: str, key: str) -> str | None:
    value = keyfile.get(group, key)
    return value.text() if value is not None else None


def _bool(value: Value | None, default: bool) -> bool:
    if value is None:
        return default
    text = value.text().lower()
    if text not in _TRUE | _FALSE:
        raise value.error(f"expected true or false, got {value.text()!r}")
    return text in _TRUE


def _int(value: Value | None, default: int | None, low: int, high: int) -> int | None:
    if value is None:
        return default
    text = value.text()
    if not text.lstrip("-").isdigit() or not low <= int(text) <= high:
        raise value.error(f"expected a whole number from {low} to {high}, got {text!r}")
    return int(text)
