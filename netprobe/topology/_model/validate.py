"""Consistency of a whole spec: names, cross-references, what may go where.

Each problem is a SpecError carrying the path of the offending entry, so the YAML loader
can point at its line. Nothing here touches the machine except reading ruleset files.
"""

from __future__ import annotations

import os
import re
import weakref
from collections import Counter

from ..._inputfile import MAX_INPUT_BYTES
from ...errors import SpecError
from .spec import (
    ROOT_IF_PREFIX_LEN,
    Bond,
    Bridge,
    Host,
    Interface,
    Macvlan,
    OvsBond,
    OvsBridge,
    OvsVxlan,
    Spec,
    Veth,
    Vlan,
    Vxlan,
)
from .validate_dhcp import check_dhcp
from .validate_sdn import check_controllers

IFNAMSIZ = 15  # usable characters of an interface name (16 with the NUL)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# net.ipv4.ip_forward, or with slashes when a name holds dots: net/ipv4/conf/eth0.10/rp_filter
_SYSCTL = re.compile(r"^net[./][A-Za-z0-9_.\-/]+$")
_PID_NS = re.compile(r"^pid:[1-9][0-9]*$")  # adopt the namespace of /proc/PID/ns/net
_KERNEL_IFNAME = re.compile(r"^[^/:\s]{1,15}$")  # what the kernel accepts (dev_valid_name)


def _fail(message: str, *path: str) -> SpecError:
    return SpecError(message, path=("hosts", *path) if path else ())


# Specs found consistent, by identity: a Spec is immutable all the way down, so the one
# `load` validated is not validated again when it is built.
_VALID: weakref.WeakValueDictionary[int, Spec] = weakref.WeakValueDictionary()


def validate(spec: Spec) -> Spec:
    """Return `spec` unchanged if it is consistent, else raise SpecError."""
    if _VALID.get(id(spec)) is spec:
        return spec
    _check_spec(spec)
    _VALID[id(spec)] = spec
    return spec


def _check_spec(spec: Spec) -> None:
    if not isinstance(spec.name, str) or not _NAME.match(spec.name) or len(spec.name) > 64:
        raise SpecError(  # 64: its namespaces' names (np-NAME-HOST) must fit in 255 bytes
            f"topology name {_shown(spec.name)} must be 1-64 letters, digits, '_', '-', '.'",
            path=("name",),
        )
    if not spec.hosts:
        raise SpecError("a topology needs at least one host", path=("hosts",))
    for name, count in Counter(h.name for h in spec.hosts).items():
        if count > 1:
            raise _fail(f"host {name!r} is defined {count} times", name)
    for ns, count in Counter(h.adopt for h in spec.hosts if h.adopt).items():
        if count > 1:
            raise SpecError(f"namespace {ns!r} is adopted by {count} hosts", path=("hosts",))
    if sum(h.root for h in spec.hosts) > 1:
        raise SpecError("only one host may be the root namespace", path=("hosts",))
    for host in spec.hosts:
        _check_host(host, {i for h, i in spec.existing if h == host.name})
    _check_veths(spec)


def _shown(name: object) -> str:
    """A name as a message shows it: a long one cut, with its length."""
    text = repr(name)
    return text if len(text) <= 40 else f"{text[:30]}... ({len(str(name))} characters)"


