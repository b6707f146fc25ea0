"""Topologies: specs, loading, building on real kernel objects, ownership and cleanup."""

from __future__ import annotations

from ._kernel.build import build
from ._kernel.cleanup import CleanReport, clean, down, leftovers
from ._kernel.discover import discover
from ._kernel.dnsmasq import ClientLease, DhcpLease, RunningDhcpServer
from ._kernel.live import RunResult, Topology
from ._kernel.state import LiveHost, LiveInterface, LiveRoute, Neighbour
from ._model.load import as_spec, load, loads
from ._model.observed import Observed, ObservedHost, ObservedNeighbour, ObservedRoute
from ._model.port import Port
from ._model.spec import (
    Bond,
    Bridge,
    BridgeVlan,
    DhcpServer,
    Firewall,
    Host,
    Interface,
    Macvlan,
    OvsBond,
    OvsBridge,
    OvsVxlan,
    Route,
    SdnController,
    Spec,
    Tap,
    Veth,
    Vlan,
    Vxlan,
)
from ._model.validate import validate

__all__ = [
    "Bond",
    "Bridge",
    "BridgeVlan",
    "CleanReport",
    "ClientLease",
    "DhcpLease",
    "DhcpServer",
    "Firewall",
    "Host",
    "Interface",
    "LiveHost",
    "LiveInterface",
    "LiveRoute",
    "Macvlan",
    "Neighbour",
    "Observed",
    "ObservedHost",
    "ObservedNeighbour",
    "ObservedRoute",
    "OvsBond",
    "OvsBridge",
    "OvsVxlan",
    "Port",
    "Route",
    "RunResult",
    "RunningDhcpServer",
    "SdnController",
    "Spec",
    "Tap",
    "Topology",
    "Veth",
    "Vlan",
    "Vxlan",
    "as_spec",
    "build",
    "clean",
    "discover",
    "down",
    "leftovers",
    "load",
    "loads",
    "validate",
]
