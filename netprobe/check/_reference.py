"""Where a check's reference topology lives: beside the check's own module (a third-party
package, a check in a file of its own), then in netprobe's own folders (the built-ins'
topologies, which any check may reuse by name)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import SpecError

_LIBRARY = Path(__file__).resolve().parents[1] / "library"  # the built-in checks
_REFERENCE_DIRS = (_LIBRARY, _LIBRARY / "filter")


def module_dir(body: Callable[..., Any]) -> Path | None:
    """The directory of the file that defines `body` (None when it has no file)."""
    target = inspect.unwrap(getattr(body, "func", body))  # a functools.partial's function
    try:
        return Path(inspect.getfile(target)).resolve().parent
    except (TypeError, OSError):
        return None


def candidates(name: str, beside: Path | None = None) -> list[Path]:
    """Every place `name` is looked for, in order."""
    if Path(name).is_absolute():
        return [Path(name)]
    own = [beside / name, beside / "topologies" / name] if beside is not None else []
    return [*own, *(directory / name for directory in _REFERENCE_DIRS)]


def reference_path(name: str, beside: Path | None = None) -> Path:
    """Where the reference topology `name` (e.g. "redblue.yaml") lives: beside the check
    (`beside`, or its topologies/ folder), else among netprobe's own."""
    places = candidates(name, beside)
    for path in places:
        if path.is_file():
            return path
    looked = ", ".join(str(p.parent) for p in places)
    raise SpecError(f"reference topology {name} not found (looked in {looked})")
