"""netprobe: prove what a Linux virtual network's data path does, with packet evidence.

Import nothing heavy here: the CLI and the pytest plugin load this module at start-up.
"""

from __future__ import annotations

from .errors import (
    CheckFailed,
    NetprobeError,
    SetupError,
    SpecError,
    TopologyError,
    TrafficError,
)
from .topology import (
    Bond,
    Bridge,
    CleanReport,
    Firewall,
    Host,
    Interface,
    Macvlan,
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

__version__ = "0.1.0"

__all__ = [
    "Bond",
    "Bridge",
    "CheckFailed",
    "CleanReport",
    "Firewall",
    "Host",
    "Interface",
    "Macvlan",
    "NetprobeError",
    "Route",
    "RunResult",
    "SetupError",
    "Spec",
    "SpecError",
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
    "validate",
]
