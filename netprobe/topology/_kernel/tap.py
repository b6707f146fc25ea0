"""TAP devices opened by netprobe, which then plays the VM's side of the NIC."""

from __future__ import annotations

import fcntl
import os
import struct

from . import netns

TUN = "/dev/net/tun"
_TUNSETIFF = 0x400454CA
_TUNSETPERSIST = 0x400454CB
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000
_IFF_TUN_EXCL = 0x8000  # fail if the device exists: never take over someone else's TAP


def open_tap(ns_fd: int | None, name: str) -> int:
    """Create TAP `name` in the namespace and return its descriptor (frames without PI header).

    The device exists while the descriptor is open (unless made persistent), and has
    carrier only while it is open: exactly a VM's NIC whose VM is running.
    """
    with netns.entered(ns_fd):
        fd = os.open(TUN, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(
            fd,
            _TUNSETIFF,
            struct.pack("16sH", name.encode(), _IFF_TAP | _IFF_NO_PI | _IFF_TUN_EXCL),
        )
    except OSError:
        os.close(fd)
        raise
    return fd


def make_persistent(fd: int) -> None:
    """Keep the device after the descriptor closes (for topologies left up)."""
    fcntl.ioctl(fd, _TUNSETPERSIST, 1)
