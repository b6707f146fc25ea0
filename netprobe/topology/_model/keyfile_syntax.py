"""GLib's key-file syntax, as NetworkManager's keyfiles use it: `[group]` lines, `key=value`
lines, `#` comments, `\\s \\n \\t \\r \\\\` escapes (`\\;` in lists), lists split on `;`.
Any other line is an error naming its file and line, as GLib refuses such a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..._inputfile import read_input
from ...errors import SpecError

_ESCAPES = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
_IGNORED_SUFFIXES = ("~", ".swp", ".swpx", ".bak", ".orig", ".rej", ".rpmnew", ".rpmsave",
                     ".tmp", ".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-tmp")  # fmt: skip


@dataclass(frozen=True)
class Value:
    """One `key=value` line: the raw value (escapes not yet resolved) and where it is."""

    raw: str
    file: str
    line: int

    def text(self) -> str:
        """The value as a string, escapes resolved."""
        return _unescape(self.raw, self, in_list=False)

    def items(self) -> list[str]:
        """The value as a list: split on `;` (a trailing one ends the list)."""
        parts, current, i = [], [], 0
        while i < len(self.raw):
            char = self.raw[i]
            if char == "\\" and i + 1 < len(self.raw):
                current.append(self.raw[i : i + 2])
                i += 2
                continue
            if char == ";":
                parts.append("".join(current))
                current = []
            else:
                current.append(char)
            i += 1
        if current:
            parts.append("".join(current))
        return [_unescape(p, self, in_list=True) for p in parts]

    def error(self, message: str) -> SpecError:
        """A SpecError naming this line."""
        return SpecError(message, file=self.file, line=self.line)


@dataclass
class KeyFile:
    """A key file's groups in order, each a key → its last value."""

    file: str
    groups: dict[str, dict[str, Value]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # group → line of its header

    def get(self, group: str, key: str) -> Value | None:
        """The value of `key` in `group` (None when absent)."""
        return self.groups.get(group, {}).get(key)


def parse_keyfile(path: str | os.PathLike[str]) -> KeyFile:
    """The key file at `path`. Raises SpecError naming the file and line of a bad line."""
    name = os.fspath(path)
    keyfile, group = KeyFile(name), None
    for number, raw in enumerate(read_input(name, "keyfile").splitlines(), 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            group = _group(line.rstrip(), name, number)
            keyfile.groups.setdefault(group, {})  # GLib merges a repeated group
            keyfile.lines.setdefault(group, number)
            continue
        key, equals, value = line.partition("=")
        key = key.rstrip()
        if not equals or not key or ("[" in key and not key.endswith("]")):
            raise SpecError(f"not a key=value line, [group] or # comment: {raw.strip()!r}",
                            file=name, line=number)
        if group is None:
            raise SpecError(f"key {key!r} comes before any [group]", file=name, line=number)
        if "[" not in key:  # key[locale]=… is a translation: not read
            keyfile.groups[group][key] = Value(value.lstrip(), name, number)
    return keyfile


def _group(line: str, file: str, number: int) -> str:
    if not line.endswith("]") or len(line) < 3 or any(c in line[1:-1] for c in "[]"):
        raise SpecError(f"malformed group header {line!r}", file=file, line=number)
    return line[1:-1]


def _unescape(raw: str, where: Value, *, in_list: bool) -> str:
    out, i = [], 0
    while i < len(raw):
        char = raw[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        escaped = raw[i + 1 : i + 2]
        if escaped in _ESCAPES:
            out.append(_ESCAPES[escaped])
        elif in_list and escaped in ";,":
            out.append(escaped)
        else:
            raise where.error(f"invalid escape sequence '\\{escaped}'" if escaped
                              else "value ends in a lone backslash")  # fmt: skip
        i += 2
    return "".join(out)


def is_ignored_name(name: str) -> bool:
    """Whether NetworkManager skips a file of this name in its keyfile directory."""
    return name.startswith(".") or name.endswith(_IGNORED_SUFFIXES)


def looks_like_keyfile(text: str) -> bool:
    """Whether the first line of `text` that is not a comment opens a [group]."""
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            return line.startswith("[") and line.endswith("]")
    return False
