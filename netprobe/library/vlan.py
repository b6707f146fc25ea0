"""vlan: 802.1Q VLAN sub-interfaces tag, untag and keep VLANs apart.

For each VLAN (an id and its sub-interfaces, the first one the sender): a frame sent out
of the sender's sub-interface carries the VLAN's tag on the trunk and arrives untagged at
the other members; a broadcast in one VLAN reaches that VLAN's members and no member of
another VLAN on the same trunk; a host on a VLAN sub-interface is answered in its own
VLAN and reaches nothing in another one. When something fails, each member's link is read
back to name the fault: a sub-interface on the wrong VLAN id, with the wrong protocol
(802.1ad instead of 802.1Q), down, or on a parent that is down.
"""

from __future__ import annotations

from dataclasses import dataclass

from netprobe.check import Check, Context, Param, Port, Status, echo_and_reply, ipv4_of, param
from netprobe.errors import SpecError
from netprobe.expect import Barrier, Match, at, at_exactly, nowhere
from netprobe.traffic import ethernet, udp

__all__ = ["CHECK", "VlanGroup", "parse_groups", "run"]

_TIMEOUT = 3.0  # seconds for what must arrive (polled: a pass costs only the delivery)
_TPID = {"802.1Q": 0x8100, "802.1ad": 0x88A8}
_BAD = (Status.FAIL, Status.INCONCLUSIVE)


@dataclass(frozen=True)
class VlanGroup:
    """A VLAN id and its member sub-interfaces (HOST:IFNAME), the sender first."""

    id: int
    ports: tuple[str, ...]


def parse_groups(text: str) -> list[VlanGroup]:
    """ "10=r:eth0.10,h:eth0.10 20=r:eth0.20,k:eth0.20" → two VlanGroups."""
    groups = []
    for item in text.replace(";", " ").split():
        vid, sep, members = item.partition("=")
        ports = tuple(p for p in members.split(",") if p)
        if not sep or not vid.isdigit() or len(ports) < 2 or any(":" not in p for p in ports):
            raise SpecError(f"expected VLANs as ID=HOST:IFNAME,HOST:IFNAME ..., not {item!r}")
        groups.append(VlanGroup(int(vid), ports))
    if len(groups) < 2:
        raise SpecError("give at least two VLANs, to test that they are isolated")
    return groups


def parent_of(ctx: Context, port: str) -> str:
    """The trunk end a sub-interface sits on (HOST:PARENT), as the kernel links them."""
    sub = Port.parse(port)
    if sub.host not in ctx.topo.hosts:
        raise SpecError(f"{port} is not a VLAN sub-interface of this topology")
    state = ctx.topo.live(sub.host, addresses=False)
    iface = state.interface(sub.ifname)
    if iface is None or iface.kind != "vlan":
        raise SpecError(f"{port} is not a VLAN sub-interface of this topology")
    parent = next((i.name for i in state.interfaces if i.index == iface.link_index), None)
    if parent is None or iface.link_nsid is not None:
        raise SpecError(f"{port}'s parent is in another namespace: no trunk to probe here")
    return f"{sub.host}:{parent}"


def body(ctx: Context, *, trunk: str = "switch:trunk",
         vlans: str = "10=router:eth0.10,h10:eth0.10 20=router:eth0.20,h20:eth0.20") -> None:
    """Probe tagging, untagging and isolation of every VLAN, then name what broke."""
    groups = parse_groups(vlans)
    for group in groups:
        for port in group.ports:
            parent_of(ctx, port)  # bad input fails here, before any probe
    ctx.plan(*(name for group in groups for name in _steps(ctx, group, groups, trunk)))
    for group in groups:
        others = [g for g in groups if g is not group]
        _tagging(ctx, group, trunk)
        _isolation(ctx, group, others)
        _own_vlan_only(ctx, group, others)
    if any(s.status in _BAD for s in ctx.steps):
        _diagnose(ctx, groups, trunk)


