"""vlan-bridge: a VLAN-aware Linux bridge (Proxmox's "VLAN aware"): access ports per VM,
a tagged trunk to the uplink.

For each VM on an access port: its untagged frames leave the trunk tagged with its VLAN;
frames tagged with its VLAN on the trunk reach it untagged; its broadcasts reach the
trunk and no VM of another VLAN; a VLAN the trunk does not carry reaches no VM. When
something fails, the bridge's VLAN table (`bridge vlan show`) is read back to name the
fault: vlan_filtering off, an access port with the wrong PVID or without "untagged", a
trunk that does not carry a VLAN or sends it untagged.
"""

from __future__ import annotations

import json
from typing import Any

from netprobe.check import Check, Context, Param, Port, Status, param, peer_port, require_bridge
from netprobe.errors import SpecError
from netprobe.expect import Barrier, Match, at, at_exactly, nowhere
from netprobe.traffic import ethernet, udp

__all__ = ["CHECK", "parse_access", "port_vlans", "run"]

_TIMEOUT = 3.0  # seconds for what must arrive (polled)
_Q = 0x8100
_BAD = (Status.FAIL, Status.INCONCLUSIVE)


def parse_access(text: str) -> list[tuple[int, str]]:
    """ "10=vm1:eth0 20=vm2:eth0" → [(10, "vm1:eth0"), (20, "vm2:eth0")]."""
    found = []
    for item in text.replace(",", " ").split():
        vid, sep, port = item.partition("=")
        if not sep or not vid.isdigit() or ":" not in port or not 1 <= int(vid) <= 4094:
            raise SpecError(f"expected access ports as VLAN=HOST:IFNAME, not {item!r}")
        found.append((int(vid), port))
    if len(found) < 2:
        raise SpecError("give at least two access ports, to test that their VLANs are isolated")
    return found


def body(ctx: Context, *, bridge: str = "pve:br0", trunk: str = "upstream:eth0",
         access: str = "10=vm1:eth0 20=vm2:eth0", absent: int = 30) -> None:
    """Probe each access port's VLAN through the bridge to the trunk and back."""
    ports = parse_access(access)
    require_bridge(ctx, bridge)
    ctx.plan(*(name for port in ports for name in _steps(port, ports, trunk, absent)))
    trunk_mac = ctx.topo.mac(trunk)
    for vid, vm in ports:
        out, back, *isolated, stray_step = _steps((vid, vm), ports, trunk, absent)
        vm_mac = ctx.topo.mac(vm)
        frame = udp(vm_mac, trunk_mac, "192.0.2.1", "192.0.2.2")
        ctx.expect(out, frame, vm, at(trunk), match=Match(rewrites={"vlan": ((_Q, vid),)}),
                   timeout=_TIMEOUT)
        tagged = udp(trunk_mac, vm_mac, "192.0.2.2", "192.0.2.1", vlan=vid)
        ctx.expect(back, tagged, trunk, at(vm), match=Match(rewrites={"vlan": ()}),
                   timeout=_TIMEOUT)
        for name, other in zip(isolated, [p for p in ports if p[0] != vid], strict=True):
            _isolated(ctx, name, (vid, vm), other, trunk)
        stray = ethernet(trunk_mac, "ff:ff:ff:ff:ff:ff", vlan=int(absent))
        ctx.expect(stray_step, stray, trunk, nowhere(among=[vm]), timeout=_TIMEOUT,
                   barrier=Barrier(ethernet(trunk_mac, "ff:ff:ff:ff:ff:ff", vlan=vid), trunk))
    if any(s.status in _BAD for s in ctx.steps):
        _diagnose(ctx, bridge, trunk, ports)


def _steps(mine: tuple[int, str], ports: list[tuple[int, str]], trunk: str,
           absent: int) -> list[str]:
    """The names of one access port's steps, in the order taken (for `ctx.plan`)."""
    vid, vm = mine
    return [f"VLAN {vid}: an untagged frame from {vm} leaves {trunk} tagged {vid}",
            f"VLAN {vid}: a frame tagged {vid} from {trunk} reaches {vm} untagged",
            *(f"VLAN {vid}: a broadcast from {vm} reaches {trunk} and not {other_vm} "
              f"(VLAN {other_vid})" for other_vid, other_vm in ports if other_vid != vid),
            f"VLAN {absent}, which the trunk does not carry, does not reach {vm}"]


def _isolated(ctx: Context, name: str, mine: tuple[int, str], other: tuple[int, str],
              trunk: str) -> None:
    """A broadcast from one VM reaches the trunk (tagged) and not the other VM; a frame
    tagged with the other VM's VLAN, sent behind it from the trunk, is the barrier."""
    (vid, vm), (other_vid, other_vm) = mine, other
    mac = ctx.topo.mac(vm)
    barrier = Barrier(ethernet(ctx.topo.mac(trunk), "ff:ff:ff:ff:ff:ff",
                               vlan=other_vid), trunk)
    ctx.expect(name, ethernet(mac, "ff:ff:ff:ff:ff:ff"), vm,
               at_exactly([trunk], among=[trunk, other_vm]), barrier=barrier,
               match=Match(rewrites={"vlan": ((_Q, vid),)}), timeout=_TIMEOUT)


