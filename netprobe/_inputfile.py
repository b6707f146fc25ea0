"""Reading a file a user gave as input (a topology, a policy, a ruleset), safely.

Only a regular file of sane size is read: `/dev/zero` would grow without end and a FIFO
would block for ever. Opening with O_NONBLOCK keeps a FIFO from blocking before fstat
can refuse it. Every problem is a SpecError naming the file.
"""

from __future__ import annotations

import os
import stat

from .errors import SpecError

MAX_INPUT_BYTES = 4 * 1024 * 1024  # far beyond any topology, policy or ruleset written by hand


def read_input(path: str | os.PathLike[str], what: str, *, limit: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of the `what` file at `path` ("topology file", "policy"...)."""
    name = os.fspath(path)
    data = _read_bytes(name, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"cannot read {what}: not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}; "
            "a binary file?)",
            file=name,
        ) from None


def _read_bytes(name: str, what: str, limit: int) -> bytes:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError) as exc:  # ValueError: NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(f"cannot read {what}: {reason}", file=name) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _kind(info.st_mode)
            raise SpecError(f"cannot read {what}: it is {kind}, not a regular file", file=name)
        if info.st_size > limit:
            raise SpecError(f"{what} is {_size(info.st_size)}, over the limit of {_size(limit)}",
                            file=name)
        data = _read_at_most(fd, limit + 1)  # it may grow while read
    except OSError as exc:
        raise SpecError(f"cannot read {what}: {exc.strerror or exc}", file=name) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise SpecError(f"{what} is over the limit of {_size(limit)}", file=name)
    return data


def _read_at_most(fd: int, count: int) -> bytes:
    chunks = []
    while count > 0:
        chunk = os.read(fd, min(count, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(mode):
            return kind
    return "a special file"


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.4g} MiB"
    return f"{count} bytes"
