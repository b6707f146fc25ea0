"""Before a run creates anything: where each host lives, which links it will add to
namespaces it does not own, and whether any of those names is already taken."""

from __future__ import annotations

import os

from ...errors import SetupError, TopologyError
from .._model.spec import Host, Spec, Veth
from . import netns, owner
from .netlink import Rtnl


def namespace_of(host: Host, runid: str) -> str:
    """The /run/netns name a host lives in ("" for the root namespace)."""
    if host.root:
        return ""
    return host.adopt or owner.ns_name(runid, host.name)


def foreign_links(spec: Spec, runid: str) -> dict[str, list[str]]:
    """Kernel names of the links this run will create in namespaces it does not own: every
    interface such a host lists, and veth ends that lead into it."""
    names: dict[str, list[str]] = {}
    for host in spec.hosts:
        for iface in host.interfaces:
            if iface.observed is not None:
                continue  # it exists already: netprobe creates nothing for it
            ends = [(host, iface.name)]
            if isinstance(iface.kind, Veth):
                ends.append((spec.host(iface.kind.peer_host), iface.kind.peer_ifname))
            for end_host, name in ends:
                if not end_host.owned:
                    kname = owner.root_ifname(runid, name) if end_host.root else name
                    listed = names.setdefault(namespace_of(end_host, runid), [])
                    if kname not in listed:
                        listed.append(kname)
    return names


def refuse_taken_names(foreign: dict[str, list[str]]) -> None:
    """Before anything is made: no link to be created in a foreign namespace may exist
    already, so that whatever bears one of these names later is netprobe's."""
    for ns, names in foreign.items():
        if ns and not netns.exists(ns):
            raise TopologyError(
                f"namespace {ns!r} to adopt does not exist (see `ip netns list`)"
                if not ns.startswith(netns.PID_PREFIX)
                else f"no process {ns[len(netns.PID_PREFIX):]} to adopt the namespace of",
                obj=ns,
            )
        fd = netns.open_fd(ns) if ns else netns.open_current()
        try:
            with Rtnl(fd) as nl:
                taken = sorted(set(names) & set(nl.link_states()))
        finally:
            os.close(fd)
        if taken:
            raise TopologyError(
                f"{', '.join(taken)} already exist(s) in namespace "
                f"{ns or '(root)'}: netprobe only adds links of its own there",
                obj=taken[0],
            )


def taken(runid: str, name: str) -> SetupError:
    """Why run id `runid` is in use, and what to do about it."""
    holder = next((r for r in owner.read_records() if r.runid == runid), None)
    held = holder.name if holder is not None else name
    if holder is not None and not holder.persistent and not owner.is_alive(holder):
        return SetupError(
            f"a run of {held!r} was killed while building and left its remains",
            remedy=f"netprobe topo down {held}, or netprobe clean",
        )
    if held != name:  # two names that differ only in what namespace names cannot hold
        return SetupError(
            f"topology {name!r} would be run {runid} (namespaces {owner.ns_prefix(runid)}*), "
            f"which {held!r} already holds",
            remedy=f"give the topology another name, or netprobe topo down {held}",
        )
    return SetupError(
        f"a topology named {held!r} is already up", remedy=f"netprobe topo down {held}"
    )
