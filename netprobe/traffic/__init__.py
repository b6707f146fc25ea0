"""Traffic: crafting frames, sending them into ports, capturing what comes out, pcaps.

Nothing here imports scapy at import time; the crafting functions load it on first use.
"""

from __future__ import annotations

from ..topology import Port
from ._capture import Capture, Captured, CaptureStats, compile_filter
from ._clean import clean
from ._craft import (
    MAGIC,
    Template,
    arp,
    checksum,
    dhcp_discover,
    ethernet,
    find_nonce,
    from_scapy,
    icmp_echo,
    new_nonce,
    tcp,
    udp,
)
from ._decode import FIELDS, Fields, decode, summary
from ._dhcp import DhcpMessage, dhcp_client, parse_dhcp
from ._fragment import fragments
from ._hostcapture import HostCapture
from ._pcap import read_pcap, write_pcap
from ._port import Ports, Sender, TapSide, parse_port, ports
from ._stack import SocketReport, StackProbe
from ._tcpdump import TcpdumpCapture

__all__ = [
    "FIELDS",
    "MAGIC",
    "Capture",
    "CaptureStats",
    "Captured",
    "DhcpMessage",
    "Fields",
    "HostCapture",
    "Port",
    "Ports",
    "Sender",
    "SocketReport",
    "StackProbe",
    "TapSide",
    "TcpdumpCapture",
    "Template",
    "arp",
    "checksum",
    "clean",
    "compile_filter",
    "decode",
    "dhcp_client",
    "dhcp_discover",
    "ethernet",
    "find_nonce",
    "fragments",
    "from_scapy",
    "icmp_echo",
    "new_nonce",
    "parse_dhcp",
    "parse_port",
    "ports",
    "read_pcap",
    "summary",
    "tcp",
    "udp",
    "write_pcap",
]
