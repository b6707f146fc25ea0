"""Named network namespaces, made and entered without forking.

`ip netns add` forks a process and pyroute2's `netns.create` forks too (7-10 ms each).
The calling thread can do the same work itself: unshare its network namespace,
bind-mount it under /run/netns, and switch back. setns() and unshare() affect only
the calling thread, so every switch is paired with a switch back in a `finally`.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar, cast

NETNS_DIR = "/run/netns"

_CLONE_NEWNET = 0x40000000
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_SHARED = 1 << 20
_MNT_DETACH = 2

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)
_dir_ready = False


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _path(name: str) -> str:
    """Where namespace `name` is: /run/netns/NAME, or /proc/PID/ns/net for "pid:PID" (a
    container's namespace, which has no name)."""
    if name.startswith(PID_PREFIX) and name[len(PID_PREFIX) :].isdigit():
        return f"/proc/{name[len(PID_PREFIX) :]}/ns/net"
    return os.path.join(NETNS_DIR, name)


PID_PREFIX = "pid:"


def _prepare_dir() -> None:
    """Make /run/netns a shared mount, as iproute2 does, so `ip netns exec` sees our mounts."""
    global _dir_ready
    if _dir_ready:
        return
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    target = NETNS_DIR.encode()
    if _libc.mount(b"", target, b"none", _MS_SHARED | _MS_REC, None) != 0:
        if ctypes.get_errno() != errno.EINVAL:
            _check(-1, f"mount --make-rshared {NETNS_DIR}")
        _check(_libc.mount(target, target, b"none", _MS_BIND | _MS_REC, None), "bind mount")
        _check(_libc.mount(b"", target, b"none", _MS_SHARED | _MS_REC, None), "make-rshared")
    _dir_ready = True


def open_current() -> int:
    """A descriptor of the namespace this thread is in now (the root one, for the main
    thread of a process that never switched)."""
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def create(name: str, inside: Callable[[], T] | None = None) -> T | None:
    """Create the named namespace /run/netns/NAME; raise FileExistsError if it exists.

    `inside` runs while this thread is still in the new namespace (open its sockets and
    descriptors, write its sysctls there: no switch in and out again); its result is
    returned. Should it fail, the namespace is removed again.
    """
    _prepare_dir()
    path = _path(name)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    home = open_current()
    try:
        _check(_libc.unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            ret = _libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", _MS_BIND, None)
            _check(ret, f"bind mount {path}")
            return inside() if inside is not None else None
        finally:
            _check(_libc.setns(home, _CLONE_NEWNET), "setns back")
    except BaseException:
        _libc.umount2(path.encode(), _MNT_DETACH)
        os.unlink(path)
        raise
    finally:
        os.close(home)


def create_many(
    names: list[str], inside: Callable[[str], T], made: dict[str, T | Exception]
) -> None:
    """`create` each of `names`, `inside(name)` run in each, from a thread per CPU (up to
    four): making a namespace is mostly kernel work (unshare, bind mount), which ctypes
    runs without the GIL, and on two CPUs 200 were made in 0.09-0.11 s against
    0.15-0.22 s one after another. Each result goes into `made` by name as soon as it is
    there (an exception for each that failed; the others are made all the same), so that
    the caller can release them should this be interrupted. On an interrupt those not
    started are not made, and those under way finish before it propagates."""

    def attempt(name: str) -> None:
        try:
            made[name] = cast(T, create(name, lambda: inside(name)))
        except Exception as exc:  # each failure is reported; none stops the rest
            made[name] = exc

    workers = min(_CREATORS, os.cpu_count() or 1)
    if len(names) < 8 or workers < 2:
        for name in names:
            attempt(name)
        return
    _prepare_dir()  # once, before the threads
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        list(pool.map(attempt, names))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_CREATORS = 4


def delete(name: str) -> None:
    """Unmount and remove /run/netns/NAME; the kernel frees the namespace when unused."""
    path = _path(name)
    _libc.umount2(path.encode(), _MNT_DETACH)
    with suppress(FileNotFoundError):
        os.unlink(path)


def delete_many(names: list[str], delete: Callable[[str], None] = delete) -> dict[str, str]:
    """`delete` each of `names`, from several threads at once: each unmount waits for an
    RCU grace period (about 5 ms), which unmounts made together share; one after another,
    1,000 namespaces took 5 s. Returns the problems by the name of each namespace that
    failed (the others are deleted all the same), so that the caller keeps the record."""

    def attempt(name: str) -> str | None:
        try:
            delete(name)
        except Exception as exc:  # each failure is reported; none stops the rest
            return f"deleting namespace {name}: {exc}"
        return None

    done: list[str | None] | None = None
    if len(names) >= 8:
        from concurrent.futures import ThreadPoolExecutor

        try:
            with ThreadPoolExecutor(max_workers=_DELETERS) as pool:
                done = list(pool.map(attempt, names))  # ctypes lets go of the GIL in umount2
        except RuntimeError:  # the interpreter is exiting (an atexit teardown): no new
            pass  # threads to be had, so one after another below
    if done is None:
        done = [attempt(name) for name in names]
    return {name: problem for name, problem in zip(names, done, strict=True) if problem}


_DELETERS = 32


def exists(name: str) -> bool:
    """True when the named namespace exists under /run/netns (or process PID lives, for
    "pid:PID")."""
    return os.path.exists(_path(name))


def list_names() -> list[str]:
    """The names of every namespace under /run/netns, sorted."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def exec_argv(name: str, argv: list[str]) -> list[str]:
    """`argv` run inside namespace `name`: `ip netns exec`, or for "pid:PID" (no name to
    give it) `nsenter` into that process's network namespace alone."""
    if name.startswith(PID_PREFIX):
        return ["nsenter", f"--net={_path(name)}", "--", *argv]
    return ["ip", "netns", "exec", name, *argv]


def open_fd(name: str) -> int:
    """An O_RDONLY descriptor of the namespace (a name, or "pid:PID"), usable with
    setns() and IFLA_NET_NS_FD."""
    return os.open(_path(name), os.O_RDONLY | os.O_CLOEXEC)


@contextmanager
def entered(ns_fd: int | None) -> Iterator[None]:
    """Run the body with this thread inside the namespace `ns_fd` (None: stay put).

    Sockets opened in the body stay bound to that namespace after the switch back, and
    /proc/sys/net opened in the body shows its sysctls.
    """
    if ns_fd is None:
        yield
        return
    home = open_current()
    try:
        _check(_libc.setns(ns_fd, _CLONE_NEWNET), "setns")
        try:
            yield
        finally:
            _check(_libc.setns(home, _CLONE_NEWNET), "setns back")
    finally:
        os.close(home)
