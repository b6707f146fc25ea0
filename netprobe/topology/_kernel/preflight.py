"""Before a run creates anything: where each host lives, which links it will add to
namespaces it does not own, whether any of those names is already taken, and whether the
interfaces it means to use there as they are exist."""

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
    interface such a host lists (but those it uses as they exist), and veth ends that lead
    into it."""
    names: dict[str, list[str]] = {}
    for host in spec.hosts:
        for iface in host.interfaces:
            if (host.name, iface.name) in spec.existing or iface.observed is not None:
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


def existing_links(spec: Spec, runid: str) -> dict[str, list[str]]:
    """Names of the interfaces the run uses as they exist, by namespace ("" = root)."""
    names: dict[str, list[str]] = {}
    for host in spec.hosts:
        for iface in host.interfaces:
            if (host.name, iface.name) in spec.existing:
                names.setdefault(namespace_of(host, runid), []).append(iface.name)
    return names


def check_names(
    foreign: dict[str, list[str]], existing: dict[str, list[str]]
) -> dict[str, dict[str, int]]:
    """Before anything is made: no link to be created in a foreign namespace may exist
    already, so that whatever bears one of these names later is netprobe's; every link to
    be used as it exists must. Returns the ifindex of each of those, by namespace."""
    found: dict[str, dict[str, int]] = {}
    for ns in {**foreign, **existing}:
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
                links = nl.link_states()
        finally:
            os.close(fd)
        taken = sorted(set(foreign.get(ns, ())) & set(links))
        if taken:
            raise TopologyError(
                f"{', '.join(taken)} already exist(s) in namespace "
                f"{ns or '(root)'}: netprobe only adds links of its own there",
                obj=taken[0],
            )
        missing = [n for n in existing.get(ns, ()) if n not in links]
        if missing:
            raise TopologyError(
                f"{', '.join(missing)} (no type: an interface to use as it is) does not exist "
                f"in namespace {ns or '(root)'}, which has {_some(sorted(links))}; give "
                "it a type to have netprobe make it",
                obj=missing[0],
            )
        if ns in existing:
            found[ns] = {n: links[n].index for n in existing[ns]}
    return found


def _some(names: list[str], most: int = 12) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


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
