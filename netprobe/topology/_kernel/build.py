"""Build a Spec into real kernel objects, fast, and never leave half of it behind.

Order: namespaces (and each OVS host's ovsdb-server) → masters (bridges, bonds) → TAPs →
veths → stacked links (macvlan, vlan) → VXLANs (on their underlay) → per-link settings
(port VLANs of VLAN-filtering bridges among them) → Open vSwitch (switch daemon,
bridges, ports, flows) → mtu and up state of existing links in adopted hosts → addresses
→ sysctls → routes → firewall → self-check → DHCP servers (dnsmasq), then clients
(udhcpc), whose leases are checked. Changes to what netprobe does not own are recorded
first (existing.py). In namespaces netprobe owns, IPv6 DAD and router solicitation are
switched off in the namespace's defaults before any link exists, so links can come up as
they are created. Elsewhere each link is created down, tagged, quietened, then brought
up. """

from __future__ import annotations

import functools
import os
from typing import Any, cast

from ..._privilege import require_root
from ...errors import TopologyError
from .._model.spec import Bond, Bridge, Host, Interface, Macvlan, Spec, Tap, Veth, Vlan, Vxlan
from .._model.validate import validate
from . import dhcp, existing, impair, netns, ovs, owner, sdn
from .links import (
    address_message,
    create_message,
    netlink_errors,
    port_vlan_messages,
    raise_up,
    route_message,
)
from .live import HostState, Topology
from .netlink import (
    CREATE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    BatchError,
    LinkState,
    Rtnl,
    link_msg,
)
from .preflight import check_names, existing_links, foreign_links, namespace_of, taken
from .selfcheck import verify, verify_leases
from .tap import open_tap

# The first ifindex netprobe gives in a namespace it owns: above those of the devices a
# new namespace has (lo, the tunnel drivers' fallback devices), and clear of those the
# kernel numbers itself (TAPs, OVS ports), counted on from its own last choice, not these.
_FIRST_INDEX = 1000

_FIREWALL_TOOLS = {
    "nft": ["nft", "-f"],
    "iptables": ["iptables-restore"],
    "ip6tables": ["ip6tables-restore"],
}


def build(spec: Spec, *, persistent: bool = False) -> Topology:
    """Build `spec` and return the live Topology; on any failure remove what was made.

    Use it as ``with build(spec) as topo:`` so teardown always runs. With
    `persistent=True` the run id is the spec's name (so namespaces read np-NAME-HOST);
    call `topo.keep()` to leave it up.
    """

    require_root()
    validate(spec)
    pid, start = owner.current_owner()
    runid = owner.persistent_runid(spec.name) if persistent else owner.new_runid()
    foreign = foreign_links(spec, runid)
    used = check_names(foreign, existing_links(spec, runid))
    record = owner.RunRecord(
        runid=runid,
        pid=pid,
        start_time=start,
        name=spec.name,
        adopted=tuple(h.adopt for h in spec.hosts if h.adopt),
        root=any(h.root for h in spec.hosts),
        spec_path=os.path.abspath(spec.source) if spec.source else None,  # for any cwd
        namespaces={h.name: namespace_of(h, runid) for h in spec.hosts},
        foreign_links=foreign,
        existing=used,
        session=owner.current_session(),
    )
    try:
        owner.register(record)  # before anything exists, so a killed run can be cleaned
    except FileExistsError:
        raise taken(runid, spec.name) from None
    topo = Topology(spec, record, persistent=persistent)
    topo.guard_signals()
    try:
        _Builder(topo).run()
    except BaseException:
        topo.teardown()
        raise
    return topo