def _check_host(host: Host, existing: set[str]) -> None:
    """`existing`: names of the interfaces the host uses as they exist (see Spec.existing)."""
    if not isinstance(host.name, str) or not _NAME.match(host.name) or len(host.name) > 64:
        raise _fail(
            f"host name {_shown(host.name)} must be 1-64 letters, digits, '_', '-', '.'",
            str(host.name),
        )
    _check_placement(host)
    names = Counter(i.name for i in host.interfaces)
    for name, count in names.items():
        if count > 1:
            raise _fail(
                f"interface {name!r} is defined {count} times in host {host.name!r}",
                host.name,
                "interfaces",
                name,
            )
    for iface in host.interfaces:
        _check_interface(host, iface, iface.name in existing)
        if iface.name in existing:
            _check_existing(host, iface)
    _check_addresses(host)
    check_dhcp(host, existing)
    check_controllers(host)
    for index, route in enumerate(host.routes):
        if route.dev is not None and host.interface(route.dev) is None:
            hint = (
                f" (list one that exists as `{route.dev}:` under interfaces to use it)"
                if host.adopt is not None
                else ""
            )
            raise _fail(
                f"route to {route.to} uses dev {route.dev!r}, not an interface of "
                f"{host.name!r}{hint}",
                host.name,
                "routes",
                str(index),
            )
    for key, _ in host.sysctls:
        if not _SYSCTL.match(key) or ".." in key:
            raise _fail(
                f"sysctl {key!r}: only per-namespace net.* sysctls can be set",
                host.name,
                "sysctls",
                key,
            )
    for index, rules in enumerate(host.firewall):
        problem = _ruleset_problem(rules.path)
        if problem:
            raise _fail(f"{problem}: {rules.path!r}", host.name, "firewall", str(index))


def _ruleset_problem(path: str) -> str | None:
    """Why the ruleset file at `path` cannot be loaded, or None (nft reads it later)."""
    if "\0" in path or not os.access(path, os.R_OK) or not os.path.isfile(path):
        return "cannot read ruleset file"  # NUL: os.access raises ValueError
    if os.path.getsize(path) > MAX_INPUT_BYTES:
        return f"ruleset file over the limit of {MAX_INPUT_BYTES // (1024 * 1024)} MiB"
    return None


def _check_placement(host: Host) -> None:
    """What may be changed depends on whether netprobe owns the namespace."""
    if host.root and host.adopt is not None:
        raise _fail("a host is either `root` or `adopt`, not both", host.name)
    if host.observed is not None and host.owned:
        raise _fail(
            "`observed` describes a namespace that exists already: give `adopt` or `root`",
            host.name,
            "observed",
        )
    if host.root and (host.routes or host.sysctls or host.firewall):
        raise _fail(
            "the root namespace is the machine's own: netprobe adds interfaces "
            "there, never routes, sysctls or firewall rules",
            host.name,
        )
    if host.adopt is not None:
        if not isinstance(host.adopt, str) or not (
            _NAME.match(host.adopt) or _PID_NS.match(host.adopt)
        ):
            raise _fail(
                f"adopt must name a namespace in /run/netns or be pid:PID, not {host.adopt!r}",
                host.name,
                "adopt",
            )
        if host.firewall:
            raise _fail(
                "netprobe does not load firewall rules into a namespace it adopted",
                host.name,
                "firewall",
            )


def _check_observed(host: Host, iface: Interface, path: tuple[str, ...]) -> None:
    """An interface discovery found exists already: netprobe makes nothing of it, so it
    lives where netprobe did not build, has no type, and bears the kernel's name."""
    if host.owned:
        raise _fail(
            f"{iface.name!r} is observed (it exists already), but netprobe makes host "
            f"{host.name!r}: observed interfaces belong to adopted or root hosts",
            *path,
        )
    if iface.kind is not None:
        raise _fail(f"observed interface {iface.name!r} exists already: it takes no type", *path)
    if not isinstance(iface.name, str) or not _KERNEL_IFNAME.match(iface.name) or (
        iface.name in (".", "..", "lo")
    ):
        raise _fail(f"observed interface name {iface.name!r} is no kernel interface name", *path)


