"""Running unprivileged: a user namespace this process creates for itself, as rootless
Podman does (`unshare -Urnm`).

The process becomes root of a new user namespace (its own uid mapped to 0; nothing else is
mapped, so nothing in /etc changes), with a network namespace and a mount namespace of its
own. Every namespace a topology then makes belongs to that user namespace: veth, bridges,
TAPs, nft rulesets and AF_PACKET sockets work there as they do for root. The mount
namespace has a tmpfs on netprobe's run directory and on /run/netns, so `ip netns add` and
the run records work and vanish with the namespace; the network namespace it starts in is
"the host" of a rootless container: loopback up, nothing else.

Everything the process made goes with it: the namespaces are pinned only by mounts in its
private mount namespace and by processes that die with it.
"""

from __future__ import annotations

import ctypes
import os
import subprocess

from .errors import SetupError

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18
_RUN_DIRS = ("/run/netprobe", "/run/netns")  # owner.RUN_DIR, owner.NETNS_DIR
ENV = "NETPROBE_USERNS"  # set inside: a child re-running the CLI must not nest again
_REMEDY = (
    "allow unprivileged user namespaces (sysctl user.max_user_namespaces > 0, and "
    "kernel.apparmor_restrict_unprivileged_userns=0 where AppArmor restricts them)"
)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def inside() -> bool:
    """Whether this process runs in the user namespace `enter` made."""
    return os.environ.get(ENV) == "1"


def enter() -> None:
    """Make this (single-threaded) process root of a new user, network and mount
    namespace, with netprobe's run directories on a private tmpfs and loopback up.
    SetupError, one line with its remedy, when the kernel refuses."""
    if inside():
        return
    uid, gid = os.geteuid(), os.getegid()
    libc = _libc()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise _refused(f"unshare(CLONE_NEWUSER|CLONE_NEWNET|CLONE_NEWNS): {os.strerror(err)}")
    _write("/proc/self/setgroups", "deny")  # required before an unprivileged gid_map
    _write("/proc/self/uid_map", f"0 {uid} 1")
    _write("/proc/self/gid_map", f"0 {gid} 1")
    # mounts made here must not propagate back to the parent namespace
    if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        raise _refused(f"making / private: {os.strerror(ctypes.get_errno())}")
    _private_run_dirs(libc)
    os.environ[ENV] = "1"
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)


def _private_run_dirs(libc: ctypes.CDLL) -> None:
    """A tmpfs on each run directory; where one is missing (and cannot be made by a user
    who does not own /run), a tmpfs on /run itself holding both."""
    if not all(os.path.isdir(d) for d in _RUN_DIRS):
        _mount_tmpfs(libc, "/run")
        for directory in _RUN_DIRS:
            os.makedirs(directory, mode=0o755, exist_ok=True)
        return
    for directory in _RUN_DIRS:
        _mount_tmpfs(libc, directory)


def _mount_tmpfs(libc: ctypes.CDLL, target: str) -> None:
    if libc.mount(b"netprobe", target.encode(), b"tmpfs", 0, b"mode=0755") != 0:
        raise _refused(f"mounting a tmpfs on {target}: {os.strerror(ctypes.get_errno())}")


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as dst:
            dst.write(text)
    except OSError as exc:
        raise _refused(f"writing {path}: {exc.strerror}") from exc


def _refused(what: str) -> SetupError:
    error = SetupError(f"cannot create a user namespace to run unprivileged ({what}): {_REMEDY}")
    error.remedy = _REMEDY
    return error
