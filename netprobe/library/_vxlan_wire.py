"""What the vxlan check reads: VXLAN headers in underlay frames, and the tunnel endpoints
(kernel VXLAN devices or OVS VXLAN ports) on the bridge a guest hangs from."""

from __future__ import annotations

import ipaddress
import json
import struct
from dataclasses import dataclass

from netprobe.check import Context, Port, find_nonce

OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
_ETH_IPV4, _ETH_ARP, _UDP = 0x0800, 0x0806, 17
_VXLAN_I_FLAG = 0x08  # "the VNI is valid" (RFC 7348)


@dataclass(frozen=True)
class Tunnelled:
    """One underlay frame carrying a VXLAN packet: its outer header and VNI."""

    src: str
    dst: str
    sport: int
    dport: int
    vni: int
    nonce: bytes | None  # the probe's nonce, found in the inner frame
    fragment: bool = False  # an outer IPv4 fragment (the VXLAN header may be in another)

    def describe(self) -> str:
        """ "192.168.100.1 → 192.168.100.2, UDP 4789, VNI 100" ."""
        return f"{self.src} → {self.dst}, UDP {self.dport}, VNI {self.vni}"


def parse(frame: bytes, dstports: set[int]) -> Tunnelled | None:
    """The VXLAN packet in an Ethernet frame (IPv4 outer header, UDP to one of `dstports`),
    or None. The VNI is read from the 8-byte VXLAN header after the UDP header."""
    if len(frame) < 14 + 20 + 8 + 8 or struct.unpack_from("!H", frame, 12)[0] != _ETH_IPV4:
        return None
    ihl = (frame[14] & 0x0F) * 4
    if frame[14 + 9] != _UDP:
        return None
    src, dst = (str(ipaddress.IPv4Address(frame[14 + 12 + 4 * i : 14 + 16 + 4 * i]))
                for i in range(2))
    (frag,) = struct.unpack_from("!H", frame, 14 + 6)
    at = 14 + ihl
    if frag & 0x1FFF:  # a later fragment: no UDP header here
        return None
    sport, dport = struct.unpack_from("!HH", frame, at)
    vx = at + 8
    if dport not in dstports or len(frame) < vx + 8 or not frame[vx] & _VXLAN_I_FLAG:
        return None
    vni = int.from_bytes(frame[vx + 4 : vx + 7], "big")
    return Tunnelled(src, dst, sport, dport, vni, find_nonce(frame[vx + 8 :]),
                     fragment=bool(frag & 0x2000))


def arp_request_target(frame: bytes) -> str | None:
    """The address an ARP request asks for (the underlay resolving a remote), or None."""
    if len(frame) < 42 or struct.unpack_from("!HH", frame, 12)[0] != _ETH_ARP:
        return None
    if struct.unpack_from("!H", frame, 20)[0] != 1:  # a request, not a reply
        return None
    return str(ipaddress.IPv4Address(frame[38:42]))


@dataclass(frozen=True)
class Endpoint:
    """A VXLAN tunnel endpoint: a kernel device or an OVS port, HOST:NAME."""

    where: str
    vni: int | None
    remote: str | None
    dstport: int
    mtu: int | None  # a kernel device's; OVS ports have none


def bridge_of(ctx: Context, guest: str) -> tuple[str, str] | None:
    """(hypervisor, bridge) the guest's veth hangs from: the kernel master of its far end,
    or the OVS bridge holding it as a port."""
    peer = ctx.topo.peer(guest)
    if peer is None:
        return None
    link = ctx.link(peer)
    if link is not None and link.get("master"):
        return peer.host, str(link["master"])
    found = ctx.topo.ovs(peer.host, "ovs-vsctl", "port-to-br", peer.ifname)
    return (peer.host, found.stdout.strip()) if found.ok and found.stdout.strip() else None


def endpoints(ctx: Context, guest: str) -> list[Endpoint]:
    """The VXLAN endpoints on the bridge `guest` hangs from."""
    place = bridge_of(ctx, guest)
    if place is None:
        return []
    host, bridge = place
    shown = ctx.topo.run(host, ["ip", "-d", "-j", "link", "show", "master",
                                ctx.topo.ifname(host, bridge)])
    found = []
    for link in json.loads(shown.stdout) if shown.ok and shown.stdout.strip() else []:
        info = link.get("linkinfo", {})
        if info.get("info_kind") == "vxlan":
            data = info.get("info_data", {})
            found.append(Endpoint(f"{host}:{link['ifname']}", data.get("id"),
                                  data.get("remote"), int(data.get("port", 4789)),
                                  link.get("mtu")))
    return found or _ovs_endpoints(ctx, host, bridge)


def _ovs_endpoints(ctx: Context, host: str, bridge: str) -> list[Endpoint]:
    ports = ctx.topo.ovs(host, "ovs-vsctl", "list-ifaces", bridge)
    found = []
    for name in ports.stdout.split() if ports.ok else []:
        shown = ctx.topo.ovs(host, "ovs-vsctl", "--format=json", "--columns=type,options",
                             "list", "interface", name)
        if not shown.ok:
            continue
        kind, options = json.loads(shown.stdout)["data"][0]
        if kind != "vxlan":
            continue
        opts = dict(options[1])
        key = opts.get("key", "0")
        found.append(Endpoint(f"{host}:{name}", int(key) if key.isdigit() else None,
                              opts.get("remote_ip"), int(opts.get("dst_port", 4789)), None))
    return found


def underlay_mtus(ctx: Context, underlay: Port) -> list[tuple[str, int]]:
    """(port, MTU) of both ends of the underlay link."""
    out = []
    for port in (underlay, ctx.topo.peer(underlay)):
        link = ctx.link(port) if port is not None else None
        if link is not None:
            out.append((str(port), int(link["mtu"])))
    return out
