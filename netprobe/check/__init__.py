"""Checks: named, composable units that build a topology, probe it and give a verdict."""

from __future__ import annotations

import os
import traceback
from typing import Any

from .._inputfile import read_input
from ..errors import NetprobeError
from ..expect import (
    ROUTED,
    Barrier,
    Ending,
    HostOutcome,
    Match,
    Outcome,
    Verdict,
    Where,
    at,
    at_any,
    at_exactly,
    expect,
    expect_from_host,
    nowhere,
    probe,
)
from ..topology import Port, Spec, Topology
from ..traffic import (
    Template,
    arp,
    decode,
    dhcp_discover,
    ethernet,
    find_nonce,
    fragments,
    from_scapy,
    icmp_echo,
    ports,
    tcp,
    udp,
)
from . import _param as param
from ._base import Check, Context, Recorder
from ._param import Param
from ._ports import echo_and_reply, ipv4_of, parse_ports, peer_port, require_bridge
from ._reference import reference_path
from ._registry import GROUP, Registration, expand_names, load_check, registered
from ._result import Result, Status, Step

# What a check author needs, from this one place: the framework, and the expectations and
# packet builders it works with (the same objects as netprobe.expect's and .traffic's).
__all__ = [
    "GROUP",
    "ROUTED",
    "Barrier",
    "Check",
    "Context",
    "Ending",
    "HostOutcome",
    "Match",
    "Outcome",
    "Param",
    "Port",
    "Recorder",
    "Registration",
    "Result",
    "Status",
    "Step",
    "Template",
    "Verdict",
    "Where",
    "arp",
    "at",
    "at_any",
    "at_exactly",
    "decode",
    "dhcp_discover",
    "echo_and_reply",
    "ethernet",
    "expand_names",
    "expect",
    "expect_from_host",
    "find_nonce",
    "fragments",
    "from_scapy",
    "icmp_echo",
    "ipv4_of",
    "load_check",
    "nowhere",
    "param",
    "parse_ports",
    "peer_port",
    "ports",
    "probe",
    "read_input",
    "reference_path",
    "registered",
    "require_bridge",
    "run_check",
    "tcp",
    "udp",
]


def run_check(
    name: str, topology: Topology | Spec | str | os.PathLike[str] | None = None, **params: Any
) -> Result:
    """Run the registered check `name` (on its reference topology unless one is given);
    `params` are the check's, and `recorder=` as for Check.run (netprobe.run_check writes
    bug-report bundles). A check whose module cannot even be imported is an ERROR result
    with the traceback."""
    try:
        check = load_check(name)
    except NetprobeError:
        raise
    except Exception as exc:  # a broken check's module: its own ERROR, not the run's end
        why = f"cannot load check {name}: {type(exc).__name__}: {exc}"
        return Result(name, Status.ERROR, why, traceback=traceback.format_exc())
    return check.run(topology, **params)
