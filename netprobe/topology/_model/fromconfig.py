"""A box's persistent configuration → a lab of it: the topology spec of the box as it comes
back after a reboot, with stand-ins for what is around it. Pure: it builds a Spec and the
ruleset texts it loads; writing them is the caller's.

- the box is one host (named `box` unless told), with its bridges, bonds, VLANs, addresses,
  default routes (from `gateway`), routes, sysctls and the firewall lines its hooks run;
- each physical NIC (an ethernet interface: no bridge, bond, VLAN or lo) is a veth to the
  host "lan", the LAN behind it, which holds the gateway of every subnet the box reaches
  through that NIC (on a VLAN of its own when the box reaches it tagged, on a bond when the
  NICs are bonded), so that the box's default route works;
- an interface configured by DHCP gets a client (`dhcp: true`), and the lan a DHCP server
  on the link the box asks by, in a subnet of 10.250.0.0/16 of its own;
- each bridge with no NIC under it (Proxmox NAT mode's vmbr0) gets a guest, "guest-BRIDGE",
  on a veth port, with an address of the bridge's subnet and its default route via the box;
- whatever of the configuration the lab does not do is listed (where, what, why).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace

import yaml

from ...errors import SpecError
from .dump import _Dumper, to_data
from .fromconfig_lan import LAN, PHYSICAL, HostParts, LanStandIns, NotApplied
from .fromconfig_rules import rulesets
from .hookcommand import UP_HOOKS, interpret, unapplied
from .persistent import PersistentConfig, PersistentInterface
from .spec import (
    Bond,
    Bridge,
    BridgeVlan,
    Firewall,
    Host,
    Interface,
    IPInterface,
    Route,
    Spec,
    Veth,
    Vlan,
)
from .validate import validate

GUEST = "guest-"


@dataclass(frozen=True)
class Lab:
    """The spec of a box after a reboot, the ruleset files it loads (name → text, to be
    written beside the spec under these names) and what it leaves out."""

    spec: Spec
    rulesets: dict[str, str]
    unapplied: tuple[NotApplied, ...]
    sources: tuple[str, ...] = ()  # the configuration files read


def from_config(config: PersistentConfig, *, box: str = "box", name: str | None = None,
                stem: str | None = None) -> Lab:
    """The lab of `config`: the box as host `box`, in topology `name` (default: `box`);
    ruleset files are named STEM.iptables, STEM.ip6tables, STEM.nft (default: `name`).
    Raises SpecError naming the file and line of what the spec cannot hold."""
    if box == LAN or box.startswith(GUEST):
        raise SpecError(f"the box cannot be named {box!r}: the lab's stand-ins use that name")
    lab = _Converter(config, box)
    if not any(n in lab.up for n in lab.by_name):
        raise SpecError("nothing is brought up at boot: no interface but lo is named by auto "
                        "or allow-hotplug (or a NetworkManager profile that autoconnects), so "
                        "the box after a reboot has no network to make a lab of",
                        file=", ".join(config.files) or None)
    lab.run(stem or name or box)
    hosts = [lab.host(box), lab.host(LAN), *(lab.host(g) for g in lab.guests)]
    spec = Spec(name or box, tuple(h for h in hosts if h.interfaces))
    try:  # the ruleset files are not written yet: the rest is checked here
        validate(Spec(spec.name, tuple(replace(h, firewall=()) for h in spec.hosts)))
    except SpecError as exc:
        raise lab.located(exc) from None
    return Lab(spec, lab.files, tuple(lab.notes), config.files)


class _Converter(LanStandIns):
    def host(self, name: str) -> Host:
        p = self.parts[name]
        return Host(name, tuple(p.interfaces.values()), tuple(p.routes),
                    tuple(p.sysctls.items()), tuple(p.firewall),
                    dhcp_servers=tuple(p.dhcp_servers.values()))  # fmt: skip

    def located(self, exc: SpecError) -> SpecError:
        """`exc` pointing at the stanza of the interface it is about (else the first file)."""
        name = exc.path[3] if len(exc.path) > 3 and exc.path[1] == self.box else None
        if name in self.by_name:
            return _at(self.by_name[name].where, exc.reason)
        return SpecError(exc.reason, file=self.config.files[0] if self.config.files else None)

    def run(self, stem: str) -> None:
        for iface in self.by_name.values():
            try:
                self._interface(iface)
            except SpecError as exc:
                raise _at(iface.where, exc.reason) from None
        self._lan()
        self._gateways()
        self._dhcp()
        self._guests()
        self._routes()
        self._hooks(stem)
        self._not_booted()
        for where, why in self.config.skipped:
            self.note(where, "not read", why)

    # -- the box ---------------------------------------------------------------------------

    def _interface(self, iface: PersistentInterface) -> None:
        up = iface.name in self.up
        if not up and iface.kind != PHYSICAL:
            self.note(iface.where, f"{iface.kind} {iface.name}",
                      "not brought up at boot (no auto or allow-hotplug), so not made")
            return
        if not up and (iface.addresses or iface.method == "dhcp"):
            self.note(iface.where, f"addresses of {iface.name}",
                      "not brought up at boot (no auto or allow-hotplug): the NIC stays down")
        self._methods(iface, up)
        kind = self._kind(iface)
        self.parts[self.box].interfaces[iface.name] = Interface(
            iface.name, kind, addresses=iface.addresses if up else (), master=iface.master,
            mac=iface.mac, mtu=iface.mtu, up=up, vlans=self._port_vlans(iface))

    def _kind(self, iface: PersistentInterface) -> Bridge | Bond | Vlan | Veth:
        if iface.kind == "bridge":
            stp = bool(iface.bridge_stp)
            return Bridge(stp=stp, forward_delay=iface.bridge_fd, vlan_filtering=iface.vlan_aware)
        if iface.kind == "bond":
            return Bond(mode=iface.bond_mode or "balance-rr", miimon=iface.bond_miimon)
        if iface.kind == "vlan":
            if iface.vlan_parent is None or iface.vlan_id is None:
                raise SpecError(f"VLAN {iface.name} names no parent (vlan-raw-device)")
            self._bridge_self_vlan(iface)
            return Vlan(iface.vlan_parent, iface.vlan_id)
        return Veth(f"{LAN}:{iface.name}")

    def _methods(self, iface: PersistentInterface, up: bool) -> None:
        if up and iface.method6 in ("dhcp", "auto"):
            self.note(iface.where, f"iface {iface.name} inet6 {iface.method6}",
                      "no IPv6 autoconfiguration in the lab (no router advertisements)")

    def _port_vlans(self, iface: PersistentInterface) -> tuple[BridgeVlan, ...]:
        """A port of a VLAN-aware bridge: VLAN 1 untagged (ifupdown2's bridge-pvid) and
        its bridge-vids (the port's own, else the bridge's) tagged."""
        bridge = self.by_name.get(iface.master or "")
        if bridge is None or bridge.kind != "bridge" or not bridge.vlan_aware:
            return ()
        ids = [v for lo, hi in (iface.vids or bridge.vids) for v in range(lo, hi + 1) if v != 1]
        return (BridgeVlan(1, pvid=True, untagged=True), *map(BridgeVlan, dict.fromkeys(ids)))

    def _bridge_self_vlan(self, iface: PersistentInterface) -> None:
        parent = self.by_name.get(iface.vlan_parent or "")
        if parent is not None and parent.kind == "bridge" and parent.vlan_aware:
            self.note(iface.where, f"VLAN {iface.vlan_id} on bridge {parent.name} itself",
                      f"the spec gives VLANs to bridge ports only: {iface.name} gets no "
                      f"frames of VLAN {iface.vlan_id} in the lab")

    # -- guests ----------------------------------------------------------------------------

    def _guests(self) -> None:
        bridges = [i for i in self.by_name.values() if i.kind == "bridge" and i.name in self.up]
        for bridge in bridges:
            if any(True for _ in self._trunks(bridge, None, set())):
                continue
            host, port = f"{GUEST}{bridge.name}", f"veth{100 + len(self.guests)}i0"
            self.guests.append(host)
            self.parts[host] = HostParts()
            addresses, routes = _guest_addressing(bridge, self.by_name.values())
            self.parts[host].interfaces["eth0"] = Interface(
                "eth0", Veth(f"{self.box}:{port}"), addresses=tuple(addresses))
            self.parts[host].routes += routes
            self.parts[self.box].interfaces[port] = Interface(port, master=bridge.name)

    # -- routes, sysctls, firewall ---------------------------------------------------------

    def _routes(self) -> None:
        for route in self.config.routes:
            try:
                made = Route(route.to, via=route.via, dev=route.dev, metric=route.metric)
            except SpecError as exc:
                self.note(route.where, f"route to {route.to}", exc.reason)
                continue
            if made.dev is not None and made.dev not in self.parts[self.box].interfaces:
                self.note(route.where, f"route to {route.to}", f"{made.dev} is not made")
                continue
            self.parts[self.box].routes.append(made)

    def _hooks(self, stem: str) -> None:
        box = self.parts[self.box]
        for key, value, _where in self.config.sysctls:
            box.sysctls[key] = value
        for cmd, why in unapplied(self.config):
            self.note(cmd.where, f"{cmd.hook} {cmd.text}", why)
        found = rulesets(self.config.firewall)
        for line, why in found.skipped:
            self.note(line.command.where, line.command.text, why)
        for kind, text in found.texts.items():
            path = f"{stem}.{kind}"
            self.files[path] = text
            box.firewall.append(Firewall(kind, path))

    def _not_booted(self) -> None:
        """Note what the up-hooks of interfaces boot does not bring up would set (the
        configuration's model leaves it out)."""
        down = [c for c in self.config.commands
                if c.hook in UP_HOOKS and c.interface not in self.up]  # fmt: skip
        owner = {c.where: c.interface for c in down}
        effects = interpret(down)
        found = [*((r.where, f"route to {r.to}") for r in effects.routes),
                 *((w, f"sysctl {k}={v}") for k, v, w in effects.sysctls),
                 *((f.command.where, f.command.text) for f in effects.firewall)]  # fmt: skip
        for where, what in found:
            self.note(where, what, f"a hook of {owner[where]}, which boot does not bring up")


def _at(where: str, reason: str) -> SpecError:
    """A SpecError at `where` (FILE:LINE)."""
    file, _, line = where.rpartition(":")
    if not line.isdigit():
        return SpecError(reason, file=where)
    return SpecError(reason, file=file, line=int(line))


def _guest_addressing(bridge: PersistentInterface, box: Iterable[PersistentInterface]) -> tuple[
        list[IPInterface], list[Route]]:
    """A free address in each of the bridge's subnets, and default routes via the bridge."""
    taken = {a for i in box for a in (*(x.ip for x in i.addresses), *i.gateways)}
    addresses, routes, families = [], [], set()
    for own in bridge.addresses:
        if own.ip.is_link_local:
            continue
        free = next((h for h in own.network.hosts() if h not in taken), None)
        if free is None:
            continue
        addresses.append(ipaddress.ip_interface(f"{free}/{own.network.prefixlen}"))
        if own.version not in families:
            families.add(own.version)
            routes.append(Route("default" if own.version == 4 else "default6", via=str(own.ip)))
    return addresses, routes


class _Flow(list[object]):
    """A list dumped on as few lines as it takes (a port's 4093 VLAN ids)."""


class _LabDumper(_Dumper):
    pass


_LabDumper.add_representer(
    _Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def lab_yaml(lab: Lab) -> str:
    """The topology YAML of `lab`: a header saying where it came from, which host is what
    and what is not applied, then the spec (as `dump` writes it, port VLANs in a row)."""
    data = to_data(lab.spec)
    for host in data["hosts"].values():
        for iface in (host.get("interfaces") or {}).values():
            if iface and "vlans" in iface:
                iface["vlans"] = _Flow(v["id"] if set(v) == {"id"} else v for v in iface["vlans"])
    return _header(lab) + yaml.dump(data, Dumper=_LabDumper, sort_keys=False, width=100)


def _header(lab: Lab) -> str:
    box, *_ = (h.name for h in lab.spec.hosts)
    lines = [f"The box after a reboot: `netprobe topo from-config` of {', '.join(lab.sources)}",
             f"{box}: the box. {LAN}: the LAN behind its NICs (it holds their gateways)."]
    if any(h.dhcp_servers for h in lab.spec.hosts if h.name == LAN):
        lines.append(f"{LAN} runs a stand-in DHCP server (its own subnet) on each link the "
                     "box asks for an address by DHCP.")
    lines += [f"{h.name}: a guest on {h.name.removeprefix(GUEST)}, a bridge with no NIC."
              for h in lab.spec.hosts if h.name.startswith(GUEST)]
    if lab.unapplied:
        lines.append("Not applied (the lab does not do these):")
        lines += [f"  {note}" for note in lab.unapplied]
    return "".join(f"# {line}\n" for line in lines)
