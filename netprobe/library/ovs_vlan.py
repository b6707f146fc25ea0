"""ovs-vlan: an Open vSwitch bridge keeps its access VLANs apart and trunks them tagged.

From every access port, a broadcast floods to the other access ports of its own VLAN and
to no port of another VLAN (absence there is decided by a quiet period: no frame from one
VLAN can serve as a barrier in another, and the evidence says so), and it leaves the
trunk carrying its VLAN's 802.1Q tag, read from the captured frame. From the trunk, a
frame tagged with each VLAN comes out, untagged, at exactly that VLAN's access ports. On
failure the bridge's ports are read back to name the one whose tag or trunks are wrong.
"""

from __future__ import annotations

from netprobe.check import Check, Context, Param, Port, Status, param
from netprobe.errors import SpecError
from netprobe.expect import Match, at, at_exactly, nowhere
from netprobe.traffic import ethernet

from .ovs_switch import port_vlans, require_ovs_bridge, switch_port

__all__ = ["CHECK", "run"]

_TIMEOUT = 0.5  # seconds for what must arrive
_QUIET = 0.1  # seconds of silence that decide absence in another VLAN
_TPID = 0x8100
_BROADCAST = "ff:ff:ff:ff:ff:ff"


def body(ctx: Context, *, bridge: str = "switch:br0",
         access: str = "h1:eth0=10,h2:eth0=10,h3:eth0=20", trunk: str = "core:eth0") -> None:
    """`access`: host ports and the VLAN of each one's switch port; `trunk`: the host port
    behind the trunk (empty: no trunk steps)."""
    switch, _ = require_ovs_bridge(ctx.topo, bridge)
    vlans = _parse_access(access)
    for port in [*vlans, *([trunk] if trunk else [])]:
        switch_port(ctx.topo, port, switch)  # each must be a veth into the switch
    ports = list(vlans)
    ctx.plan(*(name for src, vid in vlans.items() for name in _access_steps(vlans, src, trunk)),
             *(_trunk_step(vlans, vid, trunk) for vid in sorted(set(vlans.values())) if trunk))
    for src, vid in vlans.items():
        _from_access(ctx, _access_steps(vlans, src, trunk), src, vid,
                     [p for p in ports if p != src and vlans[p] == vid],
                     [p for p in ports if p != src], trunk)
    if trunk:
        for vid in sorted(set(vlans.values())):
            wanted = [p for p, v in vlans.items() if v == vid]
            mac = ctx.topo.mac(trunk)
            ctx.expect(_trunk_step(vlans, vid, trunk), ethernet(mac, _BROADCAST, vlan=vid),
                       trunk, at_exactly(wanted, among=ports), match=Match(vlan=()),
                       timeout=_TIMEOUT, quiet=_QUIET)
    if any(s.status in (Status.FAIL, Status.INCONCLUSIVE) for s in ctx.steps):
        _diagnose(ctx, switch, vlans, trunk)


def _parse_access(text: str) -> dict[str, int]:
    """ "h1:eth0=10,h3:eth0=20" → {"h1:eth0": 10, "h3:eth0": 20}."""
    out: dict[str, int] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        port, sep, vid = item.partition("=")
        try:
            name = str(Port.parse(port))
        except SpecError:
            sep = ""
        if not sep or not vid.isdigit() or not 1 <= int(vid) <= 4094:
            raise SpecError(f"access ports are HOST:IFNAME=VLAN, comma-separated; not {item!r}")
        out[name] = int(vid)
    if len(out) < 2:
        raise SpecError("give at least two access ports, HOST:IFNAME=VLAN")
    return out


def _access_steps(vlans: dict[str, int], src: str, trunk: str) -> list[str]:
    """The names of the steps from access port `src`, in order (for `ctx.plan`)."""
    vid = vlans[src]
    reach = ", ".join(p for p, v in vlans.items() if p != src and v == vid)
    return [f"broadcast from {src} (VLAN {vid}) reaches {reach or 'no other access port'} "
            "and no other VLAN",
            *([f"broadcast from {src} leaves the trunk to {trunk} tagged VLAN {vid}"]
              if trunk else [])]


def _trunk_step(vlans: dict[str, int], vid: int, trunk: str) -> str:
    wanted = [p for p, v in vlans.items() if v == vid]
    return f"VLAN {vid} tagged from the trunk {trunk} reaches exactly {', '.join(wanted)}, untagged"


def _from_access(ctx: Context, names: list[str], src: str, vid: int, same: list[str],
                 others: list[str], trunk: str) -> None:
    frame = ethernet(ctx.topo.mac(src), _BROADCAST)
    where = at_exactly(same, among=others) if same else nowhere(among=others)
    ctx.expect(names[0], frame, src, where, timeout=_TIMEOUT, quiet=_QUIET)
    if trunk:
        ctx.expect(names[1], frame, src, at(trunk), match=Match(vlan=((_TPID, vid),)),
                   timeout=_TIMEOUT)


def _diagnose(ctx: Context, switch: str, vlans: dict[str, int], trunk: str) -> None:
    for port, vid in vlans.items():
        name = switch_port(ctx.topo, port, switch)
        tag, trunks = port_vlans(ctx, switch, name)
        if tag != vid:
            now = f"an access port of VLAN {tag}" if tag is not None else (
                f"a trunk of {_list(trunks)}" if trunks else "a trunk of every VLAN (no tag)")
            ctx.diagnose(f"{switch}:{name} (the port of {port}) is {now}, expected an access "
                         f"port of VLAN {vid}")
    if trunk:
        name = switch_port(ctx.topo, trunk, switch)
        tag, trunks = port_vlans(ctx, switch, name)
        wanted = sorted(set(vlans.values()))
        if tag is not None:
            ctx.diagnose(f"{switch}:{name} (the trunk to {trunk}) is an access port of VLAN "
                         f"{tag}, not a trunk of {_list(wanted)}")
        elif trunks and set(wanted) - set(trunks):
            ctx.diagnose(f"{switch}:{name} (the trunk to {trunk}) carries {_list(trunks)}, "
                         f"not {_list(sorted(set(wanted) - set(trunks)))}")
    if not ctx.diagnoses:
        ctx.diagnose(f"every port of {switch}'s bridge has the expected VLAN settings, yet "
                     "frames crossed VLANs or went missing: look at its flow table "
                     "(ovs-ofctl dump-flows) in the evidence of each step")


def _list(vids: object) -> str:
    items = list(vids) if isinstance(vids, (list, tuple)) else []
    return "VLANs " + ", ".join(map(str, items)) if items else "no VLAN"


_ACCESS = "two or more HOST:IFNAME=VLAN, comma-separated"

CHECK = Check(
    name="ovs-vlan",
    summary="an OVS bridge isolates its access VLANs and trunks them with the right tags",
    body=body,
    reference="ovs-vlan.yaml",
    requires=("veth", "AF_PACKET", "ovs-vsctl"),
    params={
        "bridge": Param("the OVS bridge, HOST:BRIDGE", param.port()),
        "access": Param(
            "host ports and their switch port's VLAN, HOST:IFNAME=VLAN,...",
            param.checked_by(_parse_access, _ACCESS),
        ),
        "trunk": Param(
            "the host port behind the trunk, HOST:IFNAME ('' for none)",
            param.optional(param.port()),
        ),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
