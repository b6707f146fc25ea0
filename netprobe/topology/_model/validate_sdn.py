"""Where OpenFlow controllers may run, and which controller each OVS bridge connects to.

A controller netprobe runs (os-ken) lives in a namespace netprobe makes, listening on
its loopback or a unix socket, so only the bridges of that same host can reach it: a
bridge names it by name. A bridge may instead give a target (tcp:IP:PORT, unix:PATH)
of a controller someone else runs. A bridge with a controller takes its flows from it.
"""

from __future__ import annotations

from collections import Counter

from ...errors import SpecError
from .spec import Host, OvsBridge


def _fail(message: str, *path: str) -> SpecError:
    return SpecError(message, path=("hosts", *path))


def check_controllers(host: Host) -> None:
    """Raise SpecError for the first controller or bridge controller of `host` that
    cannot be."""
    if host.controllers and not host.owned:
        raise _fail(f"controllers run in a namespace netprobe owns; {host.name!r} is "
                    f"{'the root namespace' if host.root else 'adopted'}",
                    host.name, "controllers")
    for name, count in Counter(c.name for c in host.controllers).items():
        if count > 1:
            raise _fail(f"{count} controllers named {name!r} in host {host.name!r}",
                        host.name, "controllers")
    names = {c.name for c in host.controllers}
    for iface in host.interfaces:
        kind = iface.kind
        if not isinstance(kind, OvsBridge) or kind.controller is None:
            continue
        path = (host.name, "interfaces", iface.name)
        if ":" not in kind.controller and kind.controller not in names:
            raise _fail(f"OVS bridge {iface.name!r} names controller {kind.controller!r}, "
                        f"which host {host.name!r} does not run (its controllers: "
                        f"{', '.join(sorted(names)) or 'none'})", *path)
        if kind.flows:
            raise _fail(f"OVS bridge {iface.name!r} has a controller, which owns its flows: "
                        "give them to the controller, not the bridge", *path)
