"""Debian's `/etc/network/interfaces` (ifupdown and ifupdown2, as Proxmox VE writes it) →
stanzas, with the file and line of every problem. Pure: it reads files, never the kernel.

It reads what `ifup -a` reads at boot: `source` (shell globs, relative to the directory of
the file that says it) and `source-directory` (the run-parts names in a directory) are
followed; `auto`, `allow-hotplug` and any `allow-CLASS` name interfaces; each `iface` stanza
owns the option lines up to the next stanza keyword. As in ifupdown, a line ending in a
backslash goes on with the next one, and a `#` starts a comment only at the start of a
line (`address 10.0.0.1 # lan` is a bad address, as ifup would find).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from ..._inputfile import read_input
from ...errors import SpecError
from .ifupdown_options import Option, Stanza, interpret, merge

# Every method ifupdown knows, per address family (interfaces(5)).
METHODS = {
    "inet": ("static", "dhcp", "manual", "loopback", "bootp", "tunnel", "ppp", "wvdial",
             "ipv4ll"),
    "inet6": ("static", "dhcp", "manual", "loopback", "auto", "v4tunnel", "6to4"),
}
_CLASS_KEYWORDS = {"auto": "auto", "no-auto-down": "no-auto-down", "no-scripts": "no-scripts"}
_RUN_PARTS = re.compile(r"^[a-zA-Z0-9_-]+$")  # the only names source-directory reads
_GLOB = re.compile(r"[*?[]")
_MAX_FILES = 1000  # far beyond any real configuration; a bound on glob-driven fan-out


@dataclass(frozen=True)
class Interfaces:
    """A whole configuration: its stanzas in reading order, the names each class lists
    (`auto`, `hotplug` for allow-hotplug, `ovs` for allow-ovs...) and every file read."""

    stanzas: tuple[Stanza, ...]
    classes: dict[str, tuple[str, ...]]
    files: tuple[str, ...]

    def stanza(self, name: str, family: str | None = "inet") -> Stanza | None:
        """The stanzas for `name` in `family` as one (`merge`: ifupdown and ifupdown2 both
        configure an interface by all its stanzas), or None."""
        found = [s for s in self.stanzas if s.name == name and s.family == family]
        return merge(found) if found else None


def parse_interfaces(path: str | os.PathLike[str]) -> list[Stanza]:
    """The `iface` stanzas of the interfaces file at `path` and of what it sources, in
    reading order, each marked auto/hotplug. Raises SpecError naming the file and line."""
    return list(read_interfaces(path).stanzas)


def read_interfaces(path: str | os.PathLike[str]) -> Interfaces:
    """The interfaces file at `path`, sources followed. Raises SpecError naming the file
    and line of any problem."""
    reader = _Reader()
    reader.read(os.fspath(path), site=None)
    classes = {name: tuple(names) for name, names in reader.classes.items()}
    auto, hotplug = set(classes.get("auto", ())), set(classes.get("hotplug", ()))
    stanzas = tuple(replace(s, auto=s.name in auto, hotplug=s.name in hotplug)
                    for s in reader.stanzas)  # fmt: skip
    return Interfaces(stanzas, classes, tuple(reader.files))


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(number of its first line, text) of each line, backslash continuations joined as
    ifupdown joins them: the backslash goes, the next line follows as it is."""
    start, parts = 0, list[str]()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        yield start, "".join(parts)
        parts = []
    if parts:
        yield start, "".join(parts)


@dataclass
class _Open:
    """The stanza being read: its head and its option lines so far."""

    name: str
    family: str | None
    method: str | None
    where: tuple[str, int]
    options: list[Option] = field(default_factory=list)


