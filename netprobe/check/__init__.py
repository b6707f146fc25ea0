"""Checks: named, composable units that build a topology, probe it and give a verdict."""

from __future__ import annotations

import os
from typing import Any

from ..errors import SpecError
from ..topology import Spec, Topology
from .base import Check, Context, reference_path
from .registry import GROUP, Registration, load_check, registered
from .result import Result, Status, Step

__all__ = [
    "GROUP",
    "Check",
    "Context",
    "Registration",
    "Result",
    "Status",
    "Step",
    "load_check",
    "reference_path",
    "registered",
    "run_check",
]


def run_check(
    name: str, topology: Topology | Spec | str | os.PathLike[str] | None = None, **params: Any
) -> Result:
    """Run the registered check `name` (on its reference topology unless one is given)."""
    check = load_check(name)
    if not isinstance(check, Check):
        raise SpecError(f"the entry point for check {name!r} is not a netprobe Check")
    return check.run(topology, **params)
