"""The one registry of checks, shared by the CLI and pytest: an entry-point group.

Built-in checks register under "netprobe.checks" in netprobe's own pyproject.toml; a
third-party package adds checks by declaring entry points in the same group:

    [project.entry-points."netprobe.checks"]
    my-check = "my_package.my_module:check"

Listing reads only the metadata; a check's module is imported when it is loaded.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib.metadata import entry_points

from ..errors import SpecError

__all__ = ["GROUP", "Registration", "load_check", "registered"]

GROUP = "netprobe.checks"


@dataclass(frozen=True)
class Registration:
    """A check as declared: its CLI name, "module:attribute", and the declaring package."""

    name: str
    target: str
    package: str | None


def registered() -> dict[str, Registration]:
    """Every declared check by name, without importing any of them."""
    found: dict[str, Registration] = {}
    for ep in entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        found.setdefault(ep.name, Registration(ep.name, ep.value, dist.name if dist else None))
    return dict(sorted(found.items()))


def load_check(name: str) -> object:
    """Import and return the check registered as `name`; unknown names suggest near ones."""
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            return ep.load()
    known = list(registered())
    near = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise SpecError(f"unknown check {name!r}{hint} (netprobe list shows them)")