def _steps(ctx: Context, group: VlanGroup, groups: list[VlanGroup], trunk: str) -> list[str]:
    """The names of one VLAN's steps, in the order taken (for `ctx.plan`)."""
    others = [g for g in groups if g is not group]
    names = [_tag_step(group, trunk), *(_untagged_step(group, m) for m in group.ports[1:]),
             *(_isolation_step(group, other) for other in others)]
    for member in group.ports[1:]:
        names += [_ping_step(ctx, group, member), *(_leak_step(member, o) for o in others)]
    return [name for name in names if name is not None]


def _tag_step(group: VlanGroup, trunk: str) -> str:
    return f"VLAN {group.id}: a frame out of {group.ports[0]} carries tag {group.id} on {trunk}"


def _untagged_step(group: VlanGroup, member: str) -> str:
    return f"VLAN {group.id}: it arrives untagged at {member}"


def _tagging(ctx: Context, group: VlanGroup, trunk: str) -> None:
    src, dst = group.ports[0], group.ports[1]
    src_mac, dst_mac = ctx.topo.mac(src), ctx.topo.mac(dst)
    frame = udp(src_mac, dst_mac, "192.0.2.1", "192.0.2.2")
    tag = ((_TPID["802.1Q"], group.id),)
    ctx.expect(_tag_step(group, trunk), frame, src, at(trunk),
               match=Match(rewrites={"vlan": tag}), timeout=_TIMEOUT)
    for member in group.ports[1:]:
        ctx.expect(_untagged_step(group, member), frame, src, at(member), timeout=_TIMEOUT)


def _foreign(port: str, other: VlanGroup) -> list[str]:
    """The ports of VLAN `other` on hosts other than `port`'s (same-host ones can't leak)."""
    return [p for p in other.ports if Port.parse(p).host != Port.parse(port).host]


def _isolation_step(group: VlanGroup, other: VlanGroup) -> str | None:
    """None: `other` has no port away from the sender's host, so no step."""
    if not _foreign(group.ports[0], other):
        return None
    return (f"VLAN {group.id}: a broadcast from {group.ports[0]} reaches "
            f"{', '.join(group.ports[1:])} and no port of VLAN {other.id}")


def _isolation(ctx: Context, group: VlanGroup, others: list[VlanGroup]) -> None:
    """A broadcast in this VLAN reaches its members; a barrier in each other VLAN, sent
    down the same trunk behind it, proves it had its chance to leak there."""
    src = group.ports[0]
    mac = ctx.topo.mac(src)
    for other in others:
        name = _isolation_step(group, other)
        if name is None:
            continue
        among = [*group.ports[1:], *_foreign(src, other)]
        barrier = Barrier(ethernet(mac, "ff:ff:ff:ff:ff:ff", vlan=other.id), parent_of(ctx, src))
        ctx.expect(name, ethernet(mac, "ff:ff:ff:ff:ff:ff"), src,
                   at_exactly(group.ports[1:], among=among), barrier=barrier, timeout=_TIMEOUT)


def _ping_step(ctx: Context, group: VlanGroup, member: str) -> str | None:
    """None: `member` or the sender has no IPv4 address, so no ping."""
    src_ip, dst_ip = ipv4_of(ctx.topo, member), ipv4_of(ctx.topo, group.ports[0])
    if not (src_ip and dst_ip):
        return None
    return f"VLAN {group.id}: {member} pings {group.ports[0]} ({dst_ip}), answered"


def _own_vlan_only(ctx: Context, group: VlanGroup, others: list[VlanGroup]) -> None:
    """Each member but the sender is answered in its VLAN and reaches no other VLAN."""
    answerer = group.ports[0]
    for member in group.ports[1:]:
        name = _ping_step(ctx, group, member)
        src_ip, dst_ip = ipv4_of(ctx.topo, member), ipv4_of(ctx.topo, answerer)
        if name is not None and src_ip and dst_ip:
            request, reply = echo_and_reply(ctx.topo.mac(member), ctx.topo.mac(answerer),
                                            src_ip, dst_ip)
            ctx.expect(name, request, member, at(member), match=reply, timeout=_TIMEOUT)
        for other in others:
            _no_leak(ctx, member, other)


