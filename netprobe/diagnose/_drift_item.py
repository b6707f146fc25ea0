"""One thing `netprobe drift` found: a difference a reboot would undo or make."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Drift:
    """One difference between the configuration and the kernel, worded as what a reboot
    does about it. `runtime`: an interface no configuration mentions that something else
    made at runtime (a VM's TAP, a container's veth, Docker's bridge): listed, not counted."""

    kind: str  # address, port, link, route, sysctl, mtu
    subject: str  # what it is about: "10.9.0.5/24 on vmbr0", "net.ipv4.ip_forward"
    message: str  # the whole line, without its place
    where: str | None = None  # FILE:LINE of the configuration line it concerns
    runtime: bool = False

    def render(self) -> str:
        """`FILE:LINE: message`, or the message alone where no line applies."""
        return f"{self.where}: {self.message}" if self.where else self.message

    def to_dict(self) -> dict[str, Any]:
        """The item as JSON data."""
        return {"kind": self.kind, "subject": self.subject, "message": self.message,
                "where": self.where, "runtime": self.runtime}  # fmt: skip


@dataclass(frozen=True)
class NotCompared:
    """A line of the configuration `netprobe drift` could not compare (a hook command it
    cannot read, a profile of a type it does not model, a NIC matched by a MAC no
    interface here has), and why: what boot does there is unknown to it."""

    where: str  # FILE:LINE
    reason: str

    def render(self) -> str:
        """`FILE:LINE: reason`."""
        return f"{self.where}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON data."""
        return {"where": self.where, "reason": self.reason}
