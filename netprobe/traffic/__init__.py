"""Traffic: crafting frames, sending them into ports, capturing what comes out, pcaps.

Nothing here imports scapy at import time; the crafting functions load it on first use.
"""

from __future__ import annotations

from .capture import Capture, Captured, CaptureStats, compile_filter
from .craft import (
    MAGIC,
    Template,
    arp,
    dhcp_discover,
    ethernet,
    find_nonce,
    from_scapy,
    icmp_echo,
    new_nonce,
    tcp,
    udp,
)
from .decode import Fields, decode, summary
from .pcap import read_pcap, write_pcap
from .port import Port, Ports, Sender, TapSide, parse_port, ports
from .tcpdump import TcpdumpCapture

__all__ = [
    "MAGIC",
    "Capture",
    "CaptureStats",
    "Captured",
    "Fields",
    "Port",
    "Ports",
    "Sender",
    "TapSide",
    "TcpdumpCapture",
    "Template",
    "arp",
    "compile_filter",
    "decode",
    "dhcp_discover",
    "ethernet",
    "find_nonce",
    "from_scapy",
    "icmp_echo",
    "new_nonce",
    "parse_port",
    "ports",
    "read_pcap",
    "summary",
    "tcp",
    "udp",
    "write_pcap",
]
