"""A port: one interface of one host, named "HOST:IFNAME" (or "HOST:TAP@vm", the VM's side
of a TAP device). Pure model: every layer from the topology up parses a port here, so the
text has one meaning and one error message."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import SpecError

VM_SUFFIX = "@vm"
_FORBIDDEN = frozenset(":/ \t\n")  # what the kernel refuses in a name (dev_valid_name)


@dataclass(frozen=True, order=True)
class Port:
    """Interface `ifname` of `host`; `vm`: the VM's side of TAP `ifname`, not the host's.

    ``Port.parse("red:eth0")``, ``str(Port("pve", "tap0", vm=True)) == "pve:tap0@vm"``.
    Hashable and ordered; everything that takes a port takes this or its text."""

    host: str
    ifname: str
    vm: bool = False

    def __post_init__(self) -> None:
        for what, name in (("host", self.host), ("interface", self.ifname)):
            if not isinstance(name, str) or not name or _FORBIDDEN & set(name):
                raise SpecError(f"a port's {what} must be a name, not {name!r}")
        if self.ifname.endswith(VM_SUFFIX):
            raise SpecError(f"a port's interface is {self.ifname.removesuffix(VM_SUFFIX)!r} "
                            f"with vm=True, not {self.ifname!r}")

    @classmethod
    def parse(cls, value: str | Port) -> Port:
        """ "HOST:IFNAME" or "HOST:TAP@vm" (surrounding blanks ignored) → a Port; a Port
        passes unchanged. Anything else is a SpecError that quotes it."""
        if isinstance(value, Port):
            return value
        text = value.strip() if isinstance(value, str) else ""
        host, sep, ifname = text.partition(":")
        vm = ifname.endswith(VM_SUFFIX)
        try:
            if not sep:
                raise SpecError("no colon")
            return cls(host, ifname.removesuffix(VM_SUFFIX), vm)
        except SpecError:
            raise SpecError(f"a port is HOST:IFNAME (or HOST:TAP@vm), not {value!r}") from None

    def __str__(self) -> str:
        return f"{self.host}:{self.ifname}{VM_SUFFIX if self.vm else ''}"

    def on(self, ifname: str) -> Port:
        """Interface `ifname` of the same host (a bridge's port, a bond's member)."""
        return Port(self.host, ifname)


def host_and_ifname(host: str | Port, name: str | None) -> tuple[str, str]:
    """(host, interface) from either form a method takes: ``(host, name)`` as two names, or
    one port (a Port or its text) with `name` None. A TAP's VM side names the TAP."""
    if name is not None:
        if isinstance(host, Port):
            raise TypeError("give a Port alone, or a host and an interface name")
        return host, name
    port = Port.parse(host)
    return port.host, port.ifname
