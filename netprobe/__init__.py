"""netprobe: prove what a Linux virtual network's data path does, with packet evidence.

The public names are loaded on first use, so that `import netprobe` (and with it the CLI
and the pytest plugin) starts fast and imports neither pyroute2 nor scapy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    CheckFailed,
    NetprobeError,
    NotFound,
    SetupError,
    SpecError,
    TopologyError,
    TrafficError,
)

if TYPE_CHECKING:
    from .bundle import run_check
    from .check import Check, Result, Status
    from .topology import (
        Bond,
        Bridge,
        BridgeVlan,
        CleanReport,
        Firewall,
        Host,
        Interface,
        Macvlan,
        OvsBond,
        OvsBridge,
        Route,
        RunResult,
        Spec,
        Tap,
        Topology,
        Veth,
        Vlan,
        build,
        clean,
        load,
        loads,
        validate,
    )


_LAZY = {
    name: "netprobe.topology"
    for name in (
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
        "build",
        "clean",
        "load",
        "loads",
        "validate",
    )
}
_LAZY.update({name: "netprobe.check" for name in ("Check", "Result", "Status")})
_LAZY["run_check"] = "netprobe.bundle"  # with bundle_dir=: a bug-report bundle of a failure

__all__ = [
    "Bond",
    "Bridge",
    "BridgeVlan",
    "Check",
    "CheckFailed",
    "CleanReport",
    "Firewall",
    "Host",
    "Interface",
    "Macvlan",
    "NetprobeError",
    "NotFound",
    "OvsBond",
    "OvsBridge",
    "Result",
    "Route",
    "RunResult",
    "SetupError",
    "Spec",
    "SpecError",
    "Status",
    "Tap",
    "Topology",
    "TopologyError",
    "TrafficError",
    "Veth",
    "Vlan",
    "__version__",
    "build",
    "clean",
    "load",
    "loads",
    "run_check",
    "validate",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'netprobe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
