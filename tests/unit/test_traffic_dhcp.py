"""DHCP client messages built from bytes, and servers' answers parsed from bytes:
captures/dhcp-dnsmasq-udhcpc.pcap is a real exchange between dnsmasq 2.90 and busybox
udhcpc 1.35 (made by captures/make_dhcp_capture.sh, which says what it holds)."""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import pytest

from netprobe.traffic import DhcpMessage, dhcp_client, find_nonce, parse_dhcp, read_pcap

PCAP = Path(__file__).resolve().parents[2] / "captures" / "dhcp-dnsmasq-udhcpc.pcap"
CLIENT, SERVER = "02:00:00:00:01:00", "02:00:00:00:00:01"


def _exchange() -> list[DhcpMessage]:
    found = [parse_dhcp(data) for _, data in read_pcap(PCAP)]
    return [m for m in found if m is not None]


def test_the_real_exchange_parses_in_order() -> None:
    kinds = [m.kind for m in _exchange()]
    # DISCOVER retransmitted while dnsmasq's ping check ran: two offers
    assert kinds == ["DISCOVER", "OFFER", "DISCOVER", "OFFER", "REQUEST", "ACK", "REQUEST",
                     "ACK", "RELEASE"]


def test_arp_frames_of_the_capture_are_not_dhcp() -> None:
    arps = [data for _, data in read_pcap(PCAP) if data[12:14] == b"\x08\x06"]
    assert arps and all(parse_dhcp(a) is None for a in arps)


def test_dnsmasqs_offer_carries_what_it_was_configured_with() -> None:
    offer = _exchange()[1]
    assert (offer.op, offer.chaddr, offer.eth_src, offer.eth_dst) == (2, CLIENT, SERVER, CLIENT)
    assert offer.yiaddr == "192.168.10.161" and offer.siaddr == "192.168.10.1"
    assert offer.server_id == "192.168.10.1"
    assert offer.router == ("192.168.10.1",) and offer.dns == ("192.168.10.1",)
    assert (offer.lease_time, offer.subnet_mask, offer.prefix) == (3600, "255.255.255.0", 24)
    assert offer.flags == 0 and offer.ip_dst == "192.168.10.161"  # unicast to the client
    assert offer.summary() == ("DHCPOFFER xid 0x617d5f5c 02:00:00:00:00:01 → 02:00:00:00:01:00 "
                               "yiaddr 192.168.10.161 server 192.168.10.1")


def test_udhcpcs_requests_selecting_and_renewing() -> None:
    found = _exchange()
    selecting, renewing = found[4], found[6]
    assert selecting.requested_ip == "192.168.10.161" and selecting.ciaddr == "0.0.0.0"
    assert selecting.server_id == "192.168.10.1" and selecting.ip_dst == "255.255.255.255"
    assert renewing.ciaddr == "192.168.10.161" and renewing.requested_ip is None
    assert (renewing.ip_src, renewing.ip_dst, renewing.eth_dst) == (
        "192.168.10.161", "192.168.10.1", SERVER)
    assert found[7].ciaddr == "192.168.10.161" and found[7].kind == "ACK"


def _valid_checksums(frame: bytes) -> None:
    ip = dpkt.ethernet.Ethernet(frame).data
    raw_ip = bytes(ip)
    assert dpkt.in_cksum(raw_ip[:20]) == 0
    udp = raw_ip[20:]
    pseudo = raw_ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
    assert dpkt.in_cksum(pseudo + udp) == 0


def test_a_crafted_discover_parses_back_with_a_nonce_in_sname() -> None:
    template = dhcp_client("DISCOVER", CLIENT, xid=0x1234, hostname="vm100")
    frame, nonce = template.probe()
    found = parse_dhcp(frame)
    assert found is not None and found.kind == "DISCOVER"
    assert (found.op, found.xid, found.flags, found.chaddr) == (1, 0x1234, 0, CLIENT)
    assert (found.eth_dst, found.ip_src, found.ip_dst) == (
        "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255")
    assert found.options[12] == b"vm100" and 55 in found.options
    assert find_nonce(frame) == nonce and frame.index(nonce) == template.nonce_at
    assert len(frame) == 14 + 20 + 8 + 300
    _valid_checksums(frame)