def _check_interface(host: Host, iface: Interface, existing: bool) -> None:
    path = (host.name, "interfaces", str(iface.name))
    if iface.observed is not None:
        _check_observed(host, iface, path)
        return
    prefixed = host.root and not existing  # the root's existing links keep their names
    limit = IFNAMSIZ - ROOT_IF_PREFIX_LEN if prefixed else IFNAMSIZ
    if (
        not isinstance(iface.name, str)
        or not iface.name
        or len(iface.name) > limit
        or not _NAME.match(iface.name)
    ):
        extra = (
            f" (root-namespace names get a {ROOT_IF_PREFIX_LEN}-character prefix)"
            if prefixed
            else ""
        )
        raise _fail(
            f"interface name {iface.name!r} must be 1-{limit} characters of letters, "
            f"digits, '_', '-', '.'{extra}",
            *path,
        )
    if iface.name in ("lo", "all", "default"):
        raise _fail(
            f"{iface.name!r} is reserved (lo exists already; all and default name "
            "sysctl directories)",
            *path,
        )
    kind = iface.kind
    if isinstance(kind, (Macvlan, Vlan)):
        parent = host.interface(kind.parent)
        if kind.parent == iface.name:
            raise _fail(f"{iface.name!r} cannot be its own parent", *path)
        if parent is None:
            raise _fail(
                f"parent {kind.parent!r} of {iface.name!r} is not an interface of {host.name!r}",
                *path,
            )
    if iface.master is not None:
        master = host.interface(iface.master)
        if master is None or not isinstance(master.kind, (Bridge, Bond, OvsBridge, OvsBond)):
            raise _fail(
                f"master {iface.master!r} of {iface.name!r} is not a bridge or bond of "
                f"{host.name!r}",
                *path,
            )
        if iface.master == iface.name:
            raise _fail(f"{iface.name!r} cannot be its own master", *path)
        _check_master_chain(host, iface, path)
    if iface.learning is not None:
        master = host.interface(iface.master) if iface.master else None
        if master is None or not isinstance(master.kind, Bridge):
            raise _fail(
                f"`learning` applies to bridge ports; {iface.name!r} has no bridge master", *path
            )
    _check_ovs(host, iface, path)
    _check_vxlan(host, iface, path)
    _check_port_vlans(host, iface, path)


def _check_vxlan(host: Host, iface: Interface, path: tuple[str, ...]) -> None:
    """A kernel VXLAN's underlay is an interface of its host; an OVS VXLAN port is a port
    of an OVS bridge, inside OVS (no kernel interface of its own to address)."""
    kind = iface.kind
    if isinstance(kind, Vxlan) and kind.dev is not None and (
        kind.dev == iface.name or host.interface(kind.dev) is None
    ):
        raise _fail(
            f"underlay dev {kind.dev!r} of vxlan {iface.name!r} is not another "
            f"interface of {host.name!r}",
            *path,
        )
    if isinstance(kind, OvsVxlan):
        if not isinstance(_master_kind(host, iface), OvsBridge):
            raise _fail(f"ovs_vxlan {iface.name!r} needs `master:` an OVS bridge", *path)
        if iface.addresses or iface.mac or iface.mtu:
            raise _fail(
                f"ovs_vxlan {iface.name!r} is a tunnel port inside OVS, not a kernel "
                "interface: it takes no addresses, mac or mtu",
                *path,
            )


def _check_existing(host: Host, iface: Interface) -> None:
    """An interface that exists already gets addresses (and, in an adopted namespace, its
    mtu and up state), all undone at teardown; nothing that would rewire it."""
    path = (host.name, "interfaces", iface.name)
    where = "the root namespace" if host.root else f"adopted namespace {host.adopt!r}"
    changes = [
        key
        for key, given in (
            ("master", iface.master is not None),
            ("mac", iface.mac is not None),
            ("learning", iface.learning is not None),
            ("vlans", bool(iface.vlans)),
            ("tag", iface.tag is not None),
            ("trunks", bool(iface.trunks)),
            ("impair", iface.impair is not None),
        )
        if given
    ]
    if changes:
        raise _fail(
            f"{iface.name!r} has no type, so it is an interface that exists in {where}: "
            f"netprobe adds addresses and routes to it, but does not set its "
            f"{', '.join(changes)} (give it a type to have netprobe make it)",
            *path,
        )
    if host.root and (iface.addresses or iface.mtu is not None or not iface.up):
        raise _fail(
            f"{iface.name!r} is an interface of the machine's own (root) namespace: "
            "netprobe uses it as it is, with no addresses, mtu or up/down of its own",
            *path,
        )


