"""netlink: kernel acks parsed by hand-built bytes, and rtnetlink messages that encode.

No sockets to the kernel: NLMSG_ERROR messages are packed with struct exactly as the
kernel sends them with NETLINK_CAP_ACK and NETLINK_EXT_ACK set.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

import pytest
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from netprobe import Bond, Bridge, Interface, Macvlan, Tap, Veth, Vlan
from netprobe.topology._kernel import netlink
from netprobe.topology._kernel.links import address_message, create_message
from netprobe.topology._kernel.netlink import _raise_for_ack

NLMSG_ERROR = 2
RTM_NEWLINK = 16
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200
NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS = 1, 2
HEADER = "=IHHII"  # nlmsghdr: length, type, flags, sequence number, port id
IFA_F_NODAD = 0x02


def tlv(kind: int, payload: bytes) -> bytes:
    """A netlink attribute, padded to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def ack(error: int, *attrs: bytes, seq: int = 1) -> bytes:
    """An NLMSG_ERROR: header, error code, the echoed (capped) request header, then TLVs."""
    echoed = struct.pack(HEADER, 32, RTM_NEWLINK, 0x605, seq, 0)
    body = struct.pack("=i", error) + echoed + b"".join(attrs)
    flags = NLM_F_CAPPED | (NLM_F_ACK_TLVS if attrs else 0)
    return struct.pack(HEADER, 16 + len(body), NLMSG_ERROR, flags, seq, 4242) + body


def message(text: bytes) -> bytes:
    return tlv(NLMSGERR_ATTR_MSG, text + b"\0")


# -- _raise_for_ack -------------------------------------------------------------------------


def test_hand_built_ack_has_the_kernel_layout() -> None:
    data = ack(-17, message(b"File exists"))
    length, kind, _flags, seq, _pid = struct.unpack_from(HEADER, data)
    assert (length, kind, seq) == (len(data), NLMSG_ERROR, 1)
    assert struct.unpack_from("=i", data, 16) == (-17,)
    assert len(data) % 4 == 0


def test_success_ack_returns() -> None:
    _raise_for_ack(ack(0))  # no exception


def test_success_ack_with_attributes_returns() -> None:
    _raise_for_ack(ack(0, message(b"warning only")))  # no exception


def test_error_ack_raises_netlink_error_with_extended_ack_text() -> None:
    text = "Interface name already exists"
    with pytest.raises(NetlinkError) as caught:
        _raise_for_ack(ack(-errno.EEXIST, message(text.encode())))
    assert caught.value.code == 17
    assert caught.value.args == (17, text)


def test_error_ack_without_text_falls_back_to_strerror() -> None:
    with pytest.raises(NetlinkError) as caught:
        _raise_for_ack(ack(-errno.EOPNOTSUPP))
    assert caught.value.code == errno.EOPNOTSUPP
    assert caught.value.args[1] == "Operation not supported"


def test_text_is_found_after_other_attributes() -> None:
    offset = tlv(NLMSGERR_ATTR_OFFS, struct.pack("=I", 36))
    with pytest.raises(NetlinkError) as caught:
        _raise_for_ack(ack(-errno.EINVAL, offset, message(b"Unknown device type")))
    assert caught.value.args == (errno.EINVAL, "Unknown device type")


@pytest.mark.parametrize("text", [b"x", b"ab", b"abc", b"abcd", b"Invalid VLAN id"])
def test_text_of_any_length_is_unpadded(text: bytes) -> None:
    with pytest.raises(NetlinkError) as caught:
        _raise_for_ack(ack(-errno.ERANGE, message(text)))
    assert caught.value.args[1] == text.decode()


def test_undecodable_text_is_replaced_not_raised() -> None:
    with pytest.raises(NetlinkError) as caught:
        _raise_for_ack(ack(-errno.EINVAL, message(b"bad \xff byte")))
    assert caught.value.args[1] == "bad \ufffd byte"


def test_malformed_attribute_length_stops_parsing() -> None:
    broken = struct.pack("=HH", 2, NLMSGERR_ATTR_MSG) + b"junk"
    with pytest.raises(NetlinkError) as caught:
        _raise_for_ack(ack(-errno.ENODEV, broken))
    assert caught.value.args == (errno.ENODEV, "No such device")


class FakeSocket:
    """Records what is sent; answers recv() with prepared datagrams."""

    def __init__(self, *datagrams: bytes) -> None:
        self.sent: list[bytes] = []
        self.datagrams = list(datagrams)

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def recv(self, _size: int) -> bytes:
        return self.datagrams.pop(0)


def fake_rtnl(*datagrams: bytes) -> netlink.Rtnl:
    rtnl = netlink.Rtnl.__new__(netlink.Rtnl)
    rtnl.sock = FakeSocket(*datagrams)  # type: ignore[assignment]
    rtnl._seq = 0
    rtnl._queued, rtnl._tags = [], {}
    return rtnl


