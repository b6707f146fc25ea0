"""Checks: named, composable units that build a topology, probe it and give a verdict."""

from __future__ import annotations

import os
import traceback
from typing import Any

from ..errors import NetprobeError
from ..inputfile import read_input
from ..topology import Spec, Topology
from . import param
from .base import Check, Context
from .param import Param
from .reference import reference_path
from .registry import GROUP, Registration, expand_names, load_check, registered
from .result import Result, Status, Step

__all__ = [
    "GROUP",
    "Check",
    "Context",
    "Param",
    "Registration",
    "Result",
    "Status",
    "Step",
    "expand_names",
    "load_check",
    "param",
    "read_input",
    "reference_path",
    "registered",
    "run_check",
]


def run_check(
    name: str, topology: Topology | Spec | str | os.PathLike[str] | None = None, **params: Any
) -> Result:
    """Run the registered check `name` (on its reference topology unless one is given).
    A check whose module cannot even be imported is an ERROR result with the traceback."""
    try:
        check = load_check(name)
    except NetprobeError:
        raise
    except Exception as exc:  # a broken check's module: its own ERROR, not the run's end
        why = f"cannot load check {name}: {type(exc).__name__}: {exc}"
        return Result(name, Status.ERROR, why, traceback=traceback.format_exc())
    return check.run(topology, **params)
