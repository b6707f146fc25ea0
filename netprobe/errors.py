"""The exception tree. Every error netprobe raises on purpose is a NetprobeError.

NetprobeError
├── SetupError       not root, a missing tool, a kernel feature this machine lacks
├── SpecError        bad input: a topology file or spec object, with file and line
├── TopologyError    building or checking a topology failed (keeps the errno)
├── TrafficError     injecting or capturing frames failed
└── CheckFailed      a check did not pass (also an AssertionError, for pytest)
"""

from __future__ import annotations

__all__ = [
    "CheckFailed",
    "NetprobeError",
    "NotFound",
    "SetupError",
    "SpecError",
    "TopologyError",
    "TrafficError",
]


class NetprobeError(Exception):
    """Base of every error netprobe raises deliberately."""


class SetupError(NetprobeError):
    """The machine cannot do what was asked: privileges, tools or kernel features."""

    def __init__(self, message: str, *, remedy: str | None = None) -> None:
        super().__init__(message if remedy is None else f"{message}\n  remedy: {remedy}")
        self.remedy = remedy


class SpecError(NetprobeError):
    """A topology spec is malformed or inconsistent."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        path: tuple[str, ...] = (),
    ) -> None:
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        super().__init__(f"{where}{message}")
        self.reason = message
        self.file = file
        self.line = line
        self.path = path  # where in the spec: ("hosts", "red", "interfaces", "eth0")


class TopologyError(NetprobeError):
    """Building, checking or tearing down a topology failed."""

    def __init__(self, message: str, *, errno: int | None = None, obj: str | None = None) -> None:
        super().__init__(message)
        self.errno = errno
        self.obj = obj


class NotFound(TopologyError, KeyError):
    """A host, interface or TAP a caller named is not in the topology."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""  # not KeyError's quoted repr


class TrafficError(NetprobeError):
    """Sending or capturing frames failed."""


class CheckFailed(NetprobeError, AssertionError):
    """A check did not pass; carries its result."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result