class _Builder:
    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.spec = topo.spec
        self.indexes: dict[tuple[str, str], int] = {}
        self.given: dict[str, int] = {}  # per owned host: how many indexes it gave
        self.pending_up: list[tuple[str, Interface]] = []

    def run(self) -> None:
        dhcp.check_tools(self.spec)
        sdn.check_tools(self.spec)
        self._open_hosts()
        self._create_links()
        self.flush()  # every link exists before any is configured
        self._configure_links()
        self.flush()
        self._port_vlans()
        for host in self.spec.hosts:
            sdn.start(self.topo, host)  # listening before the bridges that connect to it
        for host in self.spec.hosts:
            if ovs.has_ovs(host):
                ovs.configure(self.topo, host)
        for host in self.spec.hosts:
            existing.settle_links(self.topo, host, self._learn_indexes(host))
            self._addresses(host)
            self._sysctls(host)
            self._routes(host)
            self._firewall(host)
        self.flush()
        impair.apply_spec(self.topo)  # tc, once every netlink change is in
        verify(self.topo)
        if dhcp.needs_dhcp(self.spec):  # on links proven up: servers, then their clients
            dhcp.start(self.topo)
            verify_leases(self.topo)

    # -- helpers -------------------------------------------------------------------------

    def state(self, host: str) -> HostState:
        return self.topo.hosts[host]

    def kname(self, host: str, name: str) -> str:
        return self.topo.ifname(host, name)

    def index(self, host: str, name: str) -> int:
        key = (host, name)
        if key not in self.indexes:
            self.flush()  # the link may be among the requests queued (a veth's far end
            # is made through the socket of the host at its near end)
            with netlink_errors(f"looking up {host}:{name}", f"{host}:{name}"):
                self.indexes[key] = self.state(host).nl.index(self.kname(host, name))
        return self.indexes[key]

    def give_index(self, host: Host, iface: Interface) -> int:
        """The ifindex to create `iface` with: in a namespace netprobe owns, one it gives
        (then nothing waits for a lookup before addressing the link or enslaving a port
        to it); elsewhere 0, the kernel's choice."""
        if not host.owned:
            return 0
        count = self.given.get(host.name, 0)
        self.given[host.name] = count + 1
        self.indexes[(host.name, iface.name)] = index = _FIRST_INDEX + count
        return index

    def master_index(self, host: Host, iface: Interface) -> int | None:
        """The ifindex of `iface`'s kernel master (None: none, or an OVS bridge or bond,
        which ovs-vswitchd attaches the port to instead)."""
        if iface.master is None or ovs.is_ovs_port(host, iface):
            return None
        return self.index(host.name, iface.master)

    def _learn_indexes(self, host: Host) -> dict[str, LinkState]:
        """One dump per host gives every index the address and route steps need; none
        when netprobe gave every link of the host its index."""
        if host.owned and all((host.name, i.name) in self.indexes for i in host.interfaces):
            return {}  # only adopted hosts need the links' states (settle_links)
        self.flush(host.name)
        with netlink_errors(f"listing links of {host.name}", host.name):
            links = self.state(host.name).nl.link_states()
        for iface in host.interfaces:
            link = links.get(self.kname(host.name, iface.name))
            if link is not None:
                self.indexes[(host.name, iface.name)] = link.index
        return links

    def request(
        self,
        host: str,
        what: str,
        msg: Any,
        msg_type: int,
        flags: int = 0,
        *,
        obj: str | None = None,
        kind: str | None = None,
    ) -> None:
        """Make a change in `host`; `what`, `obj` and `kind` name it should it fail. In a
        namespace netprobe owns it is queued, sent with the others at the next `flush`
        (one write, the acks read together); elsewhere it is made at once, in order with
        the undo notes and tags that surround it."""
        state = self.state(host)
        if state.spec.owned:
            state.nl.queue(msg, msg_type, flags, (what, host if obj is None else obj, kind))
            return
        self.flush()  # what it acts on may wait in another host's queue (a veth's far end)
        with netlink_errors(what, host if obj is None else obj, kind):
            state.nl.request(msg, msg_type, flags)

    def flush(self, host: str | None = None) -> None:
        """Send the queued changes of `host` (None: of every host), and raise the first
        failure as the TopologyError naming its object."""
        for state in [self.state(host)] if host else self.topo.hosts.values():
            try:
                state.nl.flush()
            except BatchError as exc:
                tag = cast(tuple[str, str, str | None], exc.tag)
                with netlink_errors(*tag):
                    raise

    # -- namespaces ----------------------------------------------------------------------

    def _open_hosts(self) -> None:
        """Open every host, in the spec's order; the namespaces netprobe owns are made
        first, together (`netns.create_many`)."""
        owned = {namespace_of(h, self.topo.runid): h for h in self.spec.hosts if h.owned}
        made: dict[str, tuple[int, Rtnl] | Exception] = {}  # by namespace, as each is made
        confs = _fresh_confs()  # read here: a new namespace has no net.core of its own
        try:
            netns.create_many(list(owned), lambda ns: self._inside_new(owned[ns], confs), made)
            for host in self.spec.hosts:
                self._open_host(host, made.pop(namespace_of(host, self.topo.runid), None))
        finally:  # what a failure or an interrupt left unrecorded: descriptor and socket
            for got in made.values():
                if isinstance(got, tuple):
                    os.close(got[0])
                    got[1].close()

    def _open_host(self, host: Host, made: tuple[int, Rtnl] | Exception | None) -> None:
        """Record `host` with its namespace's descriptor and netlink socket: `made` by
        `_open_hosts` for a namespace netprobe owns, opened here for any other."""
        ns = namespace_of(host, self.topo.runid) or None
        if host.owned:
            assert ns is not None and made is not None
            if isinstance(made, FileExistsError):
                raise TopologyError(f"namespace {ns} already exists", obj=ns) from None
            if isinstance(made, Exception):
                raise made
            fd, nl = made
            self.topo.hosts[host.name] = HostState(host, ns, fd, nl)
            self.request(host.name, "bringing lo up", raise_up(link_msg(1)), RTM_NEWLINK)
        elif ns is not None and not netns.exists(ns):
            raise TopologyError(
                f"host {host.name!r} adopts namespace {ns!r}, which does not "
                f"exist (see `ip netns list`)",
                obj=ns,
            )
        if not host.owned:
            fd = netns.open_fd(ns) if ns else netns.open_current()
            try:
                nl = Rtnl(fd)
            except OSError:
                os.close(fd)
                raise
            self.topo.hosts[host.name] = HostState(host, ns, fd, nl)
        if ovs.has_ovs(host):
            ovs.start(self.topo, host)  # the database starts while the links are made

    def _inside_new(self, host: Host, confs: tuple[str, ...]) -> tuple[int, Rtnl]:
        """In a namespace just made (this thread in it): its descriptor, its netlink
        socket, and IPv6 quietened in `confs` ("default": the links made later inherit
        it)."""
        fd = netns.open_current()
        try:
            nl = Rtnl()
            for path in _quiet_paths(host, confs):
                try:
                    _write_zero(path)
                except FileNotFoundError:
                    break  # a kernel without IPv6
        except BaseException:
            os.close(fd)
            raise
        return fd, nl

    def _quiet_ipv6(self, host: Host, *confs: str, undo: bool = True) -> None:
        """No DAD probes and no router solicitations unless the spec asks for them.
        `undo=False`: the settings of a link netprobe made, which go with it."""
        with netns.entered(self.state(host.name).fd):
            for path in _quiet_paths(host, confs):
                if os.path.exists(path):  # none on a kernel without IPv6
                    self._write_sysctl(host, path, "0", undo=undo)

    def _write_sysctl(self, host: Host, path: str, value: str, *, undo: bool = True) -> None:
        """Write a sysctl (this thread is in the host's namespace); remember the old value
        first where the namespace is not netprobe's."""
        if undo and not host.owned:
            with open(path) as src:
                old = src.read().strip()
            self.topo.note_undo(
                {"ns": namespace_of(host, self.topo.runid), "sysctl": path, "value": old}
            )
        with open(path, "w") as out:
            out.write(value)

    # -- links ---------------------------------------------------------------------------

    def _create_links(self) -> None:
        todo = [(h, i) for h in self.spec.hosts for i in h.interfaces]
        for cls in (Bridge, Bond):  # bridges first: a bond may be a bridge's port
            for host, iface in todo:
                if isinstance(iface.kind, cls):
                    self._create(host, iface)
        for host, iface in todo:
            if isinstance(iface.kind, Tap):
                self._create_tap(host, iface)
        done: set[tuple[str, str]] = set()
        for host, iface in todo:
            if isinstance(iface.kind, Veth) and (host.name, iface.name) not in done:
                self._create_veth(host, iface)
                done |= {(host.name, iface.name), (iface.kind.peer_host, iface.kind.peer_ifname)}
        stacked = [(h, i) for h, i in todo if isinstance(i.kind, (Macvlan, Vlan))]
        while stacked:  # parents first; a parent may itself be stacked (QinQ)
            made = {(h.name, i.name) for h, i in stacked}
            ready = [(h, i) for h, i in stacked if (h.name, i.kind.parent) not in made]  # type: ignore[union-attr]
            for host, iface in ready:
                self._create(host, iface, parent=iface.kind.parent)  # type: ignore[union-attr]
            stacked = [p for p in stacked if p not in ready]
            if not ready:
                raise TopologyError("stacked interfaces form a cycle of parents")
        for host, iface in todo:  # after the underlays they leave by (veths, stacked)
            if isinstance(iface.kind, Vxlan):
                self._create(host, iface, underlay=iface.kind.dev)

    def _up_at_once(self, host: Host, iface: Interface) -> bool:
        """Whether a link can come up in its creating request. Not a VLAN or macvlan (its
        parent may still be down: "Network is down"), nor a bond's member (a bond enslaves
        only links that are down)."""
        stacked = isinstance(iface.kind, (Vlan, Macvlan, Vxlan))
        return host.owned and iface.up and not stacked and not self._bond_member(host, iface)

    def _bond_member(self, host: Host, iface: Interface) -> bool:
        master = host.interface(iface.master) if iface.master else None
        return master is not None and isinstance(master.kind, Bond)

    def _after_create(self, host: Host, iface: Interface, configured: bool) -> None:
        """Note a new link; `configured`: its master and up state were set at creation."""
        if not host.owned:  # tag it now: a kill must not leave it unrecognisable
            tag = link_msg(
                0,
                IFLA_IFNAME=self.kname(host.name, iface.name),
                IFLA_IFALIAS=owner.link_tag(self.topo.runid),
            )
            self.request(host.name, f"tagging {host.name}:{iface.name}", tag, RTM_NEWLINK)
        if not configured or not self._up_at_once(host, iface) or iface.learning is not None:
            self.pending_up.append((host.name, iface))

    def _create(
        self, host: Host, iface: Interface, parent: str | None = None, underlay: str | None = None
    ) -> None:
        if parent or underlay:  # it may be a veth's end, made through another host's socket
            self.flush()
        kind, msg = create_message(
            iface,
            name=self.kname(host.name, iface.name),
            up=self._up_at_once(host, iface),
            master_index=self.master_index(host, iface),
            parent_index=self.index(host.name, parent) if parent else None,
            underlay_index=self.index(host.name, underlay) if underlay else None,
            index=self.give_index(host, iface),
        )
        feature = kind
        if isinstance(iface.kind, Bridge) and iface.kind.vlan_filtering:
            feature = "bridge vlan_filtering"  # what EOPNOTSUPP means here
        what = f"creating {kind} {host.name}:{iface.name}"
        self.request(host.name, what, msg, RTM_NEWLINK, CREATE, obj=iface.name, kind=feature)
        self._after_create(host, iface, configured=True)

    def _create_veth(self, host: Host, iface: Interface) -> None:
        assert isinstance(iface.kind, Veth)
        far_host = self.spec.host(iface.kind.peer_host)
        far = far_host.interface(iface.kind.peer_ifname) or Interface(iface.kind.peer_ifname)
        if self.master_index(far_host, far) and not self.master_index(host, iface):
            host, iface, far_host, far = far_host, far, host, iface  # the bridge's side first
        master = self.master_index(host, iface)
        far_fd = None if far_host is host else self.state(far_host.name).fd
        peer = (far, self.kname(far_host.name, far.name), far_fd)  # comes up afterwards
        _, msg = create_message(
            iface,
            name=self.kname(host.name, iface.name),
            up=self._up_at_once(host, iface),
            master_index=master,
            peer=peer,
            index=(index := self.give_index(host, iface)),
            # The kernel gives the peer its index only when the near end has one too.
            peer_index=self.give_index(far_host, far) if index else 0,
        )
        what = f"creating veth {host.name}:{iface.name} <-> {far_host.name}:{far.name}"
        obj = f"{host.name}:{iface.name}"
        self.request(host.name, what, msg, RTM_NEWLINK, CREATE, obj=obj, kind="veth")
        self._after_create(host, iface, configured=True)
        self._after_create(far_host, far, configured=False)

    def _create_tap(self, host: Host, iface: Interface) -> None:
        name = self.kname(host.name, iface.name)
        try:
            fd = open_tap(self.state(host.name).fd, name)
        except OSError as exc:
            raise TopologyError(
                f"creating tap {host.name}:{iface.name}: {exc.strerror}",
                errno=exc.errno,
                obj=iface.name,
            ) from exc
        self.topo.taps[(host.name, iface.name)] = fd
        self._after_create(host, iface, configured=False)  # mac, mtu, master: by netlink

    def _configure_links(self) -> None:
        """What creation could not do: late masters, port flags, tags, and bringing up."""
        seen: set[tuple[str, str]] = set()
        for host_name, iface in self.pending_up:
            if (host_name, iface.name) in seen:
                continue
            seen.add((host_name, iface.name))
            host = self.spec.host(host_name)
            attrs: dict[str, Any] = {"IFLA_IFNAME": self.kname(host_name, iface.name)}
            if isinstance(iface.kind, Tap):
                attrs.update(
                    {k: v for k, v in (("IFLA_ADDRESS", iface.mac), ("IFLA_MTU", iface.mtu)) if v}
                )
            master = self.master_index(host, iface)
            if master is not None:
                attrs["IFLA_MASTER"] = master
            if not host.owned:
                self._quiet_ipv6(host, self.kname(host_name, iface.name), undo=False)
            if master is not None and self._bond_member(host, iface):
                enslave = link_msg(0, IFLA_IFNAME=attrs["IFLA_IFNAME"], IFLA_MASTER=master)
                self.request(host_name, f"enslaving {host_name}:{iface.name}", enslave, RTM_NEWLINK)
                del attrs["IFLA_MASTER"]  # a bond refuses master and up in one request
            msg = link_msg(0, **attrs)  # found by name: no index lookup needed
            self.request(
                host_name,
                f"configuring {host_name}:{iface.name}",
                raise_up(msg) if iface.up else msg,
                RTM_NEWLINK,
            )
            if iface.learning is not None:
                port = link_msg(
                    0,
                    IFLA_IFNAME=attrs["IFLA_IFNAME"],
                    IFLA_LINKINFO={
                        "attrs": [
                            ("IFLA_INFO_SLAVE_KIND", "bridge"),
                            (
                                "IFLA_INFO_SLAVE_DATA",
                                {"attrs": [("IFLA_BRPORT_LEARNING", int(iface.learning))]},
                            ),
                        ]
                    },
                )
                self.request(
                    host_name, f"setting learning on {host_name}:{iface.name}", port, RTM_NEWLINK
                )

    def _port_vlans(self) -> None:
        """VLANs of the ports of VLAN-filtering bridges (`bridge vlan add`, by netlink)."""
        for host in self.spec.hosts:
            for iface in host.interfaces:
                if not iface.vlans:
                    continue
                index = self.index(host.name, iface.name)
                what = f"setting VLANs of bridge port {host.name}:{iface.name}"
                for msg_type, msg in port_vlan_messages(index, iface.vlans):
                    with netlink_errors(what, iface.name, "bridge vlan_filtering"):
                        self.state(host.name).nl.request(msg, msg_type)

    # -- layer 3 and above ---------------------------------------------------------------

    def _addresses(self, host: Host) -> None:
        for iface in host.interfaces:
            for addr in existing.addresses_to_add(self.topo, host, iface):
                msg = address_message(self.index(host.name, iface.name), addr, dad=host.ipv6_dad)
                self.request(
                    host.name,
                    f"adding {addr} to {host.name}:{iface.name}",
                    msg,
                    RTM_NEWADDR,
                    CREATE,
                )

    def _sysctls(self, host: Host) -> None:
        if host.sysctls:  # after the addresses, as they were asked for
            self.flush(host.name)
        state = self.state(host.name)
        for key, value in host.sysctls:
            path = "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))
            try:
                with netns.entered(state.fd):
                    self._write_sysctl(host, path, value)
            except FileNotFoundError:
                raise TopologyError(
                    f"sysctl {key} does not exist in {host.name}'s namespace "
                    "(not a per-namespace sysctl, or a missing interface)",
                    obj=key,
                ) from None
            except OSError as exc:
                raise TopologyError(
                    f"setting sysctl {key}={value} in {host.name}: {exc.strerror}",
                    errno=exc.errno,
                    obj=key,
                ) from exc

    def _routes(self, host: Host) -> None:
        for route in host.routes:
            oif = self.index(host.name, route.dev) if route.dev else None
            if not host.owned and not existing.route_to_add(self.topo, host, route, oif):
                continue  # there already, and so not netprobe's to remove
            msg = route_message(route, oif)
            self.request(
                host.name, f"adding route to {route.to} in {host.name}", msg, RTM_NEWROUTE, CREATE
            )

    def _firewall(self, host: Host) -> None:
        if host.firewall:
            self.flush(host.name)
        for rules in host.firewall:
            argv = [*_FIREWALL_TOOLS[rules.kind], rules.path]
            result = self.topo.run(host.name, argv)
            if not result.ok:
                raise TopologyError(
                    f"loading {rules.path} into {host.name} with "
                    f"{argv[0]} failed:\n{result.stderr.strip()}",
                    obj=rules.path,
                )


