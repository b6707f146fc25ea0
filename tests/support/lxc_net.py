"""LXC's DHCP by hand, as lxc-net and a container's own client run it: dnsmasq with
lxc-net's command line (its files in a directory of the test's), and busybox udhcpc with a
script that configures the address and default route it is given."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

# a client script as a distribution's: the lease becomes the address and default route
CLIENT = """#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    ip route replace default via "$router" dev "$interface"
    ;;
esac
exit 0
"""


def dnsmasq(rundir: str, *, foreground: bool = False) -> list[str]:
    """lxc-net's dnsmasq for lxcbr0 (10.0.3.1, range 10.0.3.2-10.0.3.254), every file in
    `rundir`; it reads no /etc file and serves no DNS."""
    return ["dnsmasq", "--conf-file=/dev/null", "--no-hosts", "--no-resolv", "--port=0",
            "-u", "root", "--strict-order", "--bind-interfaces",
            f"--pid-file={rundir}/dnsmasq.pid", "--listen-address", "10.0.3.1",
            "--dhcp-range", "10.0.3.2,10.0.3.254", "--dhcp-lease-max=253",
            "--dhcp-no-override", "--except-interface=lo", "--interface=lxcbr0",
            f"--dhcp-leasefile={rundir}/dnsmasq.lxcbr0.leases", "--dhcp-authoritative",
            f"--log-facility={rundir}/dnsmasq.log", *(["--keep-in-foreground"]
                                                       if foreground else [])]


def client_script(rundir: str) -> str:
    """Write the client's script into `rundir`; return its path."""
    path = os.path.join(rundir, "udhcpc.script")
    with open(path, "w") as f:
        f.write(CLIENT)
    os.chmod(path, 0o700)
    return path


def udhcpc(rundir: str, ifname: str = "eth0") -> list[str]:
    """busybox udhcpc on `ifname`: it returns once it has its lease, and stays in the
    background to renew it."""
    return ["busybox", "udhcpc", "-i", ifname, "-s", client_script(rundir),
            "-p", f"{rundir}/udhcpc.pid", "-t", "5", "-T", "2", "-n"]


def wait_for(what: str, ready: Callable[[], bool], deadline: float = 30) -> None:
    """Poll `ready` until it holds; AssertionError naming `what` at the deadline."""
    end = time.monotonic() + deadline
    while not ready():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not after {deadline} s")
        time.sleep(0.05)


def gone(pid: int) -> bool:
    """Has process `pid` exited (and been reaped, or is a zombie)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")
    except OSError:
        return True
