"""pcap files, written and read with dpkt (scapy's rdpcap is ~18x slower and memory hungry).

Files are pcapng with the port's name as the interface name, so Wireshark and tcpdump
show where each frame was seen; classic pcap files are read too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import dpkt
from dpkt import pcapng

from ._capture import Captured


def _idb(port: str) -> pcapng.InterfaceDescriptionBlockLE:
    return pcapng.InterfaceDescriptionBlockLE(
        snaplen=65535,
        opts=[
            pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_IF_NAME, data=port.encode()),
            pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_ENDOFOPT),
        ],
    )


def write_pcap(path: str | os.PathLike[str], port: str, frames: Iterable[Captured]) -> None:
    """Write the frames seen at `port` as pcapng, interface named after the port."""
    with open(path, "wb") as out:
        writer = pcapng.Writer(out, snaplen=65535, idb=_idb(port))
        for frame in frames:
            writer.writepkt(frame.data, ts=frame.time)


def write_pcap_ports(path: str | os.PathLike[str], frames: list[Captured]) -> None:
    """Write frames of several ports into one pcapng: one interface per port, in order."""
    ports = list(dict.fromkeys(frame.port for frame in frames)) or ["none"]
    with open(path, "wb") as out:
        writer = pcapng.Writer(out, snaplen=65535, idb=[_idb(port) for port in ports])
        for frame in frames:
            usec = round(frame.time * 1e6)
            writer.writepkt(
                pcapng.EnhancedPacketBlockLE(
                    iface_id=ports.index(frame.port),
                    ts_high=usec >> 32,
                    ts_low=usec & 0xFFFFFFFF,
                    caplen=len(frame.data),
                    pkt_len=len(frame.data),
                    pkt_data=frame.data,
                )
            )


def read_pcap(path: str | os.PathLike[str]) -> Iterator[tuple[float, bytes]]:
    """(timestamp, frame) of every record in a pcap or pcapng file."""
    with open(path, "rb") as src:
        reader = dpkt.pcap.UniversalReader(src)
        for ts, data in reader:
            yield float(ts), bytes(data)
