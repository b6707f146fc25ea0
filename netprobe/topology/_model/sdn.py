"""OpenFlow controllers of a spec: each one netprobe runs inside a host (os-ken).

Only what an SdnController says by itself is checked here (its name, where it listens,
its flows); which bridges use it is `validate`'s.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import SpecError

FAIL_MODES = ("secure", "standalone")
DEFAULT_LISTEN = "tcp:127.0.0.1:6653"


def _tuple(value: Iterable[Any] | None, what: str) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)):
        raise SpecError(f"{what} must be a list")
    return tuple(value)


def openflow_flow(flow: object) -> str:
    """`flow` (one ovs-ofctl flow, with `actions=`), stripped; else SpecError."""
    if not isinstance(flow, str) or "actions=" not in flow.replace(" ", ""):
        raise SpecError(f"an OpenFlow flow is text with `actions=`, not {flow!r}")
    if "\n" in flow or "\0" in flow:
        raise SpecError(f"an OpenFlow flow is one line: {flow!r}")
    return flow.strip()


def controller_target(value: object) -> str:
    """`value` if it is an OpenFlow controller target a bridge can connect to:
    "tcp:IP:PORT" or "unix:PATH"; else SpecError."""
    text = value if isinstance(value, str) else ""
    kind, _, rest = text.partition(":")
    if kind == "unix" and rest.startswith("/"):
        return text
    if kind == "tcp":
        address, _, port = rest.rpartition(":")
        try:
            ipaddress.ip_address(address.strip("[]"))
            if 0 < int(port) < 65536:
                return text
        except ValueError:
            pass
    raise SpecError(f"an OpenFlow controller is tcp:IP:PORT or unix:PATH, not {value!r}")


@dataclass(frozen=True)
class SdnController:
    """An OpenFlow controller netprobe runs inside the host (os-ken, OpenFlow 1.3), for
    its OVS bridges that name it as their `controller`. `listen`: "tcp:127.0.0.1:PORT"
    (loopback only: it serves the host's own bridges) or "unix" (a socket netprobe puts
    in the host's private directory). `flows` (ovs-ofctl syntax): what it pushes to every
    switch that connects, after deleting the switch's flows."""

    name: str
    listen: str = DEFAULT_LISTEN
    flows: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or ":" in self.name:
            raise SpecError(f"a controller's name is a word without ':', not {self.name!r}")
        if self.listen != "unix":
            target = controller_target(self.listen)
            address = target.split(":")[1] if target.startswith("tcp:") else ""
            if not ipaddress.ip_address(address.strip("[]") or "0.0.0.0").is_loopback:
                raise SpecError(f"controller {self.name!r} listens on loopback or a unix "
                                f"socket (tcp:127.0.0.1:PORT or unix), not {self.listen!r}")
        flows = tuple(openflow_flow(f) for f in _tuple(self.flows, "controller flows"))
        object.__setattr__(self, "flows", flows)
