"""The one registry of checks, shared by the CLI and pytest: an entry-point group.

Built-in checks register under "netprobe.checks" in netprobe's own pyproject.toml; a
third-party package adds checks by declaring entry points in the same group:

    [project.entry-points."netprobe.checks"]
    my-check = "my_package.my_module:check"

Listing reads only the metadata; a check's module is imported when it is loaded.

A check also runs straight from a file, no packaging needed: a name that is a path
("./mycheck.py", "lab/checks.py") names the checks that file defines (its `CHECK`, or
every Check in it; "FILE.py:NAME" one of them).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from ..errors import SpecError
from ._base import Check

GROUP = "netprobe.checks"
_FILE_MODULE = "netprobe_check_"  # modules imported from check files are named so


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


def load_check(name: str) -> Check:
    """Import and return the check registered as `name` (or defined in the file it names).
    SpecError for an unknown name (suggesting near ones) or an entry point that is not a
    Check; an exception of the check's module on import propagates as it is."""
    if is_file(name):
        return _from_file(name)
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            check = ep.load()
            if not isinstance(check, Check):
                raise SpecError(f"the entry point for check {name!r} is not a netprobe Check")
            return check
    known = list(registered())
    near = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise SpecError(f"unknown check {name!r}{hint} (netprobe list shows them)")


def is_file(name: str) -> bool:
    """Does `name` name a file of checks rather than a registered check?"""
    return "/" in name or name.endswith(".py") or ".py:" in name


def expand_names(names: Iterable[str]) -> list[str]:
    """Registered names as they are; each file becomes one absolute name per check in it."""
    out: list[str] = []
    for name in names:
        if not is_file(name):
            out.append(name)
            continue
        path, wanted = _split(name)
        found = file_checks(path)
        picked = [c for c in found if c.name == wanted] if wanted else found
        if wanted and not picked:
            _unknown_in_file(path, wanted, found)
        out += [f"{path.resolve()}:{c.name}" for c in picked]
    return out


def file_checks(path: str | Path) -> list[Check]:
    """The checks a Python file defines: its `CHECK`, or every Check at its top level."""
    module = _import_file(Path(path))
    main = getattr(module, "CHECK", None)
    if isinstance(main, Check):
        return [main]
    found = {id(v): v for v in vars(module).values() if isinstance(v, Check)}
    if not found:
        raise SpecError(f"{path} defines no netprobe Check (give it a module-level CHECK)")
    return list(found.values())


def _split(name: str) -> tuple[Path, str]:
    """"dir/f.py:NAME" → (dir/f.py, NAME); "dir/f.py" → (dir/f.py, "")."""
    path, sep, wanted = name.rpartition(":")
    if not sep or not path.endswith(".py"):
        path, wanted = name, ""
    return Path(path), wanted


def _from_file(name: str) -> Check:
    path, wanted = _split(name)
    found = file_checks(path)
    if not wanted and len(found) == 1:
        return found[0]
    picked = [c for c in found if c.name == wanted]
    if not picked:
        _unknown_in_file(path, wanted, found)
    return picked[0]


def _unknown_in_file(path: Path, wanted: str, found: list[Check]) -> None:
    names = ", ".join(c.name for c in found)
    what = f"no check {wanted!r}" if wanted else "more than one check"
    raise SpecError(f"{path} defines {what}: it has {names} (name one: {path}:NAME)")


def source_file(check: Check) -> Path | None:
    """The file a check was loaded from (`netprobe check ./mycheck.py`), or None for a
    registered one: its bundle carries the file, so that replay can run it again."""
    module = sys.modules.get(getattr(check.body, "__module__", ""))
    if module is None or not module.__name__.startswith(_FILE_MODULE):
        return None
    return Path(module.__file__) if module.__file__ else None


def _import_file(path: Path) -> ModuleType:
    """Import the file once per process, under a name its path decides."""
    if not path.is_file():
        raise SpecError(f"no check file {path}")
    resolved = path.resolve()
    name = _FILE_MODULE + hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise SpecError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SpecError(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
    return module
