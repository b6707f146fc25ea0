"""Where `netprobe check` writes: proven writable before any check runs, written after.

A file is probed by creating it (O_EXCL, then removed) or, when it exists, by opening it
to append (which changes nothing), because `access()` says yes to root for /proc/x. A
directory that does not exist yet is probed by making (and removing) a scratch directory
in its nearest existing ancestor. Nothing is left behind either way.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence

from ..check._result import Result
from ..errors import SpecError


def ensure_writable_file(path: str, option: str) -> None:
    """Raise SpecError unless `path` can be written (`option` names it: "--json")."""
    if os.path.isdir(path):
        raise SpecError(f"{option} {path}: is a directory")
    try:
        if os.path.lexists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | os.O_CLOEXEC))
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except (OSError, ValueError) as exc:  # ValueError: NUL in the path
        raise SpecError(f"{option} {path}: cannot write it: {_reason(exc)}") from None
    os.close(fd)
    os.unlink(path)


def ensure_writable_dir(path: str, option: str) -> None:
    """Raise SpecError unless directories can be made in `path` (made later if absent)."""
    ancestor = os.path.abspath(path)
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise SpecError(f"{option} {path}: {ancestor} is not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".netprobe-probe-", dir=ancestor))
    except (OSError, ValueError) as exc:
        raise SpecError(
            f"{option} {path}: cannot make directories in {ancestor}: {_reason(exc)}"
        ) from None


def write_results(
    results: Sequence[Result], json_path: str | None, junit_path: str | None
) -> list[str]:
    """Write the JSON and JUnit files asked for; what could not be written, one line each
    (one failing does not keep the other from being written)."""
    from ._document import results_document
    from ._junit import junit_xml

    renders: dict[str, Callable[[], str]] = {
        "--json": lambda: json.dumps(results_document(results), indent=2),
        "--junit": lambda: junit_xml(results),
    }
    problems = []
    for option, path in (("--json", json_path), ("--junit", junit_path)):
        if not path:
            continue
        try:
            with open(path, "w") as out:
                out.write(renders[option]())
        except (OSError, ValueError) as exc:
            problems.append(f"{option} {path}: cannot write it: {_reason(exc)}")
    return problems


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
