"""Topologies: specs, loading, building on real kernel objects, ownership and cleanup."""

from __future__ import annotations

from .build import build
from .cleanup import CleanReport, clean, down, leftovers
from .live import RunResult, Topology
from .load import as_spec, load, loads
from .spec import (
    Bond,
    Bridge,
    BridgeVlan,
    Firewall,
    Host,
    Interface,
    Macvlan,
    OvsBond,
    OvsBridge,
    Route,
    Spec,
    Tap,
    Veth,
    Vlan,
)
from .validate import validate

__all__ = [
    "Bond",
    "Bridge",
    "BridgeVlan",
    "CleanReport",
    "Firewall",
    "Host",
    "Interface",
    "Macvlan",
    "OvsBond",
    "OvsBridge",
    "Route",
    "RunResult",
    "Spec",
    "Tap",
    "Topology",
    "Veth",
    "Vlan",
    "as_spec",
    "build",
    "clean",
    "down",
    "leftovers",
    "load",
    "loads",
    "validate",
]
