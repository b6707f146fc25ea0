"""Discovery: a spec that adopts namespaces as they are, read from their kernels.

Every interface of the result exists already (it has no type and an `observed:` block),
so building the spec creates and changes nothing; the blocks keep what was seen for the
pictures, `topo show` and bundles. Reading changes nothing either: netlink dumps, the
forwarding sysctls, `nft list ruleset`. One thing the kernel does on its own: a link
dump names a veth's far namespace by an id, and gives that namespace one if it has none
in the reader's namespace yet (`ip link` does the same; `ip netns list-id` shows it).
The ids are asked with RTM_GETNSID, which assigns none.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from ..._privilege import require_root
from ...errors import TopologyError
from .._model.observed import Observed, ObservedHost, ObservedNeighbour, ObservedRoute
from .._model.spec import Host, Interface, Spec
from .._model.validate import validate
from . import ruleset
from .namespaces import Found, find
from .netlink import Rtnl
from .state import LiveHost, LiveInterface, LiveRoute, NsidLookup, Pairs, peers, read

_LINK_LOCAL6 = ipaddress.ip_network("fe80::/64")


def discover(
    names: Sequence[str] = (),
    pids: Sequence[int] = (),
    all: bool = False,
    root: bool = False,
    *,
    rulesets: bool = True,
    name: str = "discovered",
) -> Spec:
    """A spec that adopts what exists, changing nothing: the named namespaces `names`
    (as in `ip netns`), the namespaces of processes `pids` (a container's: adopted as
    "pid:PID", named after the container where its runtime says), or `all` of them; the
    root namespace (the one netprobe runs in) only with `root`, read-only. Each
    interface is an existing one with an `observed:` block (kind, veth peer, master,
    addresses, port state), each host keeps its routes, permanent neighbours, forwarding
    sysctls and (with `rulesets`) its nft ruleset. Building the result creates nothing.

    Raises TopologyError for a name or pid that is not there, or nothing to discover.
    """
    require_root()  # entering another namespace takes CAP_SYS_ADMIN
    every = all
    found = find(names, pids, every=every, root=root)
    if not found:
        raise TopologyError("no namespace to discover (give names, --pid, --all or --root)")
    fds: dict[str, int] = {}
    sockets: dict[str, Rtnl] = {}
    try:
        for item in list(found):
            try:
                fds[item.host] = os.open(item.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                if not every:
                    raise TopologyError(f"cannot open {item.origin}: {exc.strerror}") from None
                found.remove(item)  # a process that ended meanwhile
                continue
            sockets[item.host] = Rtnl(fds[item.host])
        live = {h: read(nl, h) for h, nl in sockets.items()}
        pairs = peers(live, NsidLookup(sockets, fds))
        masters = _ovs_masters(live)
        sysctls = {h: ruleset.sysctls(fds[h], _ifnames(live[h])) for h in live}
        with_tables = {
            i.host: i.path for i in found if rulesets and ruleset.has_tables(fds[i.host])
        }
    finally:
        for nl in sockets.values():
            nl.close()
        for fd in fds.values():
            os.close(fd)
    texts = ruleset.rulesets(with_tables) if with_tables else {}
    hosts = [
        _host(item, live[item.host], pairs, masters, sysctls[item.host], texts.get(item.host))
        for item in found
    ]
    return validate(Spec(name, tuple(hosts)))


def _ifnames(host: LiveHost) -> list[str]:
    return [i.name for i in host.interfaces if i.kind != "loopback"]


def _host(
    item: Found,
    live: LiveHost,
    pairs: Pairs,
    masters: Mapping[str, str],
    sysctls: dict[str, str],
    text: str | None,
) -> Host:
    interfaces = tuple(
        Interface(i.name, observed=_interface(live.name, i, pairs, masters))
        for i in live.interfaces
        if i.kind != "loopback"
    )
    seen = ObservedHost(
        origin=item.origin,
        routes=tuple(_route(r) for r in live.routes if _kept(r)),
        neighbours=tuple(
            ObservedNeighbour(n.ip, n.mac, n.dev)
            for n in live.neighbours
            if n.state == "permanent" and n.mac
        ),
        sysctls=tuple(sorted(sysctls.items())),
        ruleset=text,
    )
    return Host(item.host, interfaces, adopt=item.adopt, root=item.adopt is None, observed=seen)


def _interface(
    host: str, iface: LiveInterface, pairs: Pairs, masters: Mapping[str, str]
) -> Observed:
    far = pairs.get((host, iface.name))
    return Observed(
        kind=iface.kind,
        peer=f"{far[0]}:{far[1]}" if far else None,
        master=masters.get(iface.name) or iface.master,
        mac=iface.mac or None,
        mtu=iface.mtu or None,
        up=iface.up,
        addresses=tuple(a for a in iface.addresses if a.network != _LINK_LOCAL6),
        port_state=iface.port_state,
    )


def _kept(route: LiveRoute) -> bool:
    """Not IPv6's link-local routes, which every interface has."""
    return route.dst != _LINK_LOCAL6


def _route(route: LiveRoute) -> ObservedRoute:
    default = route.dst.prefixlen == 0
    return ObservedRoute(
        to=("default6" if route.dst.version == 6 else "default") if default else str(route.dst),
        via=route.gateway,
        dev=route.dev,
        src=route.src,
        metric=route.metric or None,
        type=route.type,
        table=route.table,
        proto=route.proto,
    )


def _ovs_masters(live: Mapping[str, LiveHost]) -> dict[str, str]:
    """Port → OVS bridge, from `ovs-vsctl` (read-only), where a kernel datapath's ports
    are seen (their kernel master is ovs-system, which names no bridge)."""
    if not any(i.kind == "openvswitch" for h in live.values() for i in h.interfaces):
        return {}
    if shutil.which("ovs-vsctl") is None:
        return {}
    out: dict[str, str] = {}
    for bridge in _vsctl("list-br"):
        out.update({port: bridge for port in _vsctl("list-ports", bridge)})
    return out


def _vsctl(*argv: str) -> list[str]:
    try:
        proc = subprocess.run(
            ["ovs-vsctl", "--timeout=2", *argv],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return proc.stdout.split() if proc.returncode == 0 else []
