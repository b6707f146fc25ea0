"""sysctl.conf(5) / sysctl.d(5) files → (key, value, where), as systemd-sysctl and
`sysctl --system` read them: `key = value` lines, `#` and `;` comments, a leading `-` on a
key only hushes a failure to set it. Pure: it reads files, never /proc/sys.

A sysctl has two spellings, the dotted name sysctl(8) prints (net.ipv4.conf.eno1/10.forwarding:
a slash for a dot of an interface name) and its /proc/sys path
(net/ipv4/conf/eno1.10/forwarding); `sysctl_name` and `sysctl_path` are the one conversion."""

from __future__ import annotations

import os
import re

from ..._inputfile import read_input
from ...errors import SpecError

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
        key = sysctl_name(sysctl_path(key.removeprefix("-")))
        found.append((key, value.strip(), f"{name}:{number}"))
    return found


def sysctl_path(key: str) -> str:
    """A sysctl name as sysctl(8) and sysctl.d(5) take it → its /proc/sys path:
    net.ipv4.ip_forward → net/ipv4/ip_forward; a name whose first separator is a slash is
    a path already (`/proc/sys/` before it is dropped)."""
    key = key.strip().removeprefix("/proc/sys/")
    dot, slash = key.find("."), key.find("/")
    if slash != -1 and (dot == -1 or slash < dot):
        return key.strip("/")
    return key.translate(str.maketrans("./", "/."))


def sysctl_name(path: str) -> str:
    """A /proc/sys path as sysctl(8) prints it (net/ipv4/conf/eno1.10/forwarding →
    net.ipv4.conf.eno1/10.forwarding)."""
    return path.translate(str.maketrans("/.", "./"))


def looks_like_sysctl(text: str) -> bool:
    """Whether the first setting line of `text` is a `key = value` with a dotted key."""
    for raw in text.splitlines():
        line = raw.strip()
        if line and line[0] not in "#;":
            key, equals, _ = line.partition("=")
            key = key.strip()
            return bool(equals) and bool(_KEY.match(key)) and ("." in key or "/" in key)
    return False
