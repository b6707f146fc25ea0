"""A box's persistent network configuration files, whichever wrote them → one
PersistentConfig: ifupdown's interfaces files, NetworkManager's keyfiles (one, or a
directory of them as /etc/NetworkManager/system-connections), sysctl files (/etc/sysctl.conf,
/etc/sysctl.d/*.conf, or such a directory). Pure: it reads files, never the kernel.

What the up-hooks set (routes, sysctls, firewall lines) is added after what the files say,
as at boot: systemd-sysctl runs before the interfaces come up.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..._inputfile import read_input
from ...errors import SpecError
from .hookcommand import with_hooks
from .ifupdown import read_interfaces
from .keyfile_syntax import is_ignored_name, looks_like_keyfile
from .nmkeyfile import read_keyfiles
from .persistent import (
    Command,
    PersistentConfig,
    PersistentInterface,
    PersistentRoute,
    from_ifupdown,
)
from .sysctlfile import looks_like_sysctl, read_sysctl_file

KINDS = ("interfaces", "keyfile", "sysctl")
_IFUPDOWN_WORDS = ("iface", "auto", "source", "source-directory", "mapping", "allow-")


@dataclass
class _Parts:
    ifupdown: list[PersistentConfig] = field(default_factory=list)
    keyfiles: list[str] = field(default_factory=list)
    sysctls: list[tuple[str, str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def read_config(paths: Sequence[str | os.PathLike[str]]) -> PersistentConfig:
    """The configuration the files and directories at `paths` make together, sysctl files
    applied in the order given. Where ifupdown and a NetworkManager profile both configure
    an interface, ifupdown's wins (NetworkManager leaves the interfaces it configures
    alone). Raises SpecError naming the file (and line) of any problem."""
    if not paths:
        raise SpecError("no configuration file given")
    parts = _Parts()
    for path in paths:
        _read(os.fspath(path), parts)
    return with_hooks(_merge(parts))


def kind_of(path: str | os.PathLike[str]) -> str:
    """What the file at `path` is, one of KINDS, by its name and then its content (a
    directory: the kind of the files in it). Raises SpecError when it is none of them."""
    name = os.fspath(path)
    if os.path.isdir(name):
        return _directory_kind(name)
    base, parent = os.path.basename(name), os.path.basename(os.path.dirname(name))
    if base.endswith(".nmconnection") or parent == "system-connections":
        return "keyfile"
    if base == "sysctl.conf" or parent == "sysctl.d":
        return "sysctl"
    if base == "interfaces" or parent == "interfaces.d":
        return "interfaces"
    return _content_kind(name, read_input(name, "configuration file"))


def _content_kind(name: str, text: str) -> str:
    if looks_like_keyfile(text):
        return "keyfile"
    first = next((ln.split()[0] for ln in text.splitlines()
                  if ln.strip() and not ln.lstrip().startswith("#")), None)  # fmt: skip
    if first is not None and first.startswith(_IFUPDOWN_WORDS):
        return "interfaces"
    if looks_like_sysctl(text):
        return "sysctl"
    raise SpecError("not an interfaces file, NetworkManager keyfile or sysctl file "
                    "(nothing in its name or first lines says which)", file=name)


def _directory_kind(name: str) -> str:
    base = os.path.basename(os.path.normpath(name))
    if base == "system-connections":
        return "keyfile"
    if base == "sysctl.d":
        return "sysctl"
    files = _files(name)
    if any(f.endswith(".nmconnection") for f in files):
        return "keyfile"
    if any(f.endswith(".conf") for f in files):
        return "sysctl"
    raise SpecError("a directory of neither NetworkManager keyfiles (*.nmconnection) nor "
                    "sysctl files (*.conf); for interfaces.d, give the interfaces file that "
                    "sources it", file=name)


def _files(directory: str) -> list[str]:
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise SpecError(f"cannot read directory: {exc.strerror or exc}", file=directory) from None
    return [os.path.join(directory, n) for n in names
            if not is_ignored_name(n) and os.path.isfile(os.path.join(directory, n))]


def _read(path: str, parts: _Parts) -> None:
    kind = kind_of(path)
    if os.path.isdir(path):
        files = _files(path)
        if kind == "sysctl":  # sysctl.d(5): only *.conf, in name order
            for file in (f for f in files if f.endswith(".conf")):
                parts.sysctls += read_sysctl_file(file)
                parts.files.append(file)
        else:  # keyfiles: *.nmconnection, and older names without it when they are keyfiles
            parts.keyfiles += [f for f in files if f.endswith(".nmconnection")
                               or looks_like_keyfile(read_input(f, "keyfile"))]  # fmt: skip
    elif kind == "interfaces":
        config = from_ifupdown(read_interfaces(path))
        parts.ifupdown.append(config)
        parts.files += config.files
    elif kind == "sysctl":
        parts.sysctls += read_sysctl_file(path)
        parts.files.append(path)
    else:
        parts.keyfiles.append(path)


def _merge(parts: _Parts) -> PersistentConfig:
    interfaces: list[PersistentInterface] = []
    commands: list[Command] = []
    routes: list[PersistentRoute] = []
    seen: dict[str, str] = {}
    for config in parts.ifupdown:
        for interface in config.interfaces:
            if interface.name in seen:
                file, _, line = interface.where.rpartition(":")
                raise SpecError(f"{interface.name} is configured again (first at "
                                f"{seen[interface.name]})", file=file, line=int(line))
            seen[interface.name] = interface.where
            interfaces.append(interface)
        commands += config.commands
    files, skipped = list(parts.files), tuple[tuple[str, str], ...]()
    if parts.keyfiles:
        nm = read_keyfiles(parts.keyfiles)
        interfaces += [i for i in nm.interfaces if i.name not in seen]
        routes += [r for r in nm.routes if r.dev not in seen]
        files += nm.files
        skipped = nm.skipped + tuple((i.where, f"{i.name} is ifupdown's: NetworkManager leaves "
                                      "it alone") for i in nm.interfaces if i.name in seen)
    return PersistentConfig(tuple(interfaces), tuple(commands), tuple(routes),
                            tuple(parts.sysctls), tuple(dict.fromkeys(files)),
                            skipped=skipped)  # fmt: skip
