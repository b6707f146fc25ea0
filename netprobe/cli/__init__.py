"""The `netprobe` command. Thin: it parses, calls the library, and renders.

Exit codes: 0 success, 1 a check failed or was inconclusive, 2 bad input or environment.
A NetprobeError becomes one readable message; a bug in netprobe keeps its traceback.
Each command lives in a module of its own; importing them registers them.
"""

from __future__ import annotations

from . import _bundles, _check, _drift, _impair, _lab, _machine, _probe, _topo
from ._app import cli

__all__ = ["cli", "main"]
_COMMANDS = (_bundles, _check, _drift, _impair, _lab, _machine, _probe, _topo)


def main() -> None:
    """The `netprobe` command's entry point."""
    cli(prog_name="netprobe")
