"""DHCPv4 (RFC 2131, 2132) as a client sends it, built with struct, and what a server
answers, parsed from bytes: no scapy on the way, so a check plays a VM's DHCP client at
the cost of a few byte operations per message.

Each client message is a `Template` whose nonce rides in BOOTP's unused `sname` field, so
netprobe's expectations follow it across bridges like any probe. Servers clear `sname` in
their answers (dnsmasq does), so an answer is recognised by its `xid` and `chaddr`.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ._craft import SLOT, Template, checksum

# message types (option 53)
MESSAGE_TYPES = {
    1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK",
    7: "RELEASE", 8: "INFORM",
}  # fmt: skip
_TYPE_CODES = {name: code for code, name in MESSAGE_TYPES.items()}
_COOKIE = b"\x63\x82\x53\x63"
_BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
_ANY, _ALL = "0.0.0.0", "255.255.255.255"
_PARAMS = (1, 3, 6, 15, 28, 51, 54, 58, 59)  # what the client asks for (option 55)
SERVER_PORT, CLIENT_PORT = 67, 68
_BOOTP_LEN = 236  # op … file, before the magic cookie
_SNAME_AT = 44  # offset of `sname` in the BOOTP header


def _ip4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _options(kind: str, requested: str | None, server_id: str | None,
             hostname: str | None, params: Sequence[int]) -> bytes:
    out = bytes([53, 1, _TYPE_CODES[kind]])
    if requested is not None:
        out += bytes([50, 4]) + _ip4(requested)
    if server_id is not None:
        out += bytes([54, 4]) + _ip4(server_id)
    if hostname:
        name = hostname.encode()[:255]
        out += bytes([12, len(name)]) + name
    if params and kind in ("DISCOVER", "REQUEST", "INFORM"):
        out += bytes([55, len(params), *params])
    return out + b"\xff"


def dhcp_client(
    kind: str,
    mac: str,
    *,
    xid: int,
    ciaddr: str = _ANY,
    requested: str | None = None,
    server_id: str | None = None,
    src_ip: str = _ANY,
    dst_ip: str = _ALL,
    dst_mac: str = _BROADCAST_MAC,
    broadcast: bool = False,
    hostname: str | None = None,
    params: Sequence[int] = _PARAMS,
) -> Template:
    """A DHCP client message from `mac` ("DISCOVER", "REQUEST", "RELEASE", "DECLINE",
    "INFORM"), with `xid`; options 53 (its type), 50 (`requested`), 54 (`server_id`),
    12 (`hostname`) and 55 (`params`, for DISCOVER, REQUEST, INFORM). `broadcast` sets
    the flag asking the server to broadcast its answer; without it the answer comes by
    unicast to `mac` (the bridge must deliver it to that one port). The nonce sits in
    `sname`. Sent from `src_ip` port 68 to `dst_ip` port 67, in a frame to `dst_mac`."""
    kind = kind.upper()
    if kind not in _TYPE_CODES or kind in ("OFFER", "ACK", "NAK"):
        raise ValueError(f"{kind!r} is not a message a DHCP client sends")
    chaddr = _mac_bytes(mac)
    bootp = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid & 0xFFFFFFFF, 0,
        0x8000 if broadcast else 0, _ip4(ciaddr), _ip4(_ANY), _ip4(_ANY), _ip4(_ANY),
        chaddr, SLOT, b"",
    )  # fmt: skip
    payload = bootp + _COOKIE + _options(kind, requested, server_id, hostname, params)
    payload += bytes(max(0, 300 - len(payload)))  # BOOTP's least size (RFC 1542)
    eth = _mac_bytes(dst_mac) + chaddr + b"\x08\x00"
    udp_at = len(eth) + 20
    summary = f"DHCP{kind} xid 0x{xid:08x} from {mac}" + (
        f" ciaddr {ciaddr}" if ciaddr != _ANY else "")
    return Template(eth + _ipv4_udp(src_ip, dst_ip, payload), udp_at + 8 + _SNAME_AT,
                    udp_at + 6, summary, udp_checksum=True, csum_from=udp_at)


def _ipv4_udp(src_ip: str, dst_ip: str, payload: bytes) -> bytes:
    """An IPv4 header and a UDP one (client port to server port) before `payload`, each
    with its checksum."""
    udp_len = 8 + len(payload)
    pseudo = _ip4(src_ip) + _ip4(dst_ip) + struct.pack("!BBH", 0, 17, udp_len)
    head = struct.pack("!HHHH", CLIENT_PORT, SERVER_PORT, udp_len, 0)
    csum = checksum(pseudo + head + payload) or 0xFFFF
    udp = struct.pack("!HHHH", CLIENT_PORT, SERVER_PORT, udp_len, csum) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0x10, 20 + len(udp), 0, 0, 64, 17, 0,
                     _ip4(src_ip), _ip4(dst_ip))
    return ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:] + udp


@dataclass(frozen=True)
class DhcpMessage:
    """A DHCP message parsed from a frame: BOOTP's fixed fields, its options (code →
    raw value) and the ones a client acts on, decoded; with the frame's addresses."""

    op: int  # 1: from a client, 2: from a server
    xid: int
    flags: int
    ciaddr: str
    yiaddr: str
    siaddr: str
    giaddr: str
    chaddr: str
    options: dict[int, bytes]
    eth_src: str
    eth_dst: str
    ip_src: str
    ip_dst: str

    @property
    def kind(self) -> str | None:
        """DISCOVER, OFFER, REQUEST, ACK, NAK … (option 53); None for plain BOOTP."""
        raw = self.options.get(53)
        return MESSAGE_TYPES.get(raw[0], f"type {raw[0]}") if raw else None

    @property
    def server_id(self) -> str | None:
        """The server identifier (option 54)."""
        return _one_ip(self.options.get(54))

    @property
    def requested_ip(self) -> str | None:
        """The address a client asks for (option 50)."""
        return _one_ip(self.options.get(50))

    @property
    def subnet_mask(self) -> str | None:
        """Option 1."""
        return _one_ip(self.options.get(1))

    @property
    def prefix(self) -> int | None:
        """The subnet mask as a prefix length."""
        mask = self.subnet_mask
        return None if mask is None else ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen

    @property
    def router(self) -> tuple[str, ...]:
        """The routers (option 3), in the server's order."""
        return _ips(self.options.get(3))

    @property
    def dns(self) -> tuple[str, ...]:
        """The DNS servers (option 6), in the server's order."""
        return _ips(self.options.get(6))

    @property
    def lease_time(self) -> int | None:
        """The lease time in seconds (option 51)."""
        raw = self.options.get(51)
        return struct.unpack("!I", raw)[0] if raw is not None and len(raw) == 4 else None

    @property
    def message(self) -> str | None:
        """A server's text (option 56: why a NAK, say)."""
        raw = self.options.get(56)
        return raw.decode(errors="replace") if raw else None

    def summary(self) -> str:
        """One line for evidence."""
        text = f"DHCP{self.kind or 'BOOTP'} xid 0x{self.xid:08x} {self.eth_src} → {self.eth_dst}"
        if self.yiaddr != _ANY:
            text += f" yiaddr {self.yiaddr}"
        if self.ciaddr != _ANY:
            text += f" ciaddr {self.ciaddr}"
        if self.server_id:
            text += f" server {self.server_id}"
        return text


