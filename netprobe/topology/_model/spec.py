"""The topology spec: frozen dataclasses, built from YAML by `load` or directly in Python.

A topology is a set of hosts. Each host is a network namespace (made by netprobe, or
adopted when it already exists) holding interfaces. An interface has a kind (veth,
bridge, tap, macvlan, vlan, bond, vxlan, ovs, ovs_bond, ovs_vxlan) or none: then it is
the far end of a veth declared elsewhere, or, in an adopted host or the root one, an
interface that exists already, which netprobe uses as it finds it (adding only the
addresses and routes the spec gives). Ports of a VLAN-filtering Linux bridge list their
`vlans`; ports of an Open vSwitch bridge say `tag` (access) or `trunks`.

Constructors accept the loose forms a person writes (lists, dicts, "10.0.0.1/24" strings)
and normalise them, so that ``Host("red", interfaces=[...])`` reads naturally in Python.
Cross-references (peers, masters, parents) are checked by `validate`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ...errors import SpecError
from .dhcp import DhcpServer as DhcpServer
from .impair import Impair, impair
from .observed import Observed, ObservedHost, observed, observed_host
from .sdn import FAIL_MODES, controller_target, openflow_flow
from .sdn import SdnController as SdnController

# Links netprobe makes in the root namespace are named np + 4 hex digits + the name.
ROOT_IF_PREFIX_LEN = 6

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

MACVLAN_MODES = ("private", "vepa", "bridge", "passthru", "source")
BOND_MODES = (
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
)
OVS_BOND_MODES = ("active-backup", "balance-slb", "balance-tcp")
OVS_LACP = ("active", "passive", "off")
OVS_LACP_TIMES = ("fast", "slow")


_U32_MAX = 2**32 - 1


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass in __post_init__


@dataclass(frozen=True)
class Veth:
    """One end of a veth pair; `peer` is "HOST:IFNAME" of the other end."""

    peer: str

    @property
    def peer_host(self) -> str:
        """The host of the peer end."""
        return self.peer.partition(":")[0]

    @property
    def peer_ifname(self) -> str:
        """The interface name of the peer end."""
        return self.peer.partition(":")[2]

    def __post_init__(self) -> None:
        host, sep, ifname = str(self.peer).partition(":")
        if not sep or not host or not ifname:
            raise SpecError(f"veth peer must be HOST:IFNAME, not {self.peer!r}")


@dataclass(frozen=True)
class Bridge:
    """A Linux bridge. Times in seconds; None keeps the kernel's default."""

    stp: bool = False
    ageing: float | None = None
    forward_delay: float | None = None
    vlan_filtering: bool = False  # ports then list their `vlans`

    def __post_init__(self) -> None:
        for flag in ("stp", "vlan_filtering"):
            if not isinstance(getattr(self, flag), bool):
                raise SpecError(f"bridge {flag} must be true or false, not {getattr(self, flag)!r}")
        for name in ("ageing", "forward_delay"):
            value = getattr(self, name)
            if value is not None and (
                not _is_number(value) or not 0 <= value <= 1_000_000  # also refuses NaN, inf
            ):
                raise SpecError(f"bridge {name} must be seconds, 0 to 1000000, not {value!r}")
        if self.stp and self.forward_delay is not None and not 2 <= self.forward_delay <= 30:
            raise SpecError(  # the kernel answers ERANGE outside these under STP
                f"bridge forward_delay must be 2 to 30 seconds with stp, not {self.forward_delay!r}"
            )


@dataclass(frozen=True)
class Tap:
    """A TAP device; netprobe holds its file descriptor, playing the VM's side."""


@dataclass(frozen=True)
class Macvlan:
    """A macvlan on `parent` in `mode` (bridge by default)."""

    parent: str
    mode: str = "bridge"

    def __post_init__(self) -> None:
        if self.mode not in MACVLAN_MODES:
            raise SpecError(f"macvlan mode must be one of {', '.join(MACVLAN_MODES)}")