def test_queued_requests_go_in_one_write_and_a_failure_names_its_tag() -> None:
    # Three changes, the second refused: one write, the acks read together (one datagram
    # holding two of them), the error carrying the second's tag; the third still acked.
    rtnl = fake_rtnl(ack(0, seq=1) + ack(-errno.EEXIST, message(b"File exists"), seq=2),
                     ack(0, seq=3))  # fmt: skip
    for i, tag in enumerate(("lo up", "veth p1", "addr")):
        rtnl.queue(netlink.link_msg(i + 1, IFLA_MTU=1400), RTM_NEWLINK, tag=tag)
    assert rtnl.sock.sent == []  # type: ignore[attr-defined]
    with pytest.raises(netlink.BatchError) as caught:
        rtnl.flush()
    assert (caught.value.tag, caught.value.code) == ("veth p1", errno.EEXIST)
    assert caught.value.args[1] == "File exists"
    (sent,) = rtnl.sock.sent  # type: ignore[attr-defined]
    seqs, offset = [], 0
    while offset < len(sent):
        length, _kind, flags, seq, _pid = struct.unpack_from(HEADER, sent, offset)
        assert flags & 0x5 == 0x5  # NLM_F_REQUEST | NLM_F_ACK
        seqs.append(seq)
        offset += length
    assert seqs == [1, 2, 3]
    rtnl.flush()  # nothing left queued: no write
    assert len(rtnl.sock.sent) == 1  # type: ignore[attr-defined]


def test_a_request_sends_what_was_queued_first() -> None:
    rtnl = fake_rtnl(ack(0, seq=1), ack(0, seq=2))
    rtnl.queue(netlink.link_msg(1), RTM_NEWLINK, tag="first")
    rtnl.request(netlink.link_msg(2), RTM_NEWLINK)
    first, second = rtnl.sock.sent  # type: ignore[attr-defined]
    assert struct.unpack_from(HEADER, first)[3] == 1
    assert struct.unpack_from(HEADER, second)[3] == 2


def test_many_queued_requests_are_written_in_bounded_batches() -> None:
    count = netlink._BATCH * 2 + 5
    rtnl = fake_rtnl(*(ack(0, seq=i + 1) for i in range(count)))
    for i in range(count):
        rtnl.queue(netlink.link_msg(i + 1), RTM_NEWLINK, tag=i)
    rtnl.flush()
    assert len(rtnl.sock.sent) == 3  # type: ignore[attr-defined]


def test_request_skips_stale_acks_and_returns_on_its_own() -> None:
    rtnl = fake_rtnl(ack(-errno.EEXIST, seq=0) + ack(0, seq=1))
    rtnl.request(netlink.link_msg(3, IFLA_MTU=1400), RTM_NEWLINK)
    (sent,) = rtnl.sock.sent  # type: ignore[attr-defined]
    length, kind, flags, seq, _pid = struct.unpack_from(HEADER, sent)
    assert (length, kind, seq) == (len(sent), RTM_NEWLINK, 1)
    assert flags & 0x5 == 0x5  # NLM_F_REQUEST | NLM_F_ACK


def test_request_raises_the_kernels_error() -> None:
    rtnl = fake_rtnl(ack(-errno.EBUSY, message(b"Device or resource busy"), seq=1))
    with pytest.raises(NetlinkError) as caught:
        rtnl.request(netlink.link_msg(3, IFLA_MTU=1400), RTM_NEWLINK)
    assert caught.value.code == errno.EBUSY


# -- link creation messages -----------------------------------------------------------------


def decoded_link(msg: object) -> ifinfmsg:
    msg.encode()  # type: ignore[attr-defined]
    out = ifinfmsg(msg.data)  # type: ignore[attr-defined]
    out.decode()
    return out


def info_data(link: ifinfmsg, name: str) -> object:
    return link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", name)


def test_veth_message_encodes_with_its_peer() -> None:
    near = Interface("v0", Veth("b:v1"), mac="02:00:00:00:00:01", mtu=1400)
    far = (Interface("v1"), "np1234v1", 7)
    kind, msg = create_message(near, name="v0", up=True, peer=far)
    link = decoded_link(msg)
    assert kind == "veth"
    assert link.get_attr("IFLA_IFNAME") == "v0"
    assert link.get_attr("IFLA_MTU") == 1400
    assert link.get_attr("IFLA_ADDRESS") == "02:00:00:00:00:01"
    assert link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "veth"
    peer = info_data(link, "VETH_INFO_PEER")
    assert peer.get_attr("IFLA_IFNAME") == "np1234v1"  # type: ignore[attr-defined]
    assert peer.get_attr("IFLA_NET_NS_FD") == 7  # type: ignore[attr-defined]
    assert link["flags"] & 1 == 1  # IFF_UP
    for end in (link, peer):  # one queue each way, not one per possible CPU
        assert end.get_attr("IFLA_NUM_TX_QUEUES") == 1  # type: ignore[attr-defined]
        assert end.get_attr("IFLA_NUM_RX_QUEUES") == 1  # type: ignore[attr-defined]