def _check_master_chain(host: Host, iface: Interface, path: tuple[str, ...]) -> None:
    """Masters form no cycle, and a Linux bridge is no port of another (the kernel
    refuses both, with errors that name neither)."""
    chain = [iface.name]
    master = host.interface(iface.master) if iface.master else None
    while master is not None:
        if master.name in chain:
            cycle = " → ".join([*chain[chain.index(master.name):], master.name])
            raise _fail(f"masters form a cycle in {host.name!r}: {cycle}", *path)
        chain.append(master.name)
        master = host.interface(master.master) if master.master else None
    if isinstance(iface.kind, Bridge) and isinstance(_master_kind(host, iface), Bridge):
        raise _fail(
            f"bridge {iface.name!r} cannot be a port of bridge {iface.master!r}: the kernel "
            "does not nest Linux bridges (link them with a veth pair)",
            *path,
        )


def _master_kind(host: Host, iface: Interface) -> object:
    master = host.interface(iface.master) if iface.master else None
    return master.kind if master is not None else None


def _check_ovs(host: Host, iface: Interface, path: tuple[str, ...]) -> None:
    """OVS bridges live in namespaces netprobe owns; bonds sit on them with 2+ members."""
    master = _master_kind(host, iface)
    if isinstance(iface.kind, OvsBridge):
        if not host.owned:
            raise _fail(
                "an OVS bridge needs a namespace netprobe owns (its daemons run there); "
                f"{host.name!r} is {'the root namespace' if host.root else 'adopted'}",
                *path,
            )
        if iface.master is not None:
            raise _fail(f"OVS bridge {iface.name!r} cannot have a master", *path)
    if isinstance(iface.kind, OvsBond):
        if iface.addresses or iface.mac or iface.mtu:
            raise _fail(
                f"ovs_bond {iface.name!r} is a port inside OVS, not a kernel interface: it "
                "takes no addresses, mac or mtu",
                *path,
            )
        if not isinstance(master, OvsBridge):
            raise _fail(f"ovs_bond {iface.name!r} needs `master:` an OVS bridge", *path)
        members = [i.name for i in host.interfaces if i.master == iface.name]
        if len(members) < 2:
            raise _fail(
                f"ovs_bond {iface.name!r} has {len(members)} member(s) "
                f"({', '.join(members) or 'none'}): a bond needs at least 2 (members say "
                f"`master: {iface.name}`)",
                *path,
            )
    if isinstance(master, OvsBond) and (iface.tag is not None or iface.trunks):
        raise _fail(f"give `tag`/`trunks` to bond {iface.master!r}, not to its member", *path)
    if isinstance(master, (OvsBridge, OvsBond)) and isinstance(
        iface.kind, (Bridge, Bond, OvsBridge, Macvlan, Vlan)
    ):
        raise _fail(
            f"ports of an OVS bridge are veth ends, TAPs or an ovs_bond, not a "
            f"{type(iface.kind).__name__.lower()}",
            *path,
        )
    if iface.name == "ovs-netdev" and any(isinstance(i.kind, OvsBridge) for i in host.interfaces):
        raise _fail("OVS's netdev datapath makes a device named 'ovs-netdev' itself", *path)
    if iface.tag is not None or iface.trunks:
        if not isinstance(master, OvsBridge):
            raise _fail(
                f"`tag` and `trunks` apply to ports of an OVS bridge; {iface.name!r} has "
                "none as master (ports of a Linux bridge list `vlans`)",
                *path,
            )
        if iface.tag is not None and iface.trunks:
            raise _fail(
                f"{iface.name!r} has both `tag` (an access port) and `trunks` (a trunk): give one",
                *path,
            )


