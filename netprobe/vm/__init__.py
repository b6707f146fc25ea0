"""A full kernel on demand: run commands, and checks, inside a virtme-ng guest.

Some kernels lack what a check needs (802.1Q VLAN devices, bonding, VLAN-aware bridges).
`boot` runs one command in a guest booted from a stock kernel; `guest` runs many checks
in one boot and brings their Results, pcaps and bundles back.
"""

from __future__ import annotations

from ._boot import GuestRun, find_kernel, kvm_usable, run_in_vm, vng_command
from ._guest import Case, GuestChecks, result_from_dict, run_checks_in_vm, run_named_checks

__all__ = [
    "Case",
    "GuestChecks",
    "GuestRun",
    "find_kernel",
    "kvm_usable",
    "result_from_dict",
    "run_checks_in_vm",
    "run_in_vm",
    "run_named_checks",
    "vng_command",
]
