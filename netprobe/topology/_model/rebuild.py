"""An owned spec that rebuilds what discovery saw: how a bundle replays a network netprobe
did not build.

Discovery's spec adopts namespaces and keeps what it saw in `observed:` blocks; building
it elsewhere would adopt namespaces that are not there. `rebuild` turns each adopted host
that was discovered into a host netprobe makes: its veth pairs (a veth whose far end is
in a namespace not discovered goes to a stub host with nothing else in it), bridges with
their ports, TAPs, MACs, MTUs, addresses, the routes the kernel did not make on its own
(not proto kernel), the forwarding sysctls and the nft ruleset (its text, as a firewall
file). Permanent neighbours, which a spec cannot say, come back beside the spec. What
cannot be rebuilt (other kinds of link, routes in other tables, a route's `src`) is said
in the notes. Owned hosts and the root one stay as they are. Pure: it reads no kernel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from .observed import ObservedHost, ObservedNeighbour, ObservedRoute
from .spec import Bridge, Firewall, Host, Interface, Kind, Route, Spec, Tap, Veth
from .validate import validate

_STUB_IF = "eth0"  # a stub's end when the far end's name is not known


@dataclass(frozen=True)
class Rebuilt:
    """The owned spec, the rulesets its firewall entries name (path → text), the
    permanent neighbours to add after building (host → entries) and what was changed or
    left out, in words."""

    spec: Spec
    rulesets: dict[str, str] = field(default_factory=dict)
    neighbours: dict[str, tuple[ObservedNeighbour, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    rebuilt: tuple[str, ...] = ()  # the hosts made from what was seen


def rebuild(spec: Spec, found: Spec | None = None, *, rulesets: str = "rulesets") -> Rebuilt:
    """`spec` with every adopted host that `found` (a discovered spec; `spec` itself by
    default) holds, matched by the namespace it adopts, made an owned host that rebuilds
    what was seen. Ruleset paths are `rulesets`/HOST-live.nft."""
    found = spec if found is None else found
    seen = {h.adopt: h for h in found.hosts if h.observed is not None and not h.root}
    names = {h.adopt: h.name for h in spec.hosts if h.adopt in seen}
    alias = {seen[a].name: n for a, n in names.items()}  # discovered name → spec name
    work = _Work(spec, set(names.values()), alias, rulesets)
    work.veths = {
        (names[h.adopt], i.name)
        for h in seen.values()
        if h.adopt in names
        for i in h.interfaces
        if i.observed is not None and i.observed.kind == "veth"
    }
    hosts: list[Host] = []
    for host in spec.hosts:
        if host.name in work.converted:
            hosts.append(work.host(host, seen[host.adopt]))
        else:
            hosts.append(host)
            if host.adopt is not None and not host.root:
                work.notes.append(f"{host.name}: its namespace was not read; still adopted")
    hosts += work.stubs.values()
    out = Spec(spec.name, tuple(hosts), source=spec.source)
    # Checked but for the ruleset files, which the caller writes where it keeps them.
    validate(Spec(spec.name, tuple(dataclasses.replace(h, firewall=()) for h in hosts)))
    return Rebuilt(
        out, work.rulesets, work.neighbours, tuple(work.notes), tuple(sorted(work.converted))
    )


@dataclass
class _Work:
    spec: Spec
    converted: set[str]
    alias: dict[str, str]
    ruleset_dir: str
    notes: list[str] = field(default_factory=list)
    rulesets: dict[str, str] = field(default_factory=dict)
    neighbours: dict[str, tuple[ObservedNeighbour, ...]] = field(default_factory=dict)
    stubs: dict[str, Host] = field(default_factory=dict)
    veths: set[tuple[str, str]] = field(default_factory=set)  # veth ends seen in them

    def __post_init__(self) -> None:
        self.order = {h.name: n for n, h in enumerate(self.spec.hosts)}
        self.declared = {  # veth ends the spec's own veths lead to
            (i.kind.peer_host, i.kind.peer_ifname)
            for h in self.spec.hosts
            for i in h.interfaces
            if isinstance(i.kind, Veth)
        }

    def host(self, given: Host, seen: Host) -> Host:
        spec_ifs = {i.name: i for i in given.interfaces}
        made = [x for i in seen.interfaces if (x := self.interface(given, i, spec_ifs)) is not None]
        kept = {i.name: i for i in made}
        interfaces = tuple(self._master(given.name, i, kept) for i in made)
        observed = seen.observed or ObservedHost()
        firewall: tuple[Firewall, ...] = ()
        if observed.ruleset:
            path = f"{self.ruleset_dir}/{given.name}-live.nft"
            self.rulesets[path] = observed.ruleset.rstrip("\n") + "\n"
            firewall = (Firewall("nft", path),)
        neighbours = tuple(n for n in observed.neighbours if n.dev in kept)
        if neighbours:
            self.neighbours[given.name] = neighbours
        return Host(
            given.name,
            interfaces=interfaces,
            routes=tuple(self._routes(given.name, observed.routes, set(kept))),
            sysctls=tuple(_sysctls(observed.sysctls, set(kept))),
            firewall=firewall,
        )

    def interface(
        self, host: Host, seen: Interface, spec_ifs: Mapping[str, Interface]
    ) -> Interface | None:
        obs = seen.observed
        given = spec_ifs.get(seen.name)
        if obs is None:
            return seen
        kind: Kind | None
        if given is not None and given.kind is not None:
            kind = given.kind  # netprobe made it: made again as the spec says
        elif (host.name, seen.name) in self.declared:
            kind = None  # the far end of a veth an owned host declares
        elif obs.kind == "veth":
            kind = self._veth(host.name, seen.name, obs.peer)
        elif obs.kind == "bridge":
            kind = Bridge()
        elif obs.kind == "tap":
            kind = Tap()
        else:
            self.notes.append(f"{host.name}:{seen.name} ({obs.kind}) is not rebuilt")
            return None
        return Interface(
            seen.name, kind, addresses=obs.addresses, master=obs.master, mac=obs.mac,
            mtu=obs.mtu, up=obs.up,
        )  # fmt: skip

    def _veth(self, host: str, ifname: str, peer: str | None) -> Veth | None:
        far_host, _, far_if = (peer or "").partition(":")
        far_host = self.alias.get(far_host, far_host)
        if peer and (far_host, far_if) in self.veths:
            mine = (self.order[host], ifname)
            if mine > (self.order[far_host], far_if):
                return None  # the far end's host declares the pair
            return Veth(f"{far_host}:{far_if}")
        stub = f"{host}-{ifname}-far"[:64]
        end = far_if or _STUB_IF
        self.stubs[stub] = Host(stub, interfaces=(Interface(end),))
        where = f"{far_host}:{far_if}, which was not read" if peer else "in a namespace not read"
        self.notes.append(
            f"{host}:{ifname} is a veth whose far end is {where}: it leads to stub host "
            f"{stub} ({end}, nothing else in it)"
        )
        return Veth(f"{stub}:{end}")

    def _master(self, host: str, iface: Interface, kept: Mapping[str, Interface]) -> Interface:
        master = kept.get(iface.master) if iface.master else None
        if iface.master is None or (master is not None and isinstance(master.kind, Bridge)):
            return iface
        self.notes.append(f"{host}:{iface.name}'s master {iface.master} is not rebuilt")
        return Interface(
            iface.name, iface.kind, addresses=iface.addresses, mac=iface.mac, mtu=iface.mtu,
            up=iface.up,
        )  # fmt: skip

    def _routes(
        self, host: str, routes: tuple[ObservedRoute, ...], kept: set[str]
    ) -> Iterator[Route]:
        for r in routes:
            if r.proto == "kernel":
                continue  # made again with its address
            text = f"{host}: route to {r.to}" + (f" via {r.via}" if r.via else "")
            if r.type != "unicast" or r.table != 254 or (r.dev is not None and r.dev not in kept):
                self.notes.append(f"{text} ({r.type}, table {r.table}) is not rebuilt")
                continue
            if r.via is None and r.dev is None:
                continue
            if r.src is not None:
                self.notes.append(f"{text}: rebuilt without its src {r.src}")
            yield Route(r.to, via=r.via, dev=r.dev, metric=r.metric)


def _sysctls(pairs: tuple[tuple[str, str], ...], kept: set[str]) -> Iterator[tuple[str, str]]:
    """The forwarding sysctls seen, but for interfaces that are not rebuilt."""
    for key, value in pairs:
        parts = key.split(".")
        per_interface = len(parts) > 4 and parts[2] == "conf"
        if per_interface and parts[3] not in ("all", "default", *kept):
            continue
        yield key, value
