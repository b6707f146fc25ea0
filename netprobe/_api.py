"""The names `netprobe` offers, each written once: here, as the imports that provide them.

`netprobe/__init__.py` reads this list (without running it) to load each name on first
use, so that `import netprobe` stays light; type checkers read it as it is.
"""

from __future__ import annotations

from .bundle import run_check
from .check import Check, Result, Status
from .diagnose import Diagnosis, probe

# ruff: noqa: F401  (imported to be offered, not used here)
from .errors import (
    CheckFailed,
    NetprobeError,
    NotFound,
    SetupError,
    SpecError,
    TopologyError,
    TrafficError,
)
from .topology import (
    Bond,
    Bridge,
    BridgeVlan,
    CleanReport,
    DhcpServer,
    Firewall,
    Host,
    Interface,
    Macvlan,
    OvsBond,
    OvsBridge,
    OvsVxlan,
    Port,
    Route,
    RunResult,
    SdnController,
    Spec,
    Tap,
    Topology,
    Veth,
    Vlan,
    Vxlan,
    build,
    discover,
    load,
    loads,
    validate,
)
from .traffic import clean  # the topology layer's clean, and the trace instances too
