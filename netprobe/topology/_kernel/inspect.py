"""Read back what a live topology looks like: links, addresses and routes per host."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace

from ..._privilege import require_root
from ...errors import TopologyError
from .._model.load import load
from .._model.spec import Route, Spec
from . import impair, netns, owner
from .links import IFF_UP
from .named import find_persistent, find_shown
from .netlink import RTM_GETADDR, RTM_GETROUTE, Rtnl
from .stored import stored_spec
from .undo import route_words


@dataclass(frozen=True)
class LinkView:
    """One link as the kernel reports it, for `netprobe topo show`."""

    name: str
    kind: str
    up: bool
    carrier: bool
    mac: str
    mtu: int
    master: str | None
    addresses: tuple[str, ...]
    alias: str | None = None
    # The link's queueing, in tc's words, where its root qdisc is not a kernel default
    # (an impairment netprobe set, or shaping someone else did): live, not the spec's.
    qdisc: str | None = None


@dataclass(frozen=True)
class HostView:
    """One host's links and routes as the kernel reports them."""

    host: str
    namespace: str
    links: tuple[LinkView, ...]
    routes: tuple[str, ...]
    # In a namespace netprobe does not own: the tag of its links there, and what it added
    # to what was there before (addresses "10.9.0.5/24 on eth0", routes as `routes` are).
    adopted: bool = False
    tag: str = ""
    added: frozenset[str] = frozenset()
    existing: frozenset[str] = frozenset()  # links it uses as they were, whatever their alias

    def is_mine(self, link: LinkView) -> bool:
        """Whether netprobe made `link` (in a namespace it does not own)."""
        return self.adopted and link.alias == self.tag and link.name not in self.existing

    def is_added(self, what: str) -> bool:
        """Whether netprobe added `what` ("ADDRESS on LINK", a route text) here."""
        return what in self.added or any(
            what.startswith(a + " dev ") for a in self.added if " on " not in a
        )


def describe_topology(name: str) -> list[HostView]:
    """Views of every host of the topology `name` (a persistent one, or a run id)."""
    require_root()
    record = find_shown(name)
    views = []
    for host, ns in record.namespaces.items():
        if ns and netns.exists(ns):
            view = describe(host, ns)
            if ns in record.adopted:
                view = replace(
                    view,
                    adopted=True,
                    tag=owner.link_tag(record.runid),
                    added=_added(record, ns),
                    existing=frozenset(record.existing.get(ns, {})),
                )
            views.append(view)
    return views


def _added(record: owner.RunRecord, ns: str) -> frozenset[str]:
    """What the run's undo entries say it added to namespace `ns`, as `describe` words it."""
    added = set()
    for entry in record.undo:
        if entry["ns"] != ns:
            continue
        if "address" in entry:
            added.add(f"{entry['address']} on {entry['dev']}")
        elif "route" in entry:
            route = {**entry["route"], "metric": None}  # `describe` shows no metric
            added.add(route_words(Route(**route)).replace("default6", "default"))
    return frozenset(added)


def describe_spec(spec: Spec) -> list[HostView]:
    """Views of the hosts of `spec` that exist without it (adopted, root): what `topo show`
    shows of a discovered topology file."""
    require_root()
    return [
        describe(h.name, h.adopt or "") for h in spec.hosts if h.adopt or h.root
    ]


def recorded_spec(name: str) -> Spec:
    """The spec a persistent topology was built from (as stored with it, or its file)."""
    record = find_persistent(name)
    kept = stored_spec(record.runid)
    if kept is not None:
        return kept
    if record.spec_path and os.path.isabs(record.spec_path) and os.path.isfile(record.spec_path):
        return load(record.spec_path)
    raise TopologyError(
        f"topology {name!r} was not built from a file that still exists "
        f"({record.spec_path or 'no file'}): draw it from its file instead"
    )


def describe(host: str, ns: str) -> HostView:
    """The view of `host` from its namespace `ns`; raises TopologyError if it cannot be read."""
    try:
        fd = netns.open_fd(ns) if ns else netns.open_current()
    except OSError as exc:
        raise TopologyError(f"cannot open {host}'s namespace {ns}: {exc.strerror}") from None
    try:
        try:
            nl = Rtnl(fd)
        except OSError as exc:  # e.g. the empty placeholder of a run killed mid-creation
            raise TopologyError(
                f"cannot enter {host}'s namespace {ns}: {exc.strerror} "
                "(a run killed while building? `netprobe clean`)"
            ) from None
        with nl:
            links = nl.links()
            names = {link["index"]: n for n, link in links.items()}
            addrs: dict[int, list[str]] = {}
            for msg in nl.dump(RTM_GETADDR):
                ip = msg.get_attr("IFA_ADDRESS")
                addrs.setdefault(msg["index"], []).append(f"{ip}/{msg['prefixlen']}")
            routes = [
                _route_text(m, names)
                for family in (socket.AF_INET, socket.AF_INET6)
                for m in nl.dump(RTM_GETROUTE, family)
                if m.get_attr("RTA_TABLE") == 254
            ]
    finally:
        os.close(fd)
    views = [
        _link_view(n, link, names, addrs.get(link["index"], []))
        for n, link in sorted(links.items(), key=lambda item: item[1]["index"])
    ]
    views = [_with_qdisc(v, ns, links[v.name].get_attr("IFLA_QDISC")) for v in views]
    return HostView(host, ns, tuple(views), tuple(routes))


def _with_qdisc(view: LinkView, ns: str, kind: str | None) -> LinkView:
    """`view` with its qdiscs in tc's words where its root one is not the kernel's own;
    the kind alone where tc cannot say. A link without a queue (noqueue: veths, bridges)
    needs no asking."""
    if kind in (None, "noqueue", "noop"):
        return view
    words = impair.described(ns, view.name)
    return view if words == "" else replace(view, qdisc=words or kind)


def _link_view(name: str, link: object, names: dict[int, str], addrs: list[str]) -> LinkView:
    msg = link  # a pyroute2 ifinfmsg
    info = msg.get_attr("IFLA_LINKINFO")  # type: ignore[attr-defined]
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    master = msg.get_attr("IFLA_MASTER")  # type: ignore[attr-defined]
    return LinkView(
        name=name,
        kind=kind or ("loopback" if name == "lo" else "device"),
        up=bool(msg["flags"] & IFF_UP),  # type: ignore[index]
        carrier=bool(msg.get_attr("IFLA_CARRIER")),  # type: ignore[attr-defined]
        mac=msg.get_attr("IFLA_ADDRESS") or "",  # type: ignore[attr-defined]
        mtu=msg.get_attr("IFLA_MTU") or 0,  # type: ignore[attr-defined]
        master=names.get(master) if master else None,
        addresses=tuple(addrs),
        alias=msg.get_attr("IFLA_IFALIAS"),  # type: ignore[attr-defined]
    )


def _route_text(msg: object, names: dict[int, str]) -> str:
    get = msg.get_attr  # type: ignore[attr-defined]
    dst = get("RTA_DST")
    text = f"{dst}/{msg['dst_len']}" if dst else "default"  # type: ignore[index]
    if get("RTA_GATEWAY"):
        text += f" via {get('RTA_GATEWAY')}"
    if get("RTA_OIF"):
        text += f" dev {names.get(get('RTA_OIF'), get('RTA_OIF'))}"
    return text
