"""`netprobe drift`: what a reboot would change, the persistent configuration (what comes
back at boot) compared with the live kernel (what `ip` made since, and what vanishes).

The comparison is pure (`drift`): a PersistentConfig against a LiveState read before.
`read_drift` reads both, the kernel through netlink and /proc/sys only: it changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..topology._model.hookcommand import unapplied
from ..topology._model.persistent import PersistentConfig
from ._drift_item import Drift, NotCompared
from ._drift_links import interface_drift
from ._drift_live import LiveState, read_live, sysctl_paths
from ._drift_routes import GLOB, route_drift, sysctl_drift
from ._drift_standin import resolve_stand_ins

FORMAT = "netprobe-drift"
VERSION = 1
MINOR = 1  # 1: not_compared


@dataclass(frozen=True)
class DriftReport:
    """What a reboot of `namespace` would change (`items`), the interfaces made at
    runtime that no configuration mentions (`runtime`, not drift), and the configuration
    lines that could not be compared (`not_compared`: what boot does there is unknown)."""

    namespace: str
    files: tuple[str, ...]
    items: tuple[Drift, ...] = ()
    runtime: tuple[Drift, ...] = ()
    not_compared: tuple[NotCompared, ...] = ()
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime()))

    @property
    def drifted(self) -> bool:
        """True when a reboot would change something (`netprobe drift` exits 1)."""
        return bool(self.items)

    def render(self) -> str:
        """A headline, one line per difference, then what was not compared, then the
        runtime group."""
        read = ", ".join(self.files) or "no file"
        if self.items:
            head = (f"{len(self.items)} difference(s) a reboot would undo or make in "
                    f"{self.namespace} (configuration: {read}):")
        elif self.not_compared:
            head = (f"no drift found in {self.namespace} in what could be compared "
                    f"(configuration: {read}); {len(self.not_compared)} line(s) not compared")
        else:
            head = f"no drift in {self.namespace}: it matches {read}"
        lines = [head, *(f"  {item.render()}" for item in self.items)]
        if self.not_compared:
            lines.append("not compared (what boot does there is not known here):")
            lines += [f"  {entry.render()}" for entry in self.not_compared]
        if self.runtime:
            lines.append("not in the configuration (made at runtime; not counted):")
            lines += [f"  {item.render()}" for item in self.runtime]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as a versioned JSON document (`netprobe drift --json`)."""
        return {
            "format": FORMAT, "version": VERSION, "minor": MINOR, "netprobe": __version__,
            "created": self.created, "namespace": self.namespace, "files": list(self.files),
            "drift": self.drifted, "items": [i.to_dict() for i in self.items],
            "runtime": [i.to_dict() for i in self.runtime],
            "not_compared": [n.to_dict() for n in self.not_compared],
        }  # fmt: skip

    def __str__(self) -> str:
        return self.render()


def drift(config: PersistentConfig, live: LiveState, namespace: str = "") -> DriftReport:
    """What a reboot would change: `config` (what the box's configuration brings up at
    boot) against `live` (what its kernel has now). Pure."""
    config, unmatched = resolve_stand_ins(config, live.host)
    found = [*interface_drift(config, live), *route_drift(config, live),
             *sysctl_drift(config, live)]
    return DriftReport(
        namespace=namespace or live.host.name,
        files=config.files,
        items=tuple(d for d in found if not d.runtime),
        runtime=tuple(d for d in found if d.runtime),
        not_compared=(*_not_compared(config), *unmatched),
    )


def _not_compared(config: PersistentConfig) -> list[NotCompared]:
    """The lines whose effect at boot this model does not know: the up-hooks boot runs
    that it cannot read, the profiles it does not read, systemd-sysctl's globs."""
    out = [NotCompared(c.where, f"{c.hook} {c.text}: {why}") for c, why in unapplied(config)]
    out += [NotCompared(where, why) for where, why in config.skipped]
    out += [NotCompared(where, f"sysctl {key}: a glob, set on whatever matches at boot")
            for key, _value, where in config.sysctls if GLOB.search(key)]  # fmt: skip
    return out


def read_drift(files: Sequence[str | Path], *, netns: str | None = None,
               pid: int | None = None) -> DriftReport:
    """Read the configuration `files` (interfaces files, keyfiles, sysctl files), then
    the live state of the namespace `netns`, of process `pid`'s, or (neither) of the one
    netprobe runs in, and compare them. Reads only; a bad file raises SpecError (file and
    line) before the kernel is read."""
    config = read_persistent(files)
    live = read_live(netns=netns, pid=pid, sysctls=sysctl_paths(config))
    return drift(config, live, live.host.name)


def read_persistent(files: Sequence[str | Path]) -> PersistentConfig:
    """The persistent configuration `files` make together: interfaces files (sources
    followed, up-hooks' routes and sysctls read), NetworkManager keyfiles, sysctl files."""
    from ..topology._model.config import read_config

    return read_config(files)