@dataclass(frozen=True)
class Vlan:
    """An 802.1Q (or 802.1ad) sub-interface of `parent`."""

    parent: str
    id: int
    protocol: str = "802.1Q"

    def __post_init__(self) -> None:
        if not isinstance(self.id, int) or isinstance(self.id, bool) or not 1 <= self.id <= 4094:
            raise SpecError(f"vlan id must be an integer 1..4094, not {self.id!r}")
        if self.protocol not in ("802.1Q", "802.1ad"):
            raise SpecError("vlan protocol must be 802.1Q or 802.1ad")


@dataclass(frozen=True)
class Bond:
    """A bond; its members name it as their `master`. `miimon`: milliseconds between link
    checks (without it the kernel watches no link, and active-backup never fails over)."""

    mode: str = "active-backup"
    miimon: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in BOND_MODES:
            raise SpecError(f"bond mode must be one of {', '.join(BOND_MODES)}")
        if self.miimon is not None and (
            not isinstance(self.miimon, int)
            or isinstance(self.miimon, bool)
            or not 0 <= self.miimon <= 60_000
        ):
            raise SpecError(f"bond miimon must be milliseconds, 0 to 60000, not {self.miimon!r}")


@dataclass(frozen=True)
class OvsBridge:
    """An Open vSwitch bridge (userspace `netdev` datapath), run by netprobe's own daemons
    inside the host. `flows`: when given, the bridge's whole OpenFlow table (ovs-ofctl
    syntax); without them it keeps OVS's default `priority=0,actions=NORMAL`.
    `controller`: the OpenFlow controller it connects to, which then owns its flows;
    `fail_mode`: what it does while that controller is gone (secure: nothing new is
    forwarded; standalone: it falls back to MAC learning)."""

    flows: tuple[str, ...] = ()
    controller: str | None = None  # a controller of the host by name, tcp:IP:PORT, unix:PATH
    fail_mode: str | None = None  # secure | standalone (None: OVS's default, standalone)

    def __post_init__(self) -> None:
        _set(self, "flows", tuple(openflow_flow(f) for f in _tuple(self.flows, "ovs flows")))
        if self.controller is not None and ":" in str(self.controller):
            controller_target(self.controller)
        elif self.controller is not None and (not isinstance(self.controller, str)
                                              or not self.controller):
            raise SpecError(f"an OVS controller is a name, tcp:IP:PORT or unix:PATH, "
                            f"not {self.controller!r}")
        if self.fail_mode is not None and self.fail_mode not in FAIL_MODES:
            raise SpecError(f"ovs fail_mode must be one of {', '.join(FAIL_MODES)}, "
                            f"not {self.fail_mode!r}")


@dataclass(frozen=True)
class OvsBond:
    """A bond port of an OVS bridge (its `master`); its members name it as theirs.
    `lacp`: active, passive or off; None (the default) is active for balance-tcp, which
    needs LACP, and off otherwise. `lacp_time`: fast (a LACPDU every second, so a partner
    lost is noticed in 3 s) or slow (every 30 s, OVS's default). `rebalance_interval`:
    milliseconds between a balancing bond's moves of flows between members (OVS's
    default 10000; 0: never), which is also when a member back from a failure gets some."""

    mode: str = "active-backup"
    lacp: str | None = None
    lacp_time: str = "slow"
    rebalance_interval: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in OVS_BOND_MODES:
            raise SpecError(f"ovs_bond mode must be one of {', '.join(OVS_BOND_MODES)}")
        if self.lacp is False:  # type: ignore[comparison-overlap]  # YAML reads `off` as false
            _set(self, "lacp", "off")
        if self.lacp is not None and self.lacp not in OVS_LACP:
            raise SpecError(f"ovs_bond lacp must be one of {', '.join(OVS_LACP)}")
        if self.lacp_time not in OVS_LACP_TIMES:
            raise SpecError(f"ovs_bond lacp_time must be one of {', '.join(OVS_LACP_TIMES)}")
        value = self.rebalance_interval
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 0 <= value <= 10_000):
            raise SpecError(f"ovs_bond rebalance_interval must be milliseconds, 0 to 10000, "
                            f"not {value!r}")

    @property
    def lacp_mode(self) -> str:
        """The LACP mode OVS is given: `lacp`, or what the bond mode implies."""
        return self.lacp or ("active" if self.mode == "balance-tcp" else "off")


