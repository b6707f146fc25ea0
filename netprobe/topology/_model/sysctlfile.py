"""sysctl.conf(5) / sysctl.d(5) files → (key, value, where), as systemd-sysctl and
`sysctl --system` read them: `key = value` lines, `#` and `;` comments, a leading `-` on a
key only hushes a failure to set it. Pure: it reads files, never /proc/sys."""

from __future__ import annotations

import os
import re

from ..._inputfile import read_input
from ...errors import SpecError
from .hookcommand import sysctl_key

_KEY = re.compile(r"^-?[A-Za-z0-9_*?\[\]./:@-]+$")  # globs as systemd-sysctl allows them


def read_sysctl_file(path: str | os.PathLike[str]) -> list[tuple[str, str, str]]:
    """(key in dotted form, value, FILE:LINE) of each setting of the file at `path`, in
    order. Raises SpecError naming the file and line of a malformed one."""
    name = os.fspath(path)
    found = []
    for number, raw in enumerate(read_input(name, "sysctl file").splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, equals, value = line.partition("=")
        key = key.strip()
        if not equals or not _KEY.match(key):
            raise SpecError(f"expected 'key = value', got {line!r}", file=name, line=number)
        found.append((sysctl_key(key.removeprefix("-")), value.strip(), f"{name}:{number}"))
    return found


def looks_like_sysctl(text: str) -> bool:
    """Whether the first setting line of `text` is a `key = value` with a dotted key."""
    for raw in text.splitlines():
        line = raw.strip()
        if line and line[0] not in "#;":
            key, equals, _ = line.partition("=")
            key = key.strip()
            return bool(equals) and bool(_KEY.match(key)) and ("." in key or "/" in key)
    return False