def _one_ip(raw: bytes | None) -> str | None:
    return str(ipaddress.IPv4Address(raw)) if raw is not None and len(raw) == 4 else None


def _ips(raw: bytes | None) -> tuple[str, ...]:
    if not raw or len(raw) % 4:
        return ()
    return tuple(str(ipaddress.IPv4Address(raw[i : i + 4])) for i in range(0, len(raw), 4))


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_dhcp(frame: bytes) -> DhcpMessage | None:
    """The DHCP message in an Ethernet frame (802.1Q tags skipped), or None when the frame
    is not IPv4 UDP between ports 67 and 68 carrying BOOTP with the magic cookie."""
    at, ethertype = 12, frame[12:14]
    while ethertype in (b"\x81\x00", b"\x88\xa8") and len(frame) >= at + 6:
        at += 4
        ethertype = frame[at : at + 2]
    at += 2
    if ethertype != b"\x08\x00" or len(frame) < at + 20 or frame[at] >> 4 != 4:
        return None
    ihl = (frame[at] & 0x0F) * 4
    if frame[at + 9] != 17 or struct.unpack_from("!H", frame, at + 6)[0] & 0x3FFF:
        return None  # not UDP, or a fragment
    ip_src, ip_dst = (str(ipaddress.IPv4Address(frame[at + o : at + o + 4])) for o in (12, 16))
    udp = at + ihl
    sport, dport = struct.unpack_from("!HH", frame, udp) if len(frame) >= udp + 8 else (0, 0)
    bootp = udp + 8
    if {sport, dport} - {SERVER_PORT, CLIENT_PORT} or len(frame) < bootp + _BOOTP_LEN + 4:
        return None
    if frame[bootp + _BOOTP_LEN : bootp + _BOOTP_LEN + 4] != _COOKIE:
        return None
    op, _, hlen, _, xid, _, flags = struct.unpack_from("!BBBBIHH", frame, bootp)
    ciaddr, yiaddr, siaddr, giaddr = (
        str(ipaddress.IPv4Address(frame[bootp + o : bootp + o + 4])) for o in (12, 16, 20, 24))
    chaddr = _mac(frame[bootp + 28 : bootp + 28 + min(hlen, 16)])
    return DhcpMessage(op, xid, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr,
                       _parse_options(frame, bootp), _mac(frame[6:12]), _mac(frame[0:6]),
                       ip_src, ip_dst)


def _parse_options(frame: bytes, bootp: int) -> dict[int, bytes]:
    """Options after the cookie; one repeated is concatenated (RFC 3396)."""
    out: dict[int, bytes] = {}
    at, end = bootp + _BOOTP_LEN + 4, len(frame)
    while at < end:
        code = frame[at]
        if code == 0:
            at += 1
            continue
        if code == 255 or at + 1 >= end:
            break
        size = frame[at + 1]
        out[code] = out.get(code, b"") + frame[at + 2 : at + 2 + size]
        at += 2 + size
    return out
