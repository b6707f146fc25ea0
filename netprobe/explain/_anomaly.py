"""State that breaks the probe's own path: the devices it must cross, read as the kernel
has them now.

The path is what the probe needs whatever the trace saw: the port it is sent into and
that port's veth peer, the ports that had to see it and their peers, the device owning
its destination MAC and that device's peer, and the bridges all of those belong to. A
device there that is down, out of its declared bridge, smaller (MTU) than the probe, in
a non-forwarding STP state or not flooding is a fault of the path, and ranks with the
drop reasons.
"""

from __future__ import annotations

from collections.abc import Iterator

from ._facts import (
    STRONG,
    Cause,
    Findings,
    HostFacts,
    LinkFacts,
    stp_fix,
    stray,
    stray_text,
    unenslaved,
    unicast_dst,
)
from ._walk import devices as walk_devices

ETH_HLEN = 14
_NOT_FORWARDING = ("listening", "learning", "blocking")


def path_devices(found: Findings) -> list[tuple[str, str]]:
    """(host, device) the probe must cross, in order, without repeats."""
    ends: list[tuple[str, str]] = []
    if found.sender is not None:
        ends.append(found.sender)
    if found.delivery is not None:
        ends += list(found.delivery.dests)
    ends += _mac_owners(found)
    out: list[tuple[str, str]] = []
    for end in ends:
        out += [end, found.peers.get(end, end)]
    out += walk_devices(found.path.steps)  # the way the tables say, adopted hosts too
    masters = [(h, m) for h, d in out if (m := _master(found, h, d)) is not None]
    return list(dict.fromkeys(out + masters))


def _mac_owners(found: Findings) -> list[tuple[str, str]]:
    mac = unicast_dst(found.probe)
    if mac is None:
        return []
    return [
        (facts.host, link.name)
        for facts in found.hosts.values()
        for link in facts.links.values()
        if (link.mac or "").lower() == mac and link.kind != "bridge"
    ]


def _master(found: Findings, host: str, dev: str) -> str | None:
    facts = found.hosts.get(host)
    link = facts.links.get(dev) if facts is not None else None
    return link.master if link is not None else None


def _link(found: Findings, host: str, dev: str) -> LinkFacts | None:
    facts = found.hosts.get(host)
    return facts.links.get(dev) if facts is not None else None


def on_path(found: Findings) -> list[Cause]:
    """Faults of the devices on the probe's path, strongest first within each device."""
    out: list[Cause] = []
    for host, dev in path_devices(found):
        link = _link(found, host, dev)
        if link is not None:
            out += list(_faults(found, host, link))
    return out + list(_apart(found))


def _apart(found: Findings) -> Iterator[Cause]:
    """The probe comes in on one bridge and must leave by a port of another, in the
    same host: nothing joins them."""
    if found.sender is None or found.delivery is None:
        return
    ingress = found.peers.get(found.sender)
    entry = _link(found, *ingress) if ingress is not None else None
    if ingress is None or entry is None or entry.master is None:
        return
    missing = {found.delivery.devices.get(p) for p in found.delivery.missing}
    for dest in found.delivery.dests:
        peer = found.peers.get(dest)
        link = _link(found, *peer) if peer is not None and dest in missing else None
        if peer is None or link is None or peer[0] != ingress[0] or link.master is None:
            continue
        if link.master != entry.master:
            yield Cause(
                f"{peer[0]}:{peer[1]} is a port of {link.master}, not of {entry.master} "
                f"where the probe comes in: {peer[0]}:{entry.master} and "
                f"{peer[0]}:{link.master} are not joined",
                (f"ip link: {peer[0]}:{peer[1]} master {link.master}",),
                STRONG,
            )


def _faults(found: Findings, host: str, link: LinkFacts) -> Iterator[Cause]:
    where = f"{host}:{link.name}"
    if not link.up:
        yield Cause(f"{where} is down", (f"ip link: {where} is not UP",), STRONG + 0.03)
    if link.declared_master and link.master != link.declared_master:
        yield Cause(
            unenslaved(host, link),
            (f"ip link: {where} " + (f"master {link.master}" if link.master else "has no master"),),
            0.97,
            f"in {host}: ip link set {link.name} master {link.declared_master}",
        )
    facts = found.hosts.get(host, HostFacts(host))
    if not link.declared_master and stray(facts, link) and (host, link.name) != found.sender:
        fix = f"in {host}: ip link set {link.name} master {_bridge_of(facts)}"
        yield Cause(
            stray_text(facts, link), (f"ip link: {where} has no master",), STRONG + 0.01, fix
        )
    size = _l3_size(found)
    sending = {(s.host, s.oif) for s in found.path.steps if s.action == "forward"}
    receiving = (host, link.name) != found.sender and (host, link.name) not in sending
    if link.mtu is not None and size > link.mtu and receiving and link.kind != "bridge":
        yield Cause(
            f"{where} has MTU {link.mtu}, smaller than the probe's {size}-byte packet "
            f"(a {found.frame_len}-byte frame): it is dropped on the way in",
            (f"ip link: {where} mtu {link.mtu}",),
            STRONG,
        )
    master = _link(found, host, link.master) if link.master else None
    if link.port_state in _NOT_FORWARDING and (master is None or master.up):
        yield Cause(
            f"bridge port {where} of {link.master} is in STP state {link.port_state}",
            (f"bridge link: {where} state {link.port_state}",),
            STRONG - 0.05,
            stp_fix(host, link),
        )
    if link.flood is False and _floods(found):
        yield Cause(
            f"{where} has flood off: unknown unicast is never sent out of it",
            (f"bridge link: {where} flood off",),
            STRONG - 0.05,
        )


def _bridge_of(facts: HostFacts) -> str:
    bridges = sorted(n for n, f in facts.links.items() if f.kind == "bridge")
    return bridges[0] if len(bridges) == 1 else "BRIDGE (" + " or ".join(bridges) + ")"


def _l3_size(found: Findings) -> int:
    tags = 4 * len(found.probe.get("vlan") or ())
    return found.frame_len - ETH_HLEN - tags if found.frame_len else 0


def _floods(found: Findings) -> bool:
    return not _mac_owners(found) and bool(found.delivery and found.delivery.missing)