class _Reader:
    def __init__(self) -> None:
        self.stanzas: list[Stanza] = []
        self.classes: dict[str, list[str]] = {}
        self.files: list[str] = []
        self._stack: list[str] = []  # real paths of the files being read, outermost first

    def read(self, path: str, site: tuple[str, int] | None) -> None:
        """Read `path`, sourced at `site` (file, line), or the top file when None."""
        real = os.path.realpath(path)
        if real in self._stack:
            chain = " → ".join([*self._stack[self._stack.index(real):], real])
            raise _error(f"source loop: {chain}", site, path)
        if len(self.files) >= _MAX_FILES:
            raise _error(f"more than {_MAX_FILES} files sourced", site, path)
        try:
            text = read_input(path, "interfaces file")
        except SpecError as exc:
            if site is None:
                raise
            raise SpecError(f"source {path}: {exc.reason}", file=site[0], line=site[1]) from None
        self.files.append(path)
        self._stack.append(real)
        try:
            self._parse(path, text)
        finally:
            self._stack.pop()

    def _parse(self, path: str, text: str) -> None:
        current: _Open | None = None
        for number, line in _logical_lines(text):
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            keyword, rest = words[0], line.strip()[len(words[0]):].strip()
            if _is_keyword(keyword):
                self._close(current)
                current = self._keyword(keyword, rest, (path, number))
            elif current is None:
                raise SpecError(f"option {keyword!r} outside any iface stanza", file=path,
                                line=number)
            elif not rest:
                raise SpecError(f"option {keyword!r} has no value", file=path, line=number)
            else:
                current.options.append(Option(keyword.replace("_", "-"), rest, path, number))
        self._close(current)

    def _close(self, current: _Open | None) -> None:
        if current is not None and current.family != "mapping":
            self.stanzas.append(interpret(current.name, current.family, current.method,
                                          current.where, current.options))  # fmt: skip

    def _keyword(self, keyword: str, rest: str, where: tuple[str, int]) -> _Open | None:
        """Act on a stanza keyword line; the stanza it opens, if any."""
        if keyword == "iface":
            return _iface(rest, where)
        if keyword == "mapping":  # its script/map lines are read and set aside
            return _Open(rest, "mapping", None, where)
        if not rest:
            raise SpecError(f"{keyword} names nothing", file=where[0], line=where[1])
        if keyword == "source":
            for pattern in rest.split():
                self._source(pattern, where)
        elif keyword == "source-directory":
            self._source_directory(rest, where)
        else:
            names = self.classes.setdefault(_class_of(keyword), [])
            names.extend(rest.split())
        return None

    def _source(self, pattern: str, where: tuple[str, int]) -> None:
        full = os.path.join(os.path.dirname(where[0]), pattern)
        if not _GLOB.search(pattern):
            self.read(full, where)
            return
        for match in sorted(glob.glob(full)):  # no match: nothing, as ifup does
            if not os.path.isdir(match):
                self.read(match, where)

    def _source_directory(self, directory: str, where: tuple[str, int]) -> None:
        full = os.path.join(os.path.dirname(where[0]), directory)
        try:
            names = sorted(os.listdir(full))
        except OSError as exc:
            raise SpecError(f"source-directory {directory}: {exc.strerror or exc}",
                            file=where[0], line=where[1]) from None
        for name in names:
            path = os.path.join(full, name)
            if _RUN_PARTS.match(name) and not os.path.isdir(path):
                self.read(path, where)


def _is_keyword(word: str) -> bool:
    return word in {"iface", "mapping", "source", "source-directory", *_CLASS_KEYWORDS} or (
        word.startswith("allow-") and len(word) > len("allow-")
    )


def _class_of(keyword: str) -> str:
    """auto → auto, allow-auto → auto, allow-hotplug → hotplug, allow-ovs → ovs."""
    return _CLASS_KEYWORDS.get(keyword) or keyword.removeprefix("allow-")


def _iface(rest: str, where: tuple[str, int]) -> _Open:
    words = rest.split()
    if len(words) == 1:  # ifupdown2: a stanza with neither family nor method
        return _Open(words[0], None, None, where)
    if len(words) != 3:
        raise SpecError(f"expected 'iface NAME FAMILY METHOD', got 'iface {rest}'",
                        file=where[0], line=where[1])
    name, family, method = words
    if family not in METHODS:
        raise SpecError(f"iface {name}: unknown address family {family!r} (inet or inet6)",
                        file=where[0], line=where[1])
    if method not in METHODS[family]:
        raise SpecError(f"iface {name}: unknown {family} method {method!r} (one of "
                        f"{', '.join(METHODS[family])})", file=where[0], line=where[1])
    return _Open(name, family, method, where)


def _error(message: str, site: tuple[str, int] | None, path: str) -> SpecError:
    if site is None:
        return SpecError(message, file=path)
    return SpecError(message, file=site[0], line=site[1])
