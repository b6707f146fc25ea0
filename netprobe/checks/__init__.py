"""The built-in checks under their former name: they live in `netprobe.library` now, and
``netprobe.checks.NAME`` is the same module as ``netprobe.library.NAME`` (so
``from netprobe.checks.nat import masquerade`` keeps working)."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

__all__: list[str] = []

_OLD = "netprobe.checks."
_MOVED = {  # modules of the filter check, now a package of its own
    "filter_net": "filter.net",
    "filter_observe": "filter.observe",
    "filter_policy": "filter.policy",
    "filter_trace": "filter.trace",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds netprobe.checks.X as the module netprobe.library.X."""

    _own: importlib.machinery.ModuleSpec | None = None

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_OLD):
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        tail = spec.name.removeprefix(_OLD)
        module = importlib.import_module("netprobe.library." + _MOVED.get(tail, tail))
        self._own = module.__spec__  # the import system puts the alias's in its place next
        return module

    def exec_module(self, module: ModuleType) -> None:
        """The module ran already, under its own name: give it back its own spec."""
        module.__spec__ = self._own


if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
    sys.meta_path.append(_Alias())
