"""A host taught a neighbour the way real traffic teaches it, without changing its tables
by hand: the neighbour itself asks for one of the host's addresses (an ARP request, or a
neighbour solicitation carrying its link-layer address), and Linux notes the asker as
STALE, ready to be used without resolving it first.
"""

from __future__ import annotations

import ipaddress
import time

from netprobe.topology import Topology
from netprobe.traffic import arp, ports

_USABLE = {"reachable", "stale", "delay", "probe", "permanent", "noarp"}
_WAIT = 1.0  # how long the host may take to note the asker (on veth: well under 1 ms)


def known(topo: Topology, host: str, dev: str, hop: str) -> bool:
    """Does `host` hold a usable neighbour entry for `hop` on `dev` now?"""
    address = ipaddress.ip_address(hop)
    return any(n.dev == dev and ipaddress.ip_address(n.ip) == address and n.mac
               and n.state.lower() in _USABLE for n in topo.live(host).neighbours)


def teach(topo: Topology, port: str, mac: str, hop: str, target: str, target_mac: str
          ) -> None:
    """From `port` (the neighbour's, whose address is `hop`, MAC `mac`), ask for
    `target` (the host's address on that link, MAC `target_mac`)."""
    if ipaddress.ip_address(hop).version == 4:
        data, _ = arp(mac, hop, target).probe()
    else:
        from scapy.layers import inet6
        from scapy.layers.l2 import Ether

        data = bytes(Ether(src=mac, dst=target_mac) / inet6.IPv6(src=hop, dst=target,
                                                                  hlim=255)
                     / inet6.ICMPv6ND_NS(tgt=target) / inet6.ICMPv6NDOptSrcLLAddr(lladdr=mac))
    ports(topo).sender(port).send(data)


def learned(topo: Topology, host: str, dev: str, hop: str) -> bool:
    """Wait (bounded) until `host` holds an entry for `hop` on `dev`; False if it never did."""
    deadline = time.monotonic() + _WAIT
    while not known(topo, host, dev, hop):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
