"""What the OVS checks read back from an Open vSwitch bridge: its flows, its ports' VLAN
settings, what ofproto/trace says a frame meets, and the state of a bond and its LACP.

Every read goes through `Topology.ovs`, which points the OVS tools at the host's own
daemons (netprobe's, or those found running in an adopted namespace): what OVS has now,
never the spec. The helpers are public: checks of your own can use them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from netprobe.check import Context, Port, ipv4_of, peer_port
from netprobe.errors import SpecError
from netprobe.topology import Topology
from netprobe.traffic import Template, udp

__all__ = [
    "BondState",
    "LacpMember",
    "LacpState",
    "Trace",
    "bond_members",
    "bond_of",
    "bond_state",
    "flows",
    "ipv4_address",
    "lacp_state",
    "port_vlans",
    "require_ovs_bridge",
    "switch_port",
    "trace",
    "udp_probe",
]


def require_ovs_bridge(topo: Topology, bridge: str | Port) -> tuple[str, str]:
    """(host, name) of `bridge` ("HOST:BRIDGE"), which the OVS of that host of `topo`
    must have as a bridge (asked of its database: netprobe's own, or one found running)."""
    try:
        port: Port | None = Port.parse(bridge)
    except SpecError:
        port = None
    if port is None or port.host not in topo.hosts or not topo.ovs(
            port.host, "ovs-vsctl", "--timeout=5", "br-exists", port.ifname).ok:
        raise SpecError(f"bridge must be HOST:BRIDGE, an OVS bridge of this topology; "
                        f"{str(bridge)!r} is not one")
    return port.host, port.ifname


def switch_port(topo: Topology, port: str | Port, switch: str) -> str:
    """The OVS port (on host `switch`) at the far end of host port `port`'s veth."""
    peer = peer_port(topo, port)
    if peer is None or peer.host != switch:
        raise SpecError(f"{port} is not a veth into {switch}")
    return peer.ifname


def flows(ctx: Context, host: str, bridge: str) -> list[str]:
    """The bridge's flows as ovs-ofctl prints them, without counters."""
    result = ctx.topo.ovs(host, "ovs-ofctl", "--no-stats", "dump-flows", bridge)
    return [line.strip() for line in result.stdout.splitlines()
            if result.ok and "actions=" in line]


def port_vlans(ctx: Context, host: str, port: str) -> tuple[int | None, tuple[int, ...]]:
    """(tag, trunks) of an OVS port as configured now."""
    result = ctx.topo.ovs(host, "ovs-vsctl", "--format=json", "--columns=tag,trunks",
                          "list", "port", port)
    if not result.ok:
        return None, ()
    row = json.loads(result.stdout)["data"][0]
    tag = row[0] if isinstance(row[0], int) else None
    trunks = row[1][1] if isinstance(row[1], list) and row[1][0] == "set" else [row[1]]
    return tag, tuple(int(t) for t in trunks if isinstance(t, int))


@dataclass(frozen=True)
class Trace:
    """What ofproto/trace says a frame meets: the first rule it matched (as printed, e.g.
    "ip,nw_src=10.0.0.66, priority 100") and the datapath's final actions."""

    rule: str
    actions: str

    @property
    def dropped(self) -> bool:
        """True when the datapath's action is to drop the packet."""
        return self.actions == "drop"


def trace(ctx: Context, host: str, bridge: str, flow: str) -> Trace | None:
    """ofproto/trace of `flow` (ovs-ofctl match syntax, with in_port) on `bridge`."""
    result = ctx.topo.ovs(host, "ovs-appctl", "ofproto/trace", bridge, flow)
    if not result.ok:
        return None
    rule, actions = "", ""
    for line in result.stdout.splitlines():
        text = line.strip()
        if not rule and text[:1].isdigit() and ". " in text:
            rule = text.split(". ", 1)[1]
        if text.startswith("Datapath actions:"):
            actions = text.split(":", 1)[1].strip()
    return Trace(rule, actions)


@dataclass(frozen=True)
class BondState:
    """An OVS bond as bond/show reports it: its active member, and each member's state."""

    active: str | None
    enabled: dict[str, bool]


def bond_state(ctx: Context, host: str, bond: str) -> BondState | None:
    """What ovs-appctl bond/show says of `bond` on `host` (None when it fails)."""
    result = ctx.topo.ovs(host, "ovs-appctl", "bond/show", bond)
    if not result.ok:
        return None
    active, enabled, member = None, {}, None
    for line in result.stdout.splitlines():
        text = line.strip()
        if text.startswith("member ") and ":" in text:
            member, _, state = text[len("member "):].partition(":")
            enabled[member] = state.strip() == "enabled"
        elif text == "active member" and member is not None:
            active = member
    return BondState(active, enabled)


def bond_of(ctx: Context, host: str, member: str) -> str | None:
    """The OVS bond on `host` that has `member` (from bond/list), or None."""
    result = ctx.topo.ovs(host, "ovs-appctl", "bond/list")
    for line in result.stdout.splitlines()[1:] if result.ok else []:
        fields = line.split("\t")
        if len(fields) == 4 and member in (m.strip() for m in fields[3].split(",")):
            return fields[0]
    return None


@dataclass(frozen=True)
class LacpMember:
    """One member as lacp/show reports it: its state words ("current attached"; also
    "expired", "defaulted", "detached") and its partner's system id."""

    state: str
    partner: str

    @property
    def attached(self) -> bool:
        """True when LACP lets the member carry the bond's traffic."""
        return self.state.split() == ["current", "attached"]


@dataclass(frozen=True)
class LacpState:
    """A bond's LACP as lacp/show reports it: status ("active negotiated"), own system
    id, each member."""

    status: str
    sys_id: str
    members: dict[str, LacpMember]

    @property
    def negotiated(self) -> bool:
        """True when the bond has agreed an aggregate with a partner."""
        return "negotiated" in self.status.split()


def lacp_state(ctx: Context, host: str, bond: str) -> LacpState | None:
    """What ovs-appctl lacp/show says of `bond` on `host` (None: no LACP runs on it)."""
    result = ctx.topo.ovs(host, "ovs-appctl", "lacp/show", bond)
    if not result.ok:
        return None
    status, sys_id, members, member = "", "", {}, None
    for line in result.stdout.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "status":
            status = value
        elif key == "sys_id":
            sys_id = value
        elif key == "member":
            member, _, state = value.partition(": ")
            members[member] = LacpMember(state, "")
        elif key == "partner sys_id" and member is not None:
            members[member] = LacpMember(members[member].state, value)
    return LacpState(status, sys_id, members)


def bond_members(ctx: Context, bond: str) -> tuple[str, str, list[str]]:
    """(host, bond, its members) of `bond` (HOST:BOND), as that host's OVS reports them."""
    try:
        port: Port | None = Port.parse(bond)
    except SpecError:
        port = None
    state = bond_state(ctx, port.host, port.ifname) if port and port.host in ctx.topo.hosts \
        else None
    if port is None or state is None or not state.enabled:
        raise SpecError(f"bond must be HOST:BOND, an ovs_bond of this topology; {bond!r} is not")
    return port.host, port.ifname, sorted(state.enabled)


def udp_probe(ctx: Context, src: Port, dst: Port, dport: int) -> Template:
    """A UDP datagram from `src` to `dst`, between their IPv4 addresses."""
    return udp(ctx.topo.mac(src), ctx.topo.mac(dst), ipv4_address(ctx, src), ipv4_address(ctx, dst),
               dport=dport)


def ipv4_address(ctx: Context, port: Port) -> str:
    """`port`'s IPv4 address in the topology (SpecError when it has none)."""
    ip = ipv4_of(ctx.topo, port)
    if ip is None:
        raise SpecError(f"{port} has no IPv4 address in the topology")
    return ip
