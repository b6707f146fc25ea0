"""Port VLANs of VLAN-filtering bridges, and Open vSwitch bridges, ports, VLANs and bonds:
loading, validation (each bad input names its file and line), and the netlink messages
that give a bridge port its VLANs (byte for byte what `bridge vlan add` sends)."""

from __future__ import annotations

import socket
import struct
import textwrap
from pathlib import Path

import pytest

import netprobe
from netprobe import BridgeVlan, Interface, OvsBond, OvsBridge, SpecError
from netprobe.topology._kernel.links import RTM_SETLINK, port_vlan_messages
from netprobe.topology._kernel.netlink import RTM_DELLINK
from netprobe.topology._kernel.ovs import vsctl_commands

MARK = "# <-"

FILTERING = """\
hosts:
  vm1:
    interfaces:
      eth0: {veth: sw:vm1}
  up:
    interfaces:
      eth0: {veth: sw:uplink}
  sw:
    interfaces:
      br0: {bridge: {vlan_filtering: true}}
      uplink: {master: br0, vlans: [{id: 10}, {id: 20}]}
      vm1: {master: br0, vlans: [{id: 10, pvid: true, untagged: true}]}
"""

OVS = """\
hosts:
  h1:
    interfaces:
      eth0: {veth: sw:p1}
      b1: {veth: sw:b1}
      b2: {veth: sw:b2}
  sw:
    interfaces:
      br0:
        ovs: {flows: ["priority=100,ip,nw_src=10.0.0.66,actions=drop", "priority=0,actions=NORMAL"]}
      p1: {master: br0, tag: 10}
      bond0: {ovs_bond: {mode: active-backup}, master: br0, trunks: [10, 20]}
      b1: {master: bond0}
      b2: {master: bond0}
"""


def load(text: str, tmp_path: Path) -> netprobe.Spec:
    path = tmp_path / "topo.yaml"
    path.write_text(textwrap.dedent(text))
    return netprobe.load(path)


def refused(text: str, tmp_path: Path, match: str) -> None:
    """Loading `text` fails with `match`, naming the file and the line marked `# <-`."""
    text = textwrap.dedent(text)
    line = next(n for n, t in enumerate(text.splitlines(), start=1) if MARK in t)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=match) as info:
        netprobe.load(path)
    assert (info.value.file, info.value.line) == (str(path), line), str(info.value)


# -- the agreed shape of port VLANs -----------------------------------------------------------


def test_port_vlans_load_as_bridge_vlans(tmp_path: Path) -> None:
    sw = load(FILTERING, tmp_path).host("sw")
    bridge = sw.interface("br0")
    assert bridge is not None and bridge.kind == netprobe.Bridge(vlan_filtering=True)
    uplink, vm1 = sw.interface("uplink"), sw.interface("vm1")
    assert uplink is not None and vm1 is not None
    assert uplink.vlans == (BridgeVlan(10), BridgeVlan(20))
    assert vm1.vlans == (BridgeVlan(id=10, pvid=True, untagged=True),)


def test_a_bare_number_is_a_tagged_vlan(tmp_path: Path) -> None:
    text = FILTERING.replace("vlans: [{id: 10}, {id: 20}]", "vlans: [10, {id: 20}]")
    uplink = load(text, tmp_path).host("sw").interface("uplink")
    assert uplink is not None and uplink.vlans == (BridgeVlan(10), BridgeVlan(20))


