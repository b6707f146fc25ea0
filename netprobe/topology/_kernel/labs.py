"""A running lab's hosts and interfaces, found by the lab's name from any directory.

`netprobe topo exec`, `shell` and `capture` step into a host of a lab `topo up` left
running: the lab's record (in /run/netprobe, not in the user's directory) names each
host's namespace. A capture on a lab's interface is listed among the record's
processes while it runs, so that `topo down` stops it before removing the namespace
(the capture's socket would keep the namespace alive).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..._privilege import require_root
from ...errors import NotFound, TopologyError
from . import netns, owner
from .named import find_persistent
from .netlink import Rtnl


@dataclass(frozen=True)
class LabHost:
    """A host of a running lab, and the namespace it lives in."""

    lab: str
    runid: str
    host: str
    namespace: str  # a name under /run/netns, "pid:PID" (adopted), "" (the root one)

    def argv(self, command: list[str]) -> list[str]:
        """`command` as run inside the host (as `ip netns exec` does)."""
        return netns.exec_argv(self.namespace, command) if self.namespace else list(command)

    def ns_fd(self) -> int | None:
        """A descriptor of the host's namespace (None: the root one); the caller closes it."""
        return netns.open_fd(self.namespace) if self.namespace else None

    def gone(self) -> bool:
        """Whether the host's namespace has gone (the lab was taken down)."""
        return bool(self.namespace) and not netns.exists(self.namespace)


def lab_host(lab: str, host: str) -> LabHost:
    """Host `host` of the lab `topo up` left running under exactly the name `lab`."""
    require_root()
    record = find_persistent(lab)
    if host not in record.namespaces:
        hosts = ", ".join(sorted(record.namespaces)) or "none"
        raise NotFound(f"lab {lab!r} has no host {host!r} (its hosts: {hosts})")
    ns = record.namespaces[host]
    if ns and not netns.exists(ns):
        raise TopologyError(
            f"{host}'s namespace {ns} is gone: lab {lab!r} is not whole "
            f"(`netprobe topo down {lab}`, then up again)"
        )
    return LabHost(lab, record.runid, host, ns)


def lab_interface(where: LabHost, ifname: str) -> str:
    """The kernel's name of interface `ifname` of the host: links made in the root
    namespace carry the run's prefix; any link of the host's own namespace will do."""
    fd = where.ns_fd()
    try:
        with Rtnl(fd) as nl:
            present = set(nl.links())
    finally:
        if fd is not None:
            os.close(fd)
    if where.namespace:
        mine, shown = ifname, sorted(present)
    else:  # the root namespace: the machine's own links are not the lab's
        used = find_persistent(where.lab).existing.get("", {})
        mine = ifname if ifname in used else owner.root_ifname(where.runid, ifname)
        shown = sorted(used)
    if mine in present:
        return mine
    raise NotFound(
        f"host {where.host} of lab {where.lab!r} has no interface {ifname!r}"
        + (f" (its interfaces: {', '.join(shown)})" if shown else "")
    )


def note_process(lab: str, name: str) -> None:
    """List this process in the lab's record, so that `topo down` stops it first."""
    pid, start = owner.current_owner()
    _change(lab, lambda ps: [*ps, {"name": name, "pid": pid, "start_time": start}])


def forget_process(lab: str) -> None:
    """Take this process out of the lab's record again (a lab gone already is fine)."""
    pid = os.getpid()
    _change(lab, lambda ps: [p for p in ps if p.get("pid") != pid])


def _change(lab: str, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    try:
        runid = find_persistent(lab).runid
        with owner.locked(runid) as there:  # captures start and end at once: none lost
            if not there:
                return
            record = find_persistent(lab)  # read again, under the lock
            owner.update(replace(record, processes=edit(list(record.processes))))
    except TopologyError:
        return  # taken down meanwhile: nothing to note