def _leak_step(member: str, other: VlanGroup) -> str | None:
    """None: `other` has no port away from `member`'s host, so no step."""
    targets = _foreign(member, other)
    if not targets:
        return None
    return f"{member} reaches nothing in VLAN {other.id} ({', '.join(targets)})"


def _no_leak(ctx: Context, member: str, other: VlanGroup) -> None:
    name = _leak_step(member, other)
    if name is None:
        return
    target = _foreign(member, other)[0]
    mac = ctx.topo.mac(member)
    src_ip = ipv4_of(ctx.topo, member) or "192.0.2.1"
    dst_ip = ipv4_of(ctx.topo, target) or "192.0.2.2"
    frame = udp(mac, ctx.topo.mac(target), src_ip, dst_ip)
    barrier = Barrier(ethernet(mac, "ff:ff:ff:ff:ff:ff", vlan=other.id), parent_of(ctx, member))
    ctx.expect(name, frame, member, nowhere(among=_foreign(member, other)), barrier=barrier,
               timeout=_TIMEOUT)


def _diagnose(ctx: Context, groups: list[VlanGroup], trunk: str) -> None:
    for group in groups:
        for port in group.ports:
            for fault in member_faults(ctx, port, group.id):
                ctx.diagnose(fault)
    link = ctx.link(trunk)
    if link is None or "UP" not in link["flags"]:
        ctx.diagnose(f"the trunk port {trunk} is {'missing' if link is None else 'down'}")
    if not ctx.diagnoses:
        failed = next(s for s in ctx.steps if s.status in _BAD)
        ctx.diagnose(f"every sub-interface has its VLAN id and is up, yet {failed.name} "
                     f"failed: {failed.detail} (see the evidence)")


def member_faults(ctx: Context, port: str, vid: int) -> list[str]:
    """What is wrong with sub-interface `port`, meant to be 802.1Q VLAN `vid`."""
    sub = Port.parse(port)
    host, ifname = sub.host, sub.ifname
    link = ctx.link(sub)
    if link is None:
        return [f"{port} does not exist"]
    info = link.get("linkinfo", {})
    if info.get("info_kind") != "vlan":
        return [f"{port} is not a VLAN sub-interface (it is a {info.get('info_kind', 'plain')} "
                "link): it sends and receives untagged frames"]
    data = info.get("info_data", {})
    faults = []
    if data.get("id") != vid:
        faults.append(f"{port} is VLAN {data.get('id')}, not {vid}: it tags and accepts "
                      f"VLAN {data.get('id')} (`ip link add link {link.get('link')} name "
                      f"{ifname} type vlan id {vid}`)")
    if data.get("protocol", "802.1Q") != "802.1Q":
        faults.append(f"{port} tags with {data.get('protocol')} (TPID "
                      f"{_TPID.get(data.get('protocol', ''), 0):#06x}), not 802.1Q (0x8100)")
    if "UP" not in link["flags"]:
        faults.append(f"{port} is down")
    parent = ctx.link(host, str(link.get("link", "")))
    if parent is not None and "UP" not in parent["flags"]:
        faults.append(f"{host}:{parent['ifname']}, the trunk under {port}, is down")
    return faults


_VLANS = "two or more ID=HOST:IFNAME,HOST:IFNAME, space-separated"

CHECK = Check(
    name="vlan",
    summary="802.1Q sub-interfaces tag and untag at the right ports; VLANs stay isolated",
    body=body,
    reference="vlan.yaml",
    requires=("veth", "bridge", "802.1Q vlan", "AF_PACKET"),
    params={
        "trunk": Param(
            "a port on the trunk where frames must be tagged, HOST:IFNAME",
            param.port(),
        ),
        "vlans": Param(
            "the VLANs, ID=HOST:IFNAME,HOST:IFNAME ... (the sender first), space-separated",
            param.checked_by(parse_groups, _VLANS),
        ),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