def test_python_constructors_take_the_loose_forms() -> None:
    port = Interface("vm1", master="br0", vlans=[10, {"id": 20, "pvid": True}])
    assert port.vlans == (BridgeVlan(10), BridgeVlan(20, pvid=True))
    assert Interface("p1", master="br0", trunks=[10, 20]).trunks == (10, 20)
    with pytest.raises(SpecError, match="vlans entry is"):
        Interface("vm1", vlans=[{"vid": 10}])
    with pytest.raises(SpecError, match=r"VLAN id 1\.\.4094"):
        BridgeVlan(4095)


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("vlans: [{id: 10}, {id: 20}]}", "vlans: [{id: 10}, {id: 4095}]}  # <-", "1..4094"),
        ("vlans: [{id: 10}, {id: 20}]}", "vlans: [{id: 0}]}  # <-", "1..4094"),
        ("vlans: [{id: 10}, {id: 20}]}", "vlans: [{id: 10, pvid: yes please}]}  # <-",
         "must be bool"),
        ("vlans: [{id: 10}, {id: 20}]}", "vlans: [{id: 10, tagged: true}]}  # <-",
         "unknown key 'tagged'"),
        ("vlans: [{id: 10}, {id: 20}]}", "vlans: [{pvid: true}]}  # <-", "needs `id`"),
        ("vlans: [{id: 10}, {id: 20}]}", "vlans: [{id: 10, pvid: true}, {id: 20, pvid: true}]}"
         "  # <-", "2 pvids"),
        ("vlans: [{id: 10}, {id: 20}]}", "vlans: [10, {id: 10}]}  # <-", "listed 2 times"),
        ("br0: {bridge: {vlan_filtering: true}}", "br0: {bridge: {}}",
         "does not filter VLANs"),
        ("vlans: [{id: 10}, {id: 20}]}", "vlans: 10}  # <-", "must be a list"),
    ],
)
def test_bad_port_vlans_are_refused_at_their_line(
    tmp_path: Path, old: str, new: str, match: str
) -> None:
    text = FILTERING.replace(old, new)
    if MARK not in text:  # the fault is the bridge's; the line blamed is the port's
        text = text.replace("uplink: {master", "uplink: {master", 1).replace(
            "[{id: 10}, {id: 20}]}", "[{id: 10}, {id: 20}]}  # <-")
    refused(text, tmp_path, match)


def test_vlans_on_a_port_without_a_bridge_are_refused(tmp_path: Path) -> None:
    text = FILTERING.replace("eth0: {veth: sw:vm1}", "eth0: {veth: sw:vm1, vlans: [10]}  # <-")
    refused(text, tmp_path, "`vlans` apply to bridge ports")


# -- Open vSwitch ---------------------------------------------------------------------------


def test_ovs_bridges_ports_and_bonds_load(tmp_path: Path) -> None:
    sw = load(OVS, tmp_path).host("sw")
    br0, p1, bond0 = (sw.interface(n) for n in ("br0", "p1", "bond0"))
    assert br0 is not None and p1 is not None and bond0 is not None
    assert br0.kind == OvsBridge(("priority=100,ip,nw_src=10.0.0.66,actions=drop",
                                  "priority=0,actions=NORMAL"))
    assert (p1.master, p1.tag, p1.trunks) == ("br0", 10, ())
    assert bond0.kind == OvsBond("active-backup")
    assert bond0.trunks == (10, 20)


