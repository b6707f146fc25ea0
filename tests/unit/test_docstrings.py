"""Every public name netprobe defines has a docstring.

Public means not starting with "_": module-level functions and classes, and the methods and
properties a public class defines itself. Modules are found by walking the package, so the test
follows modules that move or turn private; a name is checked in the module that defines it.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from types import ModuleType

import netprobe

_SKIPPED = ("netprobe.checks", "netprobe.vm.__main__")  # an alias of netprobe.library; a script


def _modules() -> Iterator[ModuleType]:
    for info in pkgutil.walk_packages(netprobe.__path__, "netprobe."):
        if any(info.name == s or info.name.startswith(s + ".") for s in _SKIPPED):
            continue
        yield importlib.import_module(info.name)


def _own_doc(obj: object) -> str:
    """The docstring `obj` was written with: not one a base class or a decorator made up."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__") or ""
        if dataclasses.is_dataclass(obj) and doc == _dataclass_doc(obj):
            return ""
        made_up = obj.__name__ + "("  # a namedtuple's "Name(a, b)"
        if issubclass(obj, tuple) and hasattr(obj, "_fields") and doc.startswith(made_up):
            return ""
        return doc.strip()
    return (getattr(obj, "__doc__", None) or "").strip()


def _dataclass_doc(cls: type) -> str:
    try:
        return cls.__name__ + str(inspect.signature(cls)).replace(" -> None", "")
    except (TypeError, ValueError):
        return cls.__name__


def _members(cls: type) -> Iterator[tuple[str, object]]:
    """The public methods and properties `cls` defines itself (enum members are values)."""
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for name, value in vars(cls).items():
        if name.startswith("_") or name in fields:
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        elif isinstance(value, property):
            value = value.fget
        elif isinstance(value, functools.cached_property):
            value = value.func
        if inspect.isfunction(value):  # not an enum's members, nor other class attributes
            yield name, value


def _undocumented() -> Iterator[str]:
    for module in _modules():
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if not _own_doc(obj):
                yield f"{module.__name__}.{name}"
            if inspect.isclass(obj):
                for member, fn in _members(obj):
                    if not _own_doc(fn):
                        yield f"{module.__name__}.{name}.{member}"


def test_the_walk_finds_the_package() -> None:
    names = {m.__name__ for m in _modules()}
    assert len(names) > 50
    assert not any(n.startswith("netprobe.checks.") for n in names)


def test_every_public_name_has_a_docstring() -> None:
    missing = sorted(set(_undocumented()))
    assert not missing, f"{len(missing)} public names without a docstring:\n" + "\n".join(missing)