def test_bridge_message_encodes_times_in_centiseconds() -> None:
    kind, msg = create_message(Interface("br0", Bridge(stp=True, ageing=300, forward_delay=2)),
                               name="br0", up=False)
    link = decoded_link(msg)
    assert kind == "bridge"
    assert info_data(link, "IFLA_BR_STP_STATE") == 1
    assert info_data(link, "IFLA_BR_AGEING_TIME") == 30000
    assert info_data(link, "IFLA_BR_FORWARD_DELAY") == 200
    assert link["flags"] & 1 == 0


def test_macvlan_message_encodes_mode_and_parent() -> None:
    kind, msg = create_message(Interface("mv0", Macvlan("eth0", "vepa")), name="mv0", up=True,
                               parent_index=2)
    link = decoded_link(msg)
    assert kind == "macvlan"
    assert link.get_attr("IFLA_LINK") == 2
    assert info_data(link, "IFLA_MACVLAN_MODE") == "vepa"


def test_vlan_message_encodes_id_and_protocol() -> None:
    kind, msg = create_message(Interface("eth0.7", Vlan("eth0", 7, "802.1ad")), name="eth0.7",
                               up=True, parent_index=3)
    link = decoded_link(msg)
    assert kind == "vlan"
    assert info_data(link, "IFLA_VLAN_ID") == 7
    assert info_data(link, "IFLA_VLAN_PROTOCOL") == 0x88A8


def test_bond_message_encodes_mode_and_master() -> None:
    kind, msg = create_message(Interface("bond0", Bond("802.3ad")), name="bond0", up=True,
                               master_index=9)
    link = decoded_link(msg)
    assert kind == "bond"
    assert info_data(link, "IFLA_BOND_MODE") == 4
    assert link.get_attr("IFLA_MASTER") == 9


@pytest.mark.parametrize("iface", [Interface("t0", Tap()), Interface("v0", Veth("b:v1"))])
def test_no_message_for_a_tap_or_a_veth_without_its_peer(iface: Interface) -> None:
    with pytest.raises(ValueError, match="no creation message"):
        create_message(iface, name=iface.name, up=True)


# -- address messages -----------------------------------------------------------------------


def decoded_address(cidr: str, *, dad: bool) -> ifaddrmsg:
    msg = address_message(4, ipaddress.ip_interface(cidr), dad=dad)
    msg.encode()
    out = ifaddrmsg(msg.data)
    out.decode()
    return out


def test_ipv6_address_skips_dad_by_default() -> None:
    addr = decoded_address("fd00::1/64", dad=False)
    assert (addr["family"], addr["prefixlen"], addr["index"]) == (socket.AF_INET6, 64, 4)
    assert addr.get_attr("IFA_FLAGS") == IFA_F_NODAD
    assert addr.get_attr("IFA_LOCAL") == "fd00::1"


def test_ipv6_address_with_dad_has_no_nodad_flag() -> None:
    assert decoded_address("fd00::1/64", dad=True).get_attr("IFA_FLAGS") is None


def test_ipv6_link_local_address_has_link_scope() -> None:
    addr = decoded_address("fe80::1/64", dad=False)
    assert addr["scope"] == 253
    assert addr.get_attr("IFA_FLAGS") == IFA_F_NODAD


@pytest.mark.parametrize(
    ("cidr", "broadcast"),
    [("10.0.0.1/24", "10.0.0.255"), ("10.0.0.1/30", "10.0.0.3"), ("10.0.0.1/31", None),
     ("10.0.0.1/32", None)],
)
def test_ipv4_address_has_broadcast_below_slash_31_and_never_nodad(
    cidr: str, broadcast: str | None
) -> None:
    addr = decoded_address(cidr, dad=False)
    assert addr["family"] == socket.AF_INET
    assert addr.get_attr("IFA_BROADCAST") == broadcast
    assert addr.get_attr("IFA_FLAGS") is None


# -- one translation of NetlinkError ------------------------------------------------------


def test_an_ovs_bridge_that_will_not_come_up_keeps_the_kernels_extended_ack() -> None:
    from types import SimpleNamespace

    from netprobe import Host, OvsBridge, TopologyError
    from netprobe.topology._kernel.ovs import _bridges_up

    class Refusing:
        def request(self, msg: object, kind: int) -> None:
            raise NetlinkError(errno.EINVAL, "Invalid MTU for this bridge")

    host = Host("sw", interfaces=(Interface("br0", OvsBridge()),))
    topo = SimpleNamespace(hosts={"sw": SimpleNamespace(nl=Refusing())})
    with pytest.raises(TopologyError) as caught:
        _bridges_up(topo, host)  # type: ignore[arg-type]
    assert str(caught.value).startswith("bringing OVS bridge sw:br0 up: Invalid argument")
    assert "(Invalid MTU for this bridge)" in str(caught.value)
    assert caught.value.errno == errno.EINVAL
