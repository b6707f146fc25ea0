"""Whether this process may build topologies: effective CAP_NET_ADMIN."""

from __future__ import annotations

import os

from .errors import SetupError

_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21


def cap_eff_has(status: str, bit: int) -> bool:
    """Whether the CapEff line of a /proc/PID/status text has capability `bit` set."""
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


def is_root() -> bool:
    """Effective CAP_NET_ADMIN (links, rules) and CAP_SYS_ADMIN (mounting and entering
    namespaces): what building a topology needs. uid 0 in a container may lack either."""
    try:
        with open("/proc/self/status") as src:
            status = src.read()
    except OSError:
        return os.geteuid() == 0
    return cap_eff_has(status, _CAP_NET_ADMIN) and cap_eff_has(status, _CAP_SYS_ADMIN)


_REMEDY = "run it as root (sudo netprobe ...); in a container, add both capabilities"


def require_root() -> None:
    """Raise SetupError, one line with its remedy, without the privileges."""
    if not is_root():
        error = SetupError(
            "netprobe needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to build namespaces, "
            f"links and rulesets: {_REMEDY}"
        )
        error.remedy = _REMEDY  # said in the line already
        raise error