def test_ovs_vsctl_makes_the_bridge_ports_and_bond_in_one_transaction(tmp_path: Path) -> None:
    args = vsctl_commands(load(OVS, tmp_path).host("sw"))
    text = " ".join(args)
    assert "-- add-br br0 -- set bridge br0 datapath_type=netdev" in text
    assert "-- add-port br0 p1 tag=10" in text
    assert ("-- add-bond br0 bond0 b1 b2 bond_mode=active-backup trunks=10,20 "
            "other_config:bond-primary=b1") in text


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("p1: {master: br0, tag: 10}", "p1: {master: br0, tag: 10, trunks: [10]}  # <-",
         "both `tag`"),
        ("p1: {master: br0, tag: 10}", "p1: {master: br0, tag: 5000}  # <-", "1..4094"),
        ("p1: {master: br0, tag: 10}", "p1: {master: br0, vlans: [10]}  # <-",
         "port of OVS bridge 'br0'"),
        ("b2: {master: bond0}", "b2: {master: br0}", "1 member"),
        ("b1: {master: bond0}", "b1: {master: bond0, tag: 10}  # <-", "not to its member"),
        ("mode: active-backup}", "mode: 802.3ad}", "ovs_bond mode must be one of"),
        ('"priority=0,actions=NORMAL"]}', '"priority=0"]}  # <-', "actions="),
        ("ovs: {flows:", "ovs: {table: 0, flows:", "unknown key 'table'"),
    ],
)
def test_bad_ovs_settings_are_refused_at_their_line(
    tmp_path: Path, old: str, new: str, match: str
) -> None:
    text = OVS.replace(old, new)
    assert text != OVS
    if MARK not in text:
        anchor = {"1 member": "bond0: {ovs_bond", "ovs_bond mode": "bond0: {ovs_bond",
                  "unknown key": "ovs: {table"}
        key = next(k for k in anchor if k in match)
        text = text.replace(anchor[key], anchor[key], 1)
        lines = text.splitlines()
        at = next(i for i, t in enumerate(lines) if anchor[key] in t)
        lines[at] += "  " + MARK
        text = "\n".join(lines) + "\n"
    refused(text, tmp_path, match)


def test_tag_on_a_linux_bridge_port_points_to_vlans(tmp_path: Path) -> None:
    text = FILTERING.replace("vm1: {master: br0, vlans: [{id: 10, pvid: true, untagged: true}]}",
                             "vm1: {master: br0, tag: 10}  # <-")
    refused(text, tmp_path, "ports of a Linux bridge list `vlans`")


def test_an_ovs_bridge_needs_a_namespace_netprobe_owns(tmp_path: Path) -> None:
    text = OVS.replace("  sw:\n    interfaces:\n      br0:",
                       "  sw:\n    adopt: somewhere\n    interfaces:\n      br0:  # <-")
    refused(text, tmp_path, "needs a namespace netprobe owns")


# -- the netlink messages of port VLANs ------------------------------------------------------


def _bytes(msg_type: int, msg: object) -> bytes:
    msg["header"]["type"] = msg_type  # type: ignore[index]
    msg["header"]["flags"] = 5  # type: ignore[index]  # NLM_F_REQUEST | NLM_F_ACK
    msg.encode()  # type: ignore[attr-defined]
    return bytes(msg.data)  # type: ignore[attr-defined]


def _iproute2(msg_type: int, index: int, flags: int, vid: int) -> bytes:
    """What `bridge vlan add|del dev PORT vid VID [pvid] [untagged]` sends (seen with
    strace): an AF_BRIDGE ifinfomsg, then IFLA_AF_SPEC { IFLA_BRIDGE_VLAN_INFO }."""
    body = struct.pack("=BxHiII", socket.AF_BRIDGE, 0, index, 0, 0)
    body += struct.pack("=HH", 12, 26) + struct.pack("=HHHH", 8, 2, flags, vid)
    return struct.pack("=IHHII", 16 + len(body), msg_type, 5, 0, 0) + body


def test_an_access_port_replaces_the_default_vlan() -> None:
    messages = port_vlan_messages(7, (BridgeVlan(10, pvid=True, untagged=True),))
    assert [t for t, _ in messages] == [RTM_DELLINK, RTM_SETLINK]
    assert _bytes(*messages[0]) == _iproute2(RTM_DELLINK, 7, 0, 1)
    assert _bytes(*messages[1]) == _iproute2(RTM_SETLINK, 7, 0x2 | 0x4, 10)


def test_a_trunk_keeps_the_default_vlan_and_adds_tagged_ones() -> None:
    messages = port_vlan_messages(3, (BridgeVlan(10), BridgeVlan(20)))
    assert [_bytes(*m) for m in messages] == [
        _iproute2(RTM_SETLINK, 3, 0, 10),
        _iproute2(RTM_SETLINK, 3, 0, 20),
    ]