def port_vlans(ctx: Context, host: str) -> dict[str, dict[int, set[str]]]:
    """`bridge vlan show` in `host`: port → {vid → flags ("PVID", "Egress Untagged")}."""
    shown = ctx.topo.run(host, ["bridge", "-j", "vlan", "show"])
    found: dict[str, dict[int, set[str]]] = {}
    for entry in json.loads(shown.stdout or "[]") if shown.ok else []:
        table = found.setdefault(entry["ifname"], {})
        for item in entry.get("vlans", []):
            last = item.get("vlanEnd", item["vlan"])
            for vid in range(item["vlan"], last + 1):
                table[vid] = set(item.get("flags", []))
    return found


def _diagnose(ctx: Context, bridge: str, trunk: str, ports: list[tuple[int, str]]) -> None:
    switch = Port.parse(bridge)
    host, name = switch.host, switch.ifname
    link: dict[str, Any] = ctx.link(switch) or {}
    if not link.get("linkinfo", {}).get("info_data", {}).get("vlan_filtering"):
        ctx.diagnose(f"{bridge} has vlan_filtering off: it ignores VLANs, passing frames "
                     f"as they are between every port (`ip link set {name} type bridge "
                     "vlan_filtering 1`)")
        return
    table = port_vlans(ctx, host)
    uplink = _bridge_side(ctx, trunk, host)
    for vid, vm in ports:
        port = _bridge_side(ctx, vm, host)
        for fault in _access_faults(host, port, vid, table.get(port, {})):
            ctx.diagnose(fault)
        carried = table.get(uplink, {})
        if vid not in carried:
            ctx.diagnose(f"{host}:{uplink}, the trunk, does not carry VLAN {vid} "
                         f"(`bridge vlan add dev {uplink} vid {vid}`)")
        elif "Egress Untagged" in carried[vid]:
            ctx.diagnose(f"{host}:{uplink}, the trunk, sends VLAN {vid} untagged: the uplink "
                         "cannot tell it from other VLANs")
    if not ctx.diagnoses:
        failed = next(s for s in ctx.steps if s.status in _BAD)
        ctx.diagnose(f"the bridge's VLAN table is as it should be, yet {failed.name} "
                     f"failed: {failed.detail}")


def _bridge_side(ctx: Context, port: str, host: str) -> str:
    peer = peer_port(ctx.topo, port)
    if peer is None or peer.host != host:
        raise SpecError(f"{port} is not a veth into the bridge's host {host}")
    return peer.ifname


def _access_faults(host: str, port: str, vid: int, vlans: dict[int, set[str]]) -> list[str]:
    where = f"{host}:{port}"
    pvid = next((v for v, flags in vlans.items() if "PVID" in flags), None)
    faults = []
    if pvid != vid:
        faults.append(f"{where}'s PVID is {pvid if pvid else 'unset'}, not {vid}: its "
                      f"untagged frames {'join VLAN ' + str(pvid) if pvid else 'are dropped'} "
                      f"(`bridge vlan add dev {port} vid {vid} pvid untagged`)")
    if vid in vlans and "Egress Untagged" not in vlans[vid]:
        faults.append(f"{where} sends VLAN {vid} out tagged (no 'untagged' flag): the VM "
                      "gets tagged frames it does not expect")
    if vid not in vlans:
        faults.append(f"{where} is not a member of VLAN {vid}")
    extra = sorted(v for v in vlans if v != vid)
    if extra:
        faults.append(f"{where}, an access port, is also in VLAN(s) "
                      f"{', '.join(map(str, extra))}")
    return faults


_ACCESS = "two or more VLAN=HOST:IFNAME, space-separated"

CHECK = Check(
    name="vlan-bridge",
    summary="a VLAN-aware bridge tags at the trunk, untags at access ports, isolates VLANs",
    body=body,
    reference="vlan-bridge.yaml",
    requires=("veth", "bridge", "bridge vlan_filtering", "AF_PACKET"),
    params={
        "bridge": Param("the VLAN-aware bridge, HOST:BRIDGE", param.port()),
        "trunk": Param(
            "the far end of the trunk port (sees tagged frames), HOST:IFNAME",
            param.port(),
        ),
        "access": Param(
            "VMs on access ports, VLAN=HOST:IFNAME ..., space-separated",
            param.checked_by(parse_access, _ACCESS),
        ),
        "absent": Param("a VLAN id the trunk does not carry (default 30)", param.integer(1, 4094)),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
