"""netprobe: prove what a Linux virtual network's data path does, with packet evidence.

The public names are those `netprobe/_api.py` imports, each loaded on first use, so that
`import netprobe` (and with it the CLI and the pytest plugin) starts fast and imports
neither pyroute2 nor scapy. `netprobe.run_check(..., bundle_dir=...)` leaves a
bug-report bundle of a failure.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

if TYPE_CHECKING:
    from ._api import *  # noqa: F403  (the names, for type checkers)


def _exports() -> dict[str, str]:
    """name → module that provides it, read from _api.py's imports."""
    tree = ast.parse((Path(__file__).parent / "_api.py").read_text())
    return {
        alias.asname or alias.name: f"netprobe.{node.module}"
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        for alias in node.names
    }


_LAZY = _exports()
__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'netprobe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
