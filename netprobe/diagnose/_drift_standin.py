"""NetworkManager profiles that name no interface (they match a NIC by its MAC) against the
live kernel: the model calls such a NIC by a made-up name (`nic<mac>`), so before
comparing, each is given the name of the live interface with that MAC, in every place the
configuration names it (its ports' masters, its VLANs' parents and names, its routes)."""

from __future__ import annotations

from dataclasses import replace

from ..topology._kernel.state import LiveHost
from ..topology._model.persistent import PersistentConfig, PersistentInterface
from ._drift_item import NotCompared


def resolve_stand_ins(config: PersistentConfig, host: LiveHost
                      ) -> tuple[PersistentConfig, list[NotCompared]]:
    """`config` with each stand-in NIC renamed to the live interface of its MAC, and the
    stand-ins no live interface matches left out, each listed as not compared."""
    names: dict[str, str] = {}
    dropped: set[str] = set()
    notes: list[NotCompared] = []
    configured = {i.name for i in config.interfaces if not i.stand_in}
    for iface in (i for i in config.interfaces if i.stand_in):
        match = next((n.name for n in host.interfaces
                      if iface.mac and n.mac.lower() == iface.mac.lower()), None)  # fmt: skip
        if match is not None and match not in configured:
            names[iface.name] = match
            continue
        dropped.add(iface.name)
        notes.append(NotCompared(iface.where, _why(iface, match)))
    if not names and not dropped:
        return config, notes
    for vlan in config.interfaces:  # a VLAN on a NIC left out cannot be compared either
        if vlan.vlan_parent in dropped:
            dropped.add(vlan.name)
            notes.append(NotCompared(vlan.where, f"a VLAN on {vlan.vlan_parent}, a NIC "
                                     "matched by MAC and not compared"))

    def rename(name: str | None) -> str | None:
        if name is None:
            return None
        head, dot, tail = name.partition(".")
        return names.get(name) or (f"{names[head]}.{tail}" if dot and head in names else name)

    interfaces = tuple(replace(i, name=rename(i.name) or i.name, master=rename(i.master),
                               vlan_parent=rename(i.vlan_parent))
                       for i in config.interfaces if i.name not in dropped)  # fmt: skip
    routes = tuple(replace(r, dev=rename(r.dev)) for r in config.routes if r.dev not in dropped)
    return replace(config, interfaces=interfaces, routes=routes), notes


def _why(iface: PersistentInterface, match: str | None) -> str:
    if not iface.mac:
        return "a profile for any NIC (no interface-name, no MAC): which one is not known"
    if match is not None:
        return (f"a profile for the NIC with MAC {iface.mac}, {match}, which another file "
                "configures by name")
    return f"a profile for the NIC with MAC {iface.mac}: no interface here has that MAC"
