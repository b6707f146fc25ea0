"""rtnetlink messages that create links of each kind, and the kernel feature each needs."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ...errors import SetupError, TopologyError
from .._model.spec import (
    BOND_MODES,
    Bond,
    Bridge,
    BridgeVlan,
    Interface,
    IPInterface,
    Macvlan,
    Route,
    Vlan,
    Vxlan,
)
from .netlink import RTM_DELLINK, NetlinkError, addr_msg, link_msg, route_msg

IFF_UP = 0x1
_IFA_F_NODAD = 0x02
_MACVLAN_MODE = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
_VLAN_PROTO = {"802.1Q": 0x8100, "802.1ad": 0x88A8}
_RT_SCOPE_LINK = 253
# A veth gets one transmit and one receive queue, asked for at creation. Without them
# the kernel allocates one per possible CPU, then cuts each end back to one real queue:
# an expedited RCU grace period per end (about a third of a veth pair's creation).
_ONE_QUEUE = {"IFLA_NUM_TX_QUEUES": 1, "IFLA_NUM_RX_QUEUES": 1}

# What to tell a user whose kernel refuses a kind (EOPNOTSUPP: "Unknown device type").
FEATURE = {
    "vlan": ("802.1Q VLAN devices", "load the 8021q module, or run in a full-kernel VM"),
    "bond": ("bonding", "load the bonding module, or run in a full-kernel VM"),
    "bridge": ("Linux bridges", "load the bridge module"),
    "bridge vlan_filtering": (
        "bridge vlan_filtering (CONFIG_BRIDGE_VLAN_FILTERING)",
        "run in a full-kernel VM, or use an OVS bridge (`ovs:`) with `tag`/`trunks` ports",
    ),
    "veth": ("veth pairs", "load the veth module"),
    "macvlan": ("macvlan devices", "load the macvlan module"),
    "vxlan": ("VXLAN devices", "load the vxlan module (CONFIG_VXLAN)"),
}


def _common(iface: Interface) -> dict[str, Any]:
    attrs: dict[str, Any] = {"IFLA_IFNAME": iface.name}
    if iface.mac:
        attrs["IFLA_ADDRESS"] = iface.mac
    if iface.mtu:
        attrs["IFLA_MTU"] = iface.mtu
    return attrs


def raise_up(msg: Any) -> Any:
    """Ask, in an RTM_NEWLINK message, for the link to be administratively up."""
    msg["flags"] = IFF_UP
    msg["change"] = IFF_UP
    return msg


def bridge_info(bridge: Bridge) -> list[tuple[str, int]]:
    """IFLA_INFO_DATA of a bridge. STP must be set at creation: later it answers EBUSY."""
    data = [("IFLA_BR_STP_STATE", int(bridge.stp))]
    if bridge.ageing is not None:
        data.append(("IFLA_BR_AGEING_TIME", round(bridge.ageing * 100)))  # centiseconds
    if bridge.forward_delay is not None:
        data.append(("IFLA_BR_FORWARD_DELAY", round(bridge.forward_delay * 100)))
    if bridge.vlan_filtering:
        data.append(("IFLA_BR_VLAN_FILTERING", 1))
    return data


RTM_SETLINK = 19
_BRIDGE_VLAN_INFO_PVID, _BRIDGE_VLAN_INFO_UNTAGGED = 0x2, 0x4
_DEFAULT_PVID = 1


def port_vlan_messages(index: int, vlans: tuple[BridgeVlan, ...]) -> list[tuple[int, Any]]:
    """(message type, message) pairs giving bridge port `index` its VLANs, as `bridge vlan
    add dev PORT vid ID [pvid] [untagged]` does: AF_BRIDGE link messages carrying
    IFLA_AF_SPEC/IFLA_BRIDGE_VLAN_INFO. Where another VLAN is the pvid, the default
    VLAN 1 (pvid, untagged) the kernel gave the port is removed first."""
    out = []
    if any(v.pvid and v.id != _DEFAULT_PVID for v in vlans) and _DEFAULT_PVID not in (
        v.id for v in vlans
    ):
        out.append((RTM_DELLINK, _vlan_info(index, _DEFAULT_PVID, 0)))
    for vlan in vlans:
        flags = (_BRIDGE_VLAN_INFO_PVID if vlan.pvid else 0) | (
            _BRIDGE_VLAN_INFO_UNTAGGED if vlan.untagged else 0
        )
        out.append((RTM_SETLINK, _vlan_info(index, vlan.id, flags)))
    return out


def _vlan_info(index: int, vid: int, flags: int) -> Any:
    msg = link_msg(index)
    msg["family"] = socket.AF_BRIDGE
    msg["attrs"] = [
        ("IFLA_AF_SPEC", {"attrs": [("IFLA_BRIDGE_VLAN_INFO", {"flags": flags, "vid": vid})]})
    ]
    return msg


def create_message(
    iface: Interface,
    *,
    name: str,
    up: bool,
    parent_index: int | None = None,
    master_index: int | None = None,
    peer: tuple[Interface, str, int | None] | None = None,
    underlay_index: int | None = None,
    index: int = 0,
    peer_index: int = 0,
) -> tuple[str, Any]:
    """(kind name, RTM_NEWLINK message) creating `iface` under kernel name `name`.

    `peer` is for veths: (far Interface, its kernel name, its namespace fd or None for
    the same namespace). The peer cannot come up in the same request: the kernel answers
    ENOTCONN, the pair not being joined yet. `underlay_index`: a VXLAN's `dev`.
    `index`, `peer_index`: the ifindex to give the link and the veth's peer (0: the
    kernel picks one).
    """
    attrs = _common(iface)
    attrs["IFLA_IFNAME"] = name
    if master_index is not None:
        attrs["IFLA_MASTER"] = master_index
    if parent_index is not None:
        attrs["IFLA_LINK"] = parent_index
    if isinstance(iface.kind, Vxlan):
        kind_name, data = "vxlan", vxlan_info(iface.kind, underlay_index)
    else:
        kind_name, data = _kind_data(iface, peer, peer_index)
    if kind_name == "veth":
        attrs.update(_ONE_QUEUE)
    attrs["IFLA_LINKINFO"] = {
        "attrs": [("IFLA_INFO_KIND", kind_name), ("IFLA_INFO_DATA", {"attrs": data})]
    }
    msg = link_msg(index, **attrs)
    return kind_name, raise_up(msg) if up else msg


def _kind_data(
    iface: Interface, peer: tuple[Interface, str, int | None] | None, peer_index: int = 0
) -> tuple[str, list[tuple[str, Any]]]:
    """The rtnetlink kind name and its IFLA_INFO_DATA attributes."""
    kind = iface.kind
    if isinstance(kind, Bridge):
        return "bridge", bridge_info(kind)
    if isinstance(kind, Macvlan):
        return "macvlan", [("IFLA_MACVLAN_MODE", _MACVLAN_MODE[kind.mode])]
    if isinstance(kind, Vlan):
        return "vlan", [
            ("IFLA_VLAN_ID", kind.id),
            ("IFLA_VLAN_PROTOCOL", _VLAN_PROTO[kind.protocol]),
        ]
    if isinstance(kind, Bond):
        data = [("IFLA_BOND_MODE", BOND_MODES.index(kind.mode))]
        if kind.miimon is not None:
            data.append(("IFLA_BOND_MIIMON", kind.miimon))
        return "bond", data
    if peer is not None:
        return "veth", [("VETH_INFO_PEER", _peer_attrs(*peer, peer_index))]
    raise ValueError(f"no creation message for {iface!r}")


def vxlan_info(vxlan: Vxlan, underlay_index: int | None) -> list[tuple[str, Any]]:
    """IFLA_INFO_DATA of a VXLAN: a unicast remote travels as IFLA_VXLAN_GROUP."""
    data: list[tuple[str, Any]] = [
        ("IFLA_VXLAN_ID", vxlan.id),
        ("IFLA_VXLAN_PORT", vxlan.dstport),  # pyroute2 packs it big-endian
        ("IFLA_VXLAN_LEARNING", int(vxlan.learning)),
    ]
    if vxlan.remote is not None:
        data.append(("IFLA_VXLAN_GROUP", vxlan.remote))
    if vxlan.local is not None:
        data.append(("IFLA_VXLAN_LOCAL", vxlan.local))
    if underlay_index is not None:
        data.append(("IFLA_VXLAN_LINK", underlay_index))
    return data


def _peer_attrs(far: Interface, name: str, ns_fd: int | None, index: int) -> dict[str, Any]:
    attrs = list(_common(far).items())
    attrs[0] = ("IFLA_IFNAME", name)
    if ns_fd is not None:
        attrs.append(("IFLA_NET_NS_FD", ns_fd))
    attrs.extend(_ONE_QUEUE.items())
    return {"attrs": attrs, "index": index} if index else {"attrs": attrs}


def address_message(index: int, addr: IPInterface, *, dad: bool) -> Any:
    """RTM_NEWADDR for `addr`; IPv6 addresses skip DAD unless asked (no tentative state)."""
    ip = str(addr.ip)
    if addr.version == 4:
        attrs: list[tuple[str, Any]] = [("IFA_LOCAL", ip), ("IFA_ADDRESS", ip)]
        if addr.network.prefixlen < 31:
            attrs.append(("IFA_BROADCAST", str(addr.network.broadcast_address)))
        return addr_msg(index, socket.AF_INET, addr.network.prefixlen, attrs)
    attrs = [("IFA_LOCAL", ip), ("IFA_ADDRESS", ip)]
    if not dad:
        attrs.append(("IFA_FLAGS", _IFA_F_NODAD))
    msg = addr_msg(index, socket.AF_INET6, addr.network.prefixlen, attrs)
    if addr.ip.is_link_local:
        msg["scope"] = _RT_SCOPE_LINK
    return msg


def route_message(route: Route, oif: int | None) -> Any:
    """RTM_NEWROUTE (or DELROUTE, same body) for `route` in the main table."""
    family = socket.AF_INET if route.family == 4 else socket.AF_INET6
    attrs: list[tuple[str, Any]] = []
    dst_len = 0
    if route.to not in ("default", "default6"):
        net = ipaddress.ip_network(route.to, strict=False)
        dst_len = net.prefixlen
        attrs.append(("RTA_DST", str(net.network_address)))
    if route.via is not None:
        attrs.append(("RTA_GATEWAY", route.via))
    if oif is not None:
        attrs.append(("RTA_OIF", oif))
    if route.metric is not None:
        attrs.append(("RTA_PRIORITY", route.metric))
    scope = _RT_SCOPE_LINK if route.via is None else 0
    return route_msg(family, dst_len, scope, attrs)


@contextmanager
def netlink_errors(what: str, obj: str, kind: str | None = None) -> Iterator[None]:
    """NetlinkError → TopologyError (or SetupError when the kernel lacks the link type)."""
    try:
        yield
    except NetlinkError as exc:
        text = exc.args[1] if len(exc.args) > 1 else None  # the kernel's extended ack
        detail = os.strerror(exc.code)
        if text and text != detail:
            detail += f" ({text})"
        if exc.code == errno.EOPNOTSUPP and kind in FEATURE:
            feature, remedy = FEATURE[kind]
            raise SetupError(
                f"{what}: this kernel has no {feature} ({detail})", remedy=remedy
            ) from exc
        raise TopologyError(f"{what}: {detail}", errno=exc.code, obj=obj) from exc