def _check_port_vlans(host: Host, iface: Interface, path: tuple[str, ...]) -> None:
    """`vlans` on ports of a VLAN-filtering Linux bridge: ids once each, one pvid at most."""
    if not iface.vlans:
        return
    master = _master_kind(host, iface)
    if isinstance(master, OvsBridge):
        raise _fail(
            f"{iface.name!r} is a port of OVS bridge {iface.master!r}: give it `tag: N` "
            "(access) or `trunks: [...]`, not `vlans`",
            *path,
        )
    if not isinstance(master, Bridge):
        raise _fail(f"`vlans` apply to bridge ports; {iface.name!r} has no bridge master", *path)
    if not master.vlan_filtering:
        raise _fail(
            f"bridge {iface.master!r} does not filter VLANs, so port VLANs mean nothing: "
            "give it `bridge: {vlan_filtering: true}`",
            *path,
        )
    for vid, count in Counter(v.id for v in iface.vlans).items():
        if count > 1:
            raise _fail(f"vlan {vid} is listed {count} times on {iface.name!r}", *path)
    pvids = [v.id for v in iface.vlans if v.pvid]
    if len(pvids) > 1:
        raise _fail(
            f"{iface.name!r} has {len(pvids)} pvids ({', '.join(map(str, pvids))}): "
            "untagged frames can join one VLAN only",
            *path,
        )


def _check_addresses(host: Host) -> None:
    seen: dict[str, str] = {}
    for iface in host.interfaces:
        for addr in iface.addresses:
            key = str(addr.ip)
            if key in seen:
                raise _fail(
                    f"address {key} is on both {seen[key]!r} and {iface.name!r}",
                    host.name,
                    "interfaces",
                    iface.name,
                )
            seen[key] = iface.name


def _check_veths(spec: Spec) -> None:
    """Every veth end names an existing host and interface, and the pairing is one-to-one."""
    hosts = {h.name: h for h in spec.hosts}
    peer_of: dict[tuple[str, str], tuple[str, str]] = {}
    for host in spec.hosts:
        for iface in host.interfaces:
            if not isinstance(iface.kind, Veth):
                continue
            here = (host.name, iface.name)
            there = (iface.kind.peer_host, iface.kind.peer_ifname)
            path = (host.name, "interfaces", iface.name)
            far_host = hosts.get(there[0])
            if far_host is None:
                raise _fail(
                    f"veth {iface.name!r} of {host.name!r} goes to unknown host {there[0]!r}", *path
                )
            if there == here:
                raise _fail(f"veth {iface.name!r} cannot be its own peer", *path)
            far = far_host.interface(there[1])
            if (
                far is not None
                and far.kind is not None
                and far.kind != Veth(f"{host.name}:{iface.name}")
            ):
                raise _fail(
                    f"veth peer {iface.kind.peer} is already a {type(far.kind).__name__.lower()}"
                    f" or the end of another veth",
                    *path,
                )
            for end, other in ((here, there), (there, here)):
                if peer_of.setdefault(end, other) != other:
                    raise _fail(f"{end[0]}:{end[1]} is the end of two veth pairs", *path)
            _check_peer_name(far_host, there[1], path)
    for host in spec.hosts:
        for iface in host.interfaces:
            if iface.kind is None and host.owned and (host.name, iface.name) not in peer_of:
                raise _fail(
                    f"interface {iface.name!r} of {host.name!r} has no type and no veth "
                    "leads to it (give it veth/bridge/tap/macvlan/vlan/bond; only a host "
                    "that adopts a namespace can use an interface that exists)",
                    host.name,
                    "interfaces",
                    iface.name,
                )


def _check_peer_name(host: Host, name: str, path: tuple[str, ...]) -> None:
    limit = IFNAMSIZ - ROOT_IF_PREFIX_LEN if host.root else IFNAMSIZ
    if not _NAME.match(name) or len(name) > limit:
        raise _fail(
            f"veth peer name {name!r} must be 1-{limit} characters of letters, digits, "
            "'_', '-', '.'",
            *path,
        )
