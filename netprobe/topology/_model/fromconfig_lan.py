"""The stand-ins `topo from-config` puts around the box on its LAN side: the host "lan"
behind its NICs (a bond where they are bonded, a VLAN where the box reaches it tagged),
holding the gateway of every subnet the box reaches through them, and a DHCP server
(dnsmasq) on each link the box asks for an address by DHCP. Pure: it builds spec parts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from .persistent import PersistentConfig, PersistentInterface
from .spec import Bond, DhcpServer, Firewall, Interface, IPInterface, Route, Vlan

LAN = "lan"
PHYSICAL = "ethernet"


@dataclass(frozen=True)
class NotApplied:
    """Something the configuration does at boot that the lab does not."""

    where: str  # FILE:LINE
    what: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}: {self.why}"


@dataclass
class HostParts:
    """What the conversion gathers for one host before it becomes a Host."""

    interfaces: dict[str, Interface] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    firewall: list[Firewall] = field(default_factory=list)
    dhcp_servers: dict[str, DhcpServer] = field(default_factory=dict)  # by interface


class LanStandIns:
    """The state a lab is built in, and the lan's part of building it."""

    def __init__(self, config: PersistentConfig, box: str) -> None:
        self.config, self.box = config, box
        self.parts: dict[str, HostParts] = {box: HostParts(), LAN: HostParts()}
        self.guests: list[str] = []
        self.notes: list[NotApplied] = []
        self.files: dict[str, str] = {}
        self.served: dict[tuple[str, int | None], str] = {}  # (NIC, VLAN) → its DHCP server's
        self.up = config.brought_up()
        self.by_name = {i.name: i for i in config.named() if i.kind != "loopback"}

    def note(self, where: str, what: str, why: str) -> None:
        """Note something of the configuration the lab does not do."""
        self.notes.append(NotApplied(where, what, why))

    def _lan(self) -> None:
        lan = self.parts[LAN].interfaces
        for iface in self.by_name.values():
            if iface.kind != PHYSICAL:
                continue
            bond = self.by_name.get(iface.master or "")
            master = bond.name if bond is not None and bond.kind == "bond" else None
            if bond is not None and master is not None and master not in lan and master in self.up:
                lan[master] = Interface(master, Bond(bond.bond_mode or "balance-rr",
                                                     bond.bond_miimon))
            lan[iface.name] = Interface(iface.name, master=master if master in lan else None,
                                        up=iface.name in self.up)  # a down NIC: no carrier

    def _gateways(self) -> None:
        """For each gateway: the lan holds it where the box reaches it, the box routes
        by it (one default route per family: the kernel refuses a second)."""
        families: set[int] = set()
        for iface in self.by_name.values():
            if iface.name not in self.up:
                continue
            for gateway in iface.gateways:
                net = next((a.network for a in iface.addresses if gateway in a.network), None)
                what = f"gateway {gateway} of {iface.name}"
                if net is None:
                    self.note(iface.where, what, "on none of its subnets: no default route")
                    continue
                trunks = list(self._trunks(iface, None, set()))
                if trunks:
                    held = ipaddress.ip_interface(f"{gateway}/{net.prefixlen}")
                    self._lan_address(*trunks[0], held)
                if gateway.version in families:
                    self.note(iface.where, what, "a second default route, which the kernel "
                              "refuses at boot as it does here")
                    continue
                families.add(gateway.version)
                self.parts[self.box].routes.append(Route("default", via=str(gateway)))

    def _trunks(self, iface: PersistentInterface, tag: int | None,
                seen: set[str]) -> Iterator[tuple[str, int | None]]:
        """(lan interface, VLAN) for each way from `iface` down to a NIC."""
        if iface.name in seen:
            return
        seen.add(iface.name)
        if iface.kind in (PHYSICAL, "bond"):
            bond = self.by_name.get(iface.master or "")
            in_bond = bond is not None and bond.kind == "bond"
            yield (bond.name if in_bond else iface.name, tag)  # type: ignore[union-attr]
        elif iface.kind == "vlan" and tag is None and iface.vlan_parent in self.by_name:
            yield from self._trunks(self.by_name[iface.vlan_parent], iface.vlan_id, seen)
        elif iface.kind == "bridge":
            for port in self.config.ports(iface.name):
                if port in self.by_name and self._carries(iface, self.by_name[port], tag):
                    yield from self._trunks(self.by_name[port], tag, seen)

    def _carries(self, bridge: PersistentInterface, port: PersistentInterface,
                 tag: int | None) -> bool:
        if not bridge.vlan_aware or tag is None:
            return True
        return any(lo <= tag <= hi for lo, hi in (port.vids or bridge.vids))

    def _dhcp(self) -> None:
        """Each interface boot configures by DHCP gets a client (udhcpc), and the lan a
        DHCP server (dnsmasq) where the box reaches it, in a subnet of its own: the
        configuration names none, the LAN's own server decides it."""
        for iface in self.by_name.values():
            if iface.name not in self.up or iface.method != "dhcp":
                continue
            what = f"iface {iface.name} inet dhcp"
            if iface.master is not None:
                self.note(iface.where, what, f"a port of {iface.master}, which takes no address")
                continue
            trunks = list(self._trunks(iface, None, set()))
            if not trunks:
                self.note(iface.where, what, "no NIC leads from it to the LAN: no server answers")
                continue
            self._lan_server(*trunks[0])
            box = self.parts[self.box].interfaces
            box[iface.name] = replace(box[iface.name], dhcp=True)

    def _lan_server(self, trunk: str, tag: int | None) -> str:
        """The lan interface a DHCP server serves the link (`trunk`, `tag`) by; one server
        per link, in the first /24 of 10.250.0.0/16 no configured address is in."""
        if (trunk, tag) in self.served:
            return self.served[trunk, tag]
        taken = [a.network for i in self.config.interfaces for a in i.addresses]
        taken += [a.network for p in self.parts.values() for i in p.interfaces.values()
                  for a in i.addresses]  # fmt: skip
        subnet = next(n for n in ipaddress.ip_network("10.250.0.0/16").subnets(new_prefix=24)
                      if not any(n.overlaps(t) for t in taken))
        router = subnet[1]
        name = self._lan_address(trunk, tag, ipaddress.ip_interface(f"{router}/24"))
        self.parts[LAN].dhcp_servers[name] = DhcpServer(
            name, (str(subnet[100]), str(subnet[199])), router=str(router), dns=(str(router),))
        self.served[trunk, tag] = name
        return name

    def _lan_address(self, trunk: str, tag: int | None, address: IPInterface) -> str:
        lan = self.parts[LAN].interfaces
        name = trunk
        if tag is not None:
            name = f"{trunk}.{tag}" if len(f"{trunk}.{tag}") <= 15 else f"lan.{tag}"
            if name not in lan:
                lan[name] = Interface(name, Vlan(trunk, tag))
        old = lan[name]
        if address not in old.addresses:
            lan[name] = Interface(old.name, old.kind, (*old.addresses, address), old.master)
        return name

