"""pcap files, written and read with dpkt (scapy's rdpcap is ~18x slower and memory hungry).

Files are pcapng with the port's name as the interface name, so Wireshark and tcpdump
show where each frame was seen; classic pcap files are read too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import dpkt
from dpkt import pcapng

from .capture import Captured

__all__ = ["read_pcap", "write_pcap"]


def write_pcap(path: str | os.PathLike[str], port: str, frames: Iterable[Captured]) -> None:
    """Write the frames seen at `port` as pcapng, interface named after the port."""
    idb = pcapng.InterfaceDescriptionBlockLE(
        snaplen=65535,
        opts=[
            pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_IF_NAME, data=port.encode()),
            pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_ENDOFOPT),
        ],
    )
    with open(path, "wb") as out:
        writer = pcapng.Writer(out, snaplen=65535, idb=idb)
        for frame in frames:
            writer.writepkt(frame.data, ts=frame.time)


def read_pcap(path: str | os.PathLike[str]) -> Iterator[tuple[float, bytes]]:
    """(timestamp, frame) of every record in a pcap or pcapng file."""
    with open(path, "rb") as src:
        reader = dpkt.pcap.UniversalReader(src)
        for ts, data in reader:
            yield float(ts), bytes(data)