def test_every_probe_keeps_the_udp_checksum_right() -> None:
    template = dhcp_client("REQUEST", CLIENT, xid=7, requested="192.168.10.161",
                           server_id="192.168.10.1")
    for _ in range(20):
        _valid_checksums(template.probe()[0])


def test_a_renewing_request_is_unicast_from_the_lease() -> None:
    frame, _ = dhcp_client("REQUEST", CLIENT, xid=9, ciaddr="192.168.10.161",
                           src_ip="192.168.10.161", dst_ip="192.168.10.1",
                           dst_mac=SERVER).probe()
    found = parse_dhcp(frame)
    assert found is not None and found.kind == "REQUEST"
    assert (found.ciaddr, found.ip_src, found.ip_dst, found.eth_dst) == (
        "192.168.10.161", "192.168.10.161", "192.168.10.1", SERVER)
    assert found.requested_ip is None and found.server_id is None
    _valid_checksums(frame)


def test_a_release_names_the_server_and_asks_for_nothing() -> None:
    frame, _ = dhcp_client("RELEASE", CLIENT, xid=9, ciaddr="192.168.10.161",
                           server_id="192.168.10.1", src_ip="192.168.10.161",
                           dst_ip="192.168.10.1", dst_mac=SERVER).probe()
    found = parse_dhcp(frame)
    assert found is not None and found.kind == "RELEASE" and 55 not in found.options
    assert found.server_id == "192.168.10.1"


def test_the_broadcast_flag_when_asked() -> None:
    frame, _ = dhcp_client("DISCOVER", CLIENT, xid=1, broadcast=True).probe()
    found = parse_dhcp(frame)
    assert found is not None and found.flags == 0x8000


def test_a_server_message_is_not_a_client_message() -> None:
    with pytest.raises(ValueError, match="not a message a DHCP client sends"):
        dhcp_client("OFFER", CLIENT, xid=1)


def _as_nak(ack: bytes, text: bytes) -> bytes:
    """An ACK of the capture turned into a NAK with a message (option 56)."""
    cookie = ack.index(b"\x63\x82\x53\x63") + 4
    head = ack[:cookie]
    return head + bytes([53, 1, 6, 54, 4, 192, 168, 10, 1, 56, len(text)]) + text + b"\xff"


def test_a_nak_and_its_message() -> None:
    ack = next(data for _, data in read_pcap(PCAP)
               if (m := parse_dhcp(data)) is not None and m.kind == "ACK")
    found = parse_dhcp(_as_nak(ack, b"address not available"))
    assert found is not None and found.kind == "NAK"
    assert found.message == "address not available" and found.lease_time is None
    assert found.router == () and found.server_id == "192.168.10.1"


def test_vlan_tags_are_skipped_and_truncated_frames_refused() -> None:
    frame, _ = dhcp_client("DISCOVER", CLIENT, xid=3).probe()
    tagged = frame[:12] + b"\x81\x00\x00\x0a" + frame[12:]
    found = parse_dhcp(tagged)
    assert found is not None and found.xid == 3
    assert parse_dhcp(frame[:200]) is None
    assert parse_dhcp(frame[:14]) is None


def test_repeated_options_are_concatenated() -> None:
    frame, _ = dhcp_client("DISCOVER", CLIENT, xid=3, params=()).probe()
    cookie = frame.index(b"\x63\x82\x53\x63") + 4
    extra = bytes([6, 4, 10, 0, 0, 1, 0, 6, 4, 10, 0, 0, 2, 255])
    found = parse_dhcp(frame[:cookie] + bytes([53, 1, 2]) + extra)
    assert found is not None and found.dns == ("10.0.0.1", "10.0.0.2")
