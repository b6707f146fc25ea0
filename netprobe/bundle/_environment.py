"""Where a result was obtained: kernel, distribution, tools, libraries and capabilities.

Only what explains behaviour goes in: no host name, no user, no paths of the machine.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from .._capabilities import probe
from .._version import __version__

_LIBRARIES = ("scapy", "pyroute2", "dpkt", "click", "rich", "PyYAML", "python-nmap", "pytest")


def _distribution() -> str:
    try:
        release = platform.freedesktop_os_release()
    except OSError:
        return "unknown"
    return release.get("PRETTY_NAME") or release.get("NAME", "unknown")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """A JSON-ready description of this machine, as far as the data path cares."""
    uname = platform.uname()
    capabilities = probe()
    return {
        "netprobe": __version__,
        "kernel": {"release": uname.release, "version": uname.version, "machine": uname.machine},
        "distribution": _distribution(),
        "python": platform.python_version(),
        "libraries": {name: _version(name) for name in _LIBRARIES},
        "capabilities": [
            {"kind": c.kind, "name": c.name, "present": c.present, "detail": c.detail}
            for c in capabilities
        ],
    }