def _vni(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**24 - 1:
        raise SpecError(f"{what} must be a VXLAN network identifier 0..16777215, not {value!r}")
    return value


def _ipv4(value: object, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise SpecError(f"{what} must be an IPv4 address, not {value!r}") from None


def _udp_port(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise SpecError(f"{what} must be a UDP port 1..65535, not {value!r}")
    return value


@dataclass(frozen=True)
class Vxlan:
    """A kernel VXLAN device: frames it sends leave `dev` (the underlay) inside UDP to
    `remote` (port `dstport`), tagged with VNI `id`. `learning`: learn remote MACs from
    what arrives (off: unknown destinations go to `remote`)."""

    id: int
    remote: str | None = None
    local: str | None = None
    dstport: int = 4789
    dev: str | None = None
    learning: bool = False

    def __post_init__(self) -> None:
        _vni(self.id, "vxlan id")
        for name in ("remote", "local"):
            value = getattr(self, name)
            if value is not None:
                _set(self, name, _ipv4(value, f"vxlan {name}"))
        _udp_port(self.dstport, "vxlan dstport")
        if not isinstance(self.learning, bool):
            raise SpecError(f"vxlan learning must be true or false, not {self.learning!r}")


@dataclass(frozen=True)
class OvsVxlan:
    """A VXLAN port of an OVS bridge (its `master`): OVS's own tunnel, on the userspace
    datapath, to `remote` with VNI `key`; the underlay address must be on an OVS bridge
    of the same host (how userspace tunnelling finds its route and neighbour)."""

    remote: str
    key: int
    local: str | None = None
    dstport: int = 4789

    def __post_init__(self) -> None:
        _set(self, "remote", _ipv4(self.remote, "ovs_vxlan remote"))
        if self.local is not None:
            _set(self, "local", _ipv4(self.local, "ovs_vxlan local"))
        _vni(self.key, "ovs_vxlan key")
        _udp_port(self.dstport, "ovs_vxlan dstport")


Kind = Veth | Bridge | Tap | Macvlan | Vlan | Bond | OvsBridge | OvsBond | Vxlan | OvsVxlan
_KINDS = (Veth, Bridge, Tap, Macvlan, Vlan, Bond, OvsBridge, OvsBond, Vxlan, OvsVxlan)


def _vlan_id(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 4094:
        raise SpecError(f"{what} must be a VLAN id 1..4094, not {value!r}")
    return value


@dataclass(frozen=True)
class BridgeVlan:
    """A VLAN on a port of a VLAN-filtering Linux bridge. `pvid`: untagged frames coming
    in join this VLAN; `untagged`: frames of this VLAN leave the port without a tag."""

    id: int
    pvid: bool = False
    untagged: bool = False

    def __post_init__(self) -> None:
        _vlan_id(self.id, "vlan id")
        for flag in ("pvid", "untagged"):
            if not isinstance(getattr(self, flag), bool):
                raise SpecError(f"vlan {flag} must be true or false")


def _bridge_vlan(value: object) -> BridgeVlan:
    """A BridgeVlan, or a bare id (a tagged VLAN)."""
    if isinstance(value, BridgeVlan):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"id", "pvid", "untagged"}
        if unknown or "id" not in value:
            raise SpecError(f"a vlans entry is {{id, pvid, untagged}}, not {dict(value)!r}")
        return BridgeVlan(**value)
    return BridgeVlan(_vlan_id(value, "vlans entry"))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _address(value: object) -> IPInterface:
    try:
        return ipaddress.ip_interface(str(value) if not isinstance(value, str) else value)
    except ValueError:
        raise SpecError(f"bad address {value!r}: expected CIDR like 10.0.0.1/24") from None


def _tuple(value: Iterable[Any] | None, what: str) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)):
        raise SpecError(f"{what} must be a list")
    return tuple(value)


@dataclass(frozen=True)
class Interface:
    """An interface of a host. `kind=None`: the far end of a veth declared elsewhere, or
    (when no veth leads to it, in a host netprobe does not own) one that exists already."""

    name: str
    kind: Kind | None = None
    addresses: tuple[IPInterface, ...] = ()
    master: str | None = None
    learning: bool | None = None
    mac: str | None = None
    mtu: int | None = None
    up: bool = True
    vlans: tuple[BridgeVlan, ...] = ()  # on a port of a VLAN-filtering Linux bridge
    tag: int | None = None  # on a port of an OVS bridge: an access port of this VLAN
    trunks: tuple[int, ...] = ()  # on a port of an OVS bridge: a trunk of these VLANs
    observed: Observed | None = None  # an existing interface as discovery found it
    dhcp: bool = False  # a DHCP client (busybox udhcpc) runs here; on a TAP, the VM's side
    impair: Impair | None = None  # rate limit (tbf), delay, loss … (netem) on what it sends

    def __post_init__(self) -> None:
        if self.impair is not None:
            _set(self, "impair", impair(self.impair))
        if self.observed is not None:
            _set(self, "observed", observed(self.observed))
        if not isinstance(self.dhcp, bool):
            raise SpecError(f"dhcp must be true or false, not {self.dhcp!r}")
        _set(self, "addresses", tuple(_address(a) for a in _tuple(self.addresses, "addresses")))
        _set(self, "vlans", tuple(_bridge_vlan(v) for v in _tuple(self.vlans, "vlans")))
        trunks = _tuple(self.trunks, "trunks")
        _set(self, "trunks", tuple(_vlan_id(v, "trunks entry") for v in trunks))
        if self.tag is not None:
            _vlan_id(self.tag, "tag")
        if self.mtu is not None and (not isinstance(self.mtu, int) or not 68 <= self.mtu <= 65535):
            raise SpecError(f"mtu must be an integer 68..65535, not {self.mtu!r}")
        if self.mtu is not None and self.mtu < 1280 and any(a.version == 6 for a in self.addresses):
            raise SpecError(  # the kernel answers a bare EINVAL
                f"mtu {self.mtu} is below 1280, the least IPv6 takes: no IPv6 addresses here"
            )
        if self.learning is not None and not isinstance(self.learning, bool):
            raise SpecError("learning must be true or false")
        if self.mac is not None and not _is_mac(self.mac):
            raise SpecError(f"bad MAC address {self.mac!r}")
        if self.mac is not None and int(self.mac[:2], 16) & 1:
            raise SpecError(f"MAC address {self.mac} is a multicast address")
        if self.kind is not None and not isinstance(self.kind, _KINDS):
            raise SpecError(
                f"interface type must be Veth, Bridge, Tap, Macvlan, Vlan, Bond, Vxlan, OvsBridge, "
                f"OvsBond or OvsVxlan, not {self.kind!r}"
            )


def _is_mac(value: object) -> bool:
    parts = str(value).split(":")
    return len(parts) == 6 and all(len(p) == 2 and _is_hex(p) for p in parts)


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Route:
    """`to` is "default" or a network in CIDR form; give `via`, `dev`, or both."""

    to: str
    via: str | None = None
    dev: str | None = None
    metric: int | None = None

    def __post_init__(self) -> None:
        if self.via is None and self.dev is None:
            raise SpecError("a route needs `via` or `dev`")
        if self.to not in ("default", "default6"):
            try:
                ipaddress.ip_network(self.to, strict=False)
            except ValueError:
                raise SpecError(f"bad route destination {self.to!r}") from None
        if self.via is not None:
            try:
                ipaddress.ip_address(self.via)
            except ValueError:
                raise SpecError(f"bad gateway address {self.via!r}") from None
        if self.metric is not None and (
            not isinstance(self.metric, int)
            or isinstance(self.metric, bool)
            or not 0 <= self.metric <= _U32_MAX  # the kernel's priority is 32 bits
        ):
            raise SpecError(
                f"route metric must be an integer 0..{_U32_MAX}, not {self.metric!r}"
            )
        if self.via is not None and ipaddress.ip_address(self.via).version != self.family:
            raise SpecError(
                f"route to {self.to} via {self.via}: the gateway's address family "
                "differs from the destination's"
            )

    @property
    def family(self) -> int:
        """4 or 6: default6 and IPv6 networks are 6; "default" follows its gateway."""
        if self.to == "default6":
            return 6
        if self.to != "default":
            return ipaddress.ip_network(self.to, strict=False).version
        return ipaddress.ip_address(self.via).version if self.via is not None else 4


@dataclass(frozen=True)
class Firewall:
    """A ruleset file loaded inside the host by `nft -f` or `iptables-restore` (ip6tables too)."""

    kind: str
    path: str

    def __post_init__(self) -> None:
        if self.kind not in ("nft", "iptables", "ip6tables"):
            raise SpecError("firewall kind must be nft, iptables or ip6tables")


@dataclass(frozen=True)
class Host:
    """A network namespace. `adopt` takes an existing one (a name in /run/netns, or
    "pid:PID": the namespace of that process); `root` is the machine's own."""

    name: str
    interfaces: tuple[Interface, ...] = ()
    routes: tuple[Route, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    firewall: tuple[Firewall, ...] = ()
    adopt: str | None = None
    root: bool = False
    ipv6_dad: bool = False
    ipv6_router_solicitation: bool = False
    observed: ObservedHost | None = None  # routes, rulesets … as discovery found them
    dhcp_servers: tuple[DhcpServer, ...] = ()  # each one dnsmasq netprobe runs in the host
    controllers: tuple[SdnController, ...] = ()  # each one OpenFlow controller (os-ken)

    def __post_init__(self) -> None:
        if self.observed is not None:
            _set(self, "observed", observed_host(self.observed))
        for name, cls in (
            ("interfaces", Interface),
            ("routes", Route),
            ("firewall", Firewall),
            ("dhcp_servers", DhcpServer),
            ("controllers", SdnController),
        ):
            items = _tuple(getattr(self, name), name)
            if not all(isinstance(item, cls) for item in items):
                raise SpecError(f"{name} of host {self.name!r} must be {cls.__name__} objects")
            _set(self, name, items)
        sysctls: Any = self.sysctls
        pairs = sysctls.items() if isinstance(sysctls, Mapping) else _tuple(sysctls, "sysctls")
        _set(self, "sysctls", tuple((str(k), _sysctl_value(v)) for k, v in pairs))

    def interface(self, name: str) -> Interface | None:
        """The interface `name` of this host (None when it has none)."""
        return next((i for i in self.interfaces if i.name == name), None)

    @property
    def owned(self) -> bool:
        """True when netprobe makes (and removes) this host's namespace."""
        return self.adopt is None and not self.root


def _sysctl_value(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise SpecError(f"sysctl value must be a number or a string, not {value!r}")


@dataclass(frozen=True)
class Spec:
    """A whole topology. `source` is the file it came from, if any."""

    name: str
    hosts: tuple[Host, ...] = ()
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        hosts = _tuple(self.hosts, "hosts")
        if not all(isinstance(host, Host) for host in hosts):
            raise SpecError("hosts must be Host objects")
        _set(self, "hosts", hosts)

    def host(self, name: str) -> Host:
        """The host `name`; raises KeyError when there is none."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    @cached_property
    def existing(self) -> frozenset[tuple[str, str]]:
        """(host, interface) of every interface the spec uses as it exists: no type, no
        veth of the spec leading to it, in a host netprobe does not own (adopted, root)."""
        ends = {
            (i.kind.peer_host, i.kind.peer_ifname)
            for h in self.hosts
            for i in h.interfaces
            if isinstance(i.kind, Veth)
        }
        return frozenset(
            (h.name, i.name)
            for h in self.hosts
            if not h.owned
            for i in h.interfaces
            if i.kind is None and (h.name, i.name) not in ends
        )
