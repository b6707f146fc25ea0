"""Where a probe runs: a topology given, a spec built, or the namespaces reachable from
the sender, discovered and adopted (which creates and changes nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import SpecError
from ..topology import Host, Spec, Topology, Veth, as_spec, build, discover


@contextmanager
def scope(
    source: str | None, topology: str | Path | Spec | Topology | None, pid: int | None
) -> Iterator[tuple[Topology, str, list[str]]]:
    """The topology to probe in, the sender's host name in it, and notes on how it was
    found. A topology built here is torn down on the way out."""
    if isinstance(topology, Topology):
        yield topology, _sender(topology.spec, source), []
        return
    if topology is not None:
        spec = as_spec(topology)
        sender = _sender(spec, source)
        notes = [f"topology {spec.name!r} from {spec.source or 'the spec given'}"]
    else:
        spec, sender, notes = reachable(source, pid)
    with build(spec) as topo:
        yield topo, sender, notes


def reachable(source: str | None, pid: int | None) -> tuple[Spec, str, list[str]]:
    """The namespaces reachable from `source` (a named namespace) or `pid` (a process's
    namespace) through veth pairs, discovered as a spec that adopts them."""
    if (source is None) == (pid is None):
        raise SpecError("probe from where? name a namespace, or give --pid PID")
    one = discover(names=[source] if source else (), pids=[pid] if pid else (), rulesets=False)
    found = discover(all=True, rulesets=False)
    adopt = one.hosts[0].adopt
    start = next((h for h in found.hosts if h.adopt == adopt), None)
    if start is None:  # gone between the two readings
        raise SpecError(f"namespace {adopt!r} went away while it was being read")
    names = component(found, start.name)
    hosts = tuple(h for h in found.hosts if h.name in names)
    note = f"discovered {len(hosts)} namespace(s) reachable from {start.name}"
    return Spec("discovered", hosts), start.name, [note]


def component(spec: Spec, start: str) -> set[str]:
    """The hosts joined to `start` by veth pairs, directly or through others."""
    edges: dict[str, set[str]] = {h.name: set() for h in spec.hosts}
    for host in spec.hosts:
        for iface in host.interfaces:
            peer = iface.kind.peer if isinstance(iface.kind, Veth) else None
            if iface.observed is not None:
                peer = iface.observed.peer
            far = (peer or "").partition(":")[0]
            if far in edges:
                edges[host.name].add(far)
                edges[far].add(host.name)
    seen, todo = {start}, [start]
    while todo:
        for far in edges[todo.pop()] - seen:
            seen.add(far)
            todo.append(far)
    return seen


def _sender(spec: Spec, source: str | None) -> str:
    if source is None:
        raise SpecError("probe from where? name a host of the topology")
    hosts: tuple[Host, ...] = spec.hosts
    for host in hosts:
        if source in (host.name, host.adopt):
            return host.name
    known = ", ".join(h.name for h in hosts)
    raise SpecError(f"no host {source!r} in topology {spec.name!r} (its hosts: {known})")