def _quiet_paths(host: Host, confs: tuple[str, ...]) -> list[str]:
    """The paths under /proc/sys/net/ipv6/conf (a thread sees its own namespace's) of the
    sysctls that switch off DAD and router solicitations on `confs`, unless `host` asks
    for them. A link reads router_solicitations from its own conf alone: none for "all"."""
    keys = [
        k
        for k, wanted in (
            ("accept_dad", host.ipv6_dad),
            ("router_solicitations", host.ipv6_router_solicitation),
        )
        if not wanted
    ]
    return [
        f"/proc/sys/net/ipv6/conf/{c}/{k}"
        for c in confs
        for k in keys
        if not (c == "all" and k == "router_solicitations")
    ]


@functools.cache
def _fresh_confs() -> tuple[str, ...]:
    """The IPv6 confs a new namespace's quieting writes: "default", which its links
    inherit, and "all" only where new namespaces inherit it (net.core.
    devconf_inherit_init_net 1 or 3). DAD runs where all's or the link's accept_dad is
    above 0, and otherwise a new namespace starts with the kernel's own "all": 0. Read
    in the root namespace: the sysctl exists there alone (elsewhere: write "all")."""
    try:
        with open("/proc/sys/net/core/devconf_inherit_init_net") as src:
            inherits = src.read().strip() in ("1", "3")
    except OSError:
        inherits = True  # unknown: write it
    return ("default", "all") if inherits else ("default",)


def _write_zero(path: str) -> None:
    """Write "0" to sysctl `path` (os-level: half what Python's file objects cost)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)
