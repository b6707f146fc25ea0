"""YAML topology files → `Spec`, with the file and line of every problem.

The loader walks PyYAML's node tree rather than the plain data so that it can refuse
duplicate keys (which PyYAML silently merges) and point at lines. Whatever the input,
it returns a valid Spec or raises SpecError.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any, TypeVar

import yaml

from ..._inputfile import read_input
from ...errors import SpecError
from . import dhcp
from .impair import Impair
from .observed import observed, observed_host
from .spec import (
    Bond,
    Bridge,
    BridgeVlan,
    DhcpServer,
    Firewall,
    Host,
    Interface,
    Kind,
    Macvlan,
    OvsBond,
    OvsBridge,
    OvsVxlan,
    Route,
    SdnController,
    Spec,
    Tap,
    Veth,
    Vlan,
    Vxlan,
)
from .validate import validate

T = TypeVar("T")

_TOP_KEYS = {"name", "description", "hosts"}
_HOST_KEYS = {
    "interfaces",
    "routes",
    "sysctls",
    "firewall",
    "adopt",
    "root",
    "ipv6_dad",
    "ipv6_router_solicitation",
    "observed",
    "dhcp_servers",
    "controllers",
}
_IFACE_KEYS = {
    "addresses", "master", "learning", "mac", "mtu", "up", "vlans", "tag", "trunks", "observed",
    "dhcp", "impair",
}
_KINDS: dict[str, tuple[Callable[..., Kind], set[str]]] = {
    "veth": (Veth, {"peer"}),
    "bridge": (Bridge, {"stp", "ageing", "forward_delay", "vlan_filtering"}),
    "tap": (Tap, set()),
    "macvlan": (Macvlan, {"parent", "mode"}),
    "vlan": (Vlan, {"parent", "id", "protocol"}),
    "bond": (Bond, {"mode", "miimon"}),
    "ovs": (OvsBridge, {"flows", "controller", "fail_mode"}),
    "ovs_bond": (OvsBond, {"mode", "lacp", "lacp_time", "rebalance_interval"}),
    "vxlan": (Vxlan, {"id", "remote", "local", "dstport", "dev", "learning"}),
    "ovs_vxlan": (OvsVxlan, {"remote", "key", "local", "dstport"}),
}
_IMPAIR_NEEDS = {"burst": "rate", "latency": "rate", "limit": "rate", "jitter": "delay",
                 "reorder": "delay"}  # fmt: skip
_VLAN_KEYS = {"id", "pvid", "untagged"}
_ROUTE_KEYS = {"to", "via", "dev", "metric"}
_DHCP_KEYS = {"interface", "range", "lease_time", "router", "dns"}
_CONTROLLER_KEYS = {"name", "listen", "flows"}
_FIREWALL_KINDS = ("nft", "iptables", "ip6tables")


def load(path: str | os.PathLike[str]) -> Spec:
    """Read a topology file. Raises SpecError naming the file and line of any problem."""
    path = os.fspath(path)
    return loads(read_input(path, "topology file"), source=path)


def as_spec(spec_or_path: Spec | str | os.PathLike[str]) -> Spec:
    """A Spec as it is, or the topology file it names loaded: what every caller that
    takes either builds."""
    return spec_or_path if isinstance(spec_or_path, Spec) else load(spec_or_path)


def loads(text: str, *, source: str | None = None) -> Spec:
    """Parse topology YAML from a string; relative ruleset paths resolve against `source`."""
    reader = _Reader(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SpecError(
            f"invalid YAML: {exc.problem or exc.context}",
            file=source,
            line=mark.line + 1 if mark else None,
        ) from None
    except (yaml.YAMLError, ValueError) as exc:
        raise SpecError(f"invalid YAML: {exc}", file=source) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise _too_deep(text, source) from None
    if root is None:
        raise SpecError("the topology file is empty", file=source)
    spec = reader.spec(root)
    try:
        return validate(spec)
    except SpecError as exc:
        raise SpecError(exc.reason, file=source, line=reader.line_of(exc.path)) from None


_MAX_DEPTH = 100  # said when PyYAML runs out of stack: no topology nests a tenth of that


def _too_deep(text: str, source: str | None) -> SpecError:
    """Where `text` nests deeper than _MAX_DEPTH, found by the (iterative) scanner."""
    opening = (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken,
               yaml.BlockSequenceStartToken, yaml.BlockMappingStartToken)  # fmt: skip
    closing = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)
    depth, line = 0, None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            depth += isinstance(token, opening) - isinstance(token, closing)
            if depth > _MAX_DEPTH:
                line = token.start_mark.line + 1
                break
    except yaml.YAMLError:
        pass
    return SpecError(f"invalid YAML: nested deeper than {_MAX_DEPTH} levels", file=source,
                     line=line)


class _Reader:
    """Turns nodes into spec objects while recording the line of every path."""

    def __init__(self, source: str | None) -> None:
        self.source = source
        self.base = os.path.dirname(os.path.abspath(source)) if source else os.getcwd()
        self.lines: dict[tuple[str, ...], int] = {}
        self._constructor = yaml.SafeLoader("")

    # -- helpers -------------------------------------------------------------------------

    def error(self, node: yaml.Node, message: str) -> SpecError:
        return SpecError(message, file=self.source, line=node.start_mark.line + 1)

    def line_of(self, path: tuple[str, ...]) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def mapping(
        self, node: yaml.Node, what: str, allowed: set[str], path: tuple[str, ...]
    ) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping")
        out: dict[str, yaml.Node] = {}
        for key_node, value in node.value:
            key = self.scalar(key_node, f"a key in {what}")
            if not isinstance(key, str):
                raise self.error(key_node, f"keys in {what} must be names, not {key!r}")
            if allowed and key not in allowed:
                raise self.error(
                    key_node,
                    f"unknown key {key!r} in {what} "
                    f"(expected one of: {', '.join(sorted(allowed))})",
                )
            if key in out:
                raise self.error(key_node, f"duplicate key {key!r} in {what}")
            out[key] = value
            self.lines[(*path, key)] = key_node.start_mark.line + 1
        return out

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"{what} must be a list")
        return list(node.value)

    def scalar(self, node: yaml.Node, what: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, f"{what} must be a single value")
        try:
            return self._constructor.construct_object(node, deep=True)
        except Exception as exc:  # a tagged scalar (!!bool foo) makes PyYAML raise anything
            raise self.error(node, f"bad value for {what}: {exc}") from None

    def typed(self, node: yaml.Node, what: str, *types: type) -> Any:
        value = self.scalar(node, what)
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            names = " or ".join(t.__name__.replace("str", "text") for t in types)
            raise self.error(node, f"{what} must be {names}, not {value!r}")
        return value

    def build(
        self, node: yaml.Node, factory: Callable[..., T], at: tuple[str, ...] = (), **kw: Any
    ) -> T:
        """Construct a spec object; its complaints point at the key of `at`, else at `node`."""
        try:
            return factory(**kw)
        except (SpecError, TypeError) as exc:  # TypeError: a required key is missing
            line = self.lines.get(at) if at else None
            if line is None:
                raise self.error(node, str(exc)) from None
            raise SpecError(str(exc), file=self.source, line=line) from None

    def address(self, node: yaml.Node) -> str:
        text: str = self.typed(node, "an address", str)
        try:
            ipaddress.ip_interface(text)
        except ValueError:
            raise self.error(
                node, f"bad address {text!r}: expected CIDR like 10.0.0.1/24"
            ) from None
        return text

    # -- the schema ----------------------------------------------------------------------

    def spec(self, node: yaml.Node) -> Spec:
        top = self.mapping(node, "the topology", _TOP_KEYS, ())
        if "hosts" not in top:
            raise self.error(node, "the topology has no `hosts`")
        default = os.path.splitext(os.path.basename(self.source))[0] if self.source else "topology"
        name = self.typed(top["name"], "name", str) if "name" in top else default
        if "description" in top:
            self.typed(top["description"], "description", str)
        hosts_node = self.mapping(top["hosts"], "hosts", set(), ("hosts",))
        hosts = [self.host(n, v) for n, v in hosts_node.items()]
        return self.build(node, Spec, name=name, hosts=hosts, source=self.source)

    def host(self, name: str, node: yaml.Node) -> Host:
        path = ("hosts", name)
        if isinstance(node, yaml.ScalarNode) and self.scalar(node, "host") is None:
            return self.build(node, Host, name=name)  # `red:` alone: an empty host
        raw = self.mapping(node, f"host {name!r}", _HOST_KEYS, path)
        kwargs: dict[str, Any] = {"name": name}
        if "interfaces" in raw:
            ifaces = self.mapping(
                raw["interfaces"], f"interfaces of {name!r}", set(), (*path, "interfaces")
            )
            kwargs["interfaces"] = [
                self.interface(n, v, (*path, "interfaces", n)) for n, v in ifaces.items()
            ]
        if "routes" in raw:
            kwargs["routes"] = [
                self.route(r, (*path, "routes", str(i)))
                for i, r in enumerate(self.sequence(raw["routes"], "routes"))
            ]
        if "sysctls" in raw:
            table = self.mapping(raw["sysctls"], "sysctls", set(), (*path, "sysctls"))
            kwargs["sysctls"] = [
                (k, self.typed(v, f"sysctl {k}", str, int, float, bool)) for k, v in table.items()
            ]
        if "firewall" in raw:
            kwargs["firewall"] = self.firewall(raw["firewall"], (*path, "firewall"))
        if "adopt" in raw:
            kwargs["adopt"] = self.typed(raw["adopt"], "adopt", str)
        for flag in ("root", "ipv6_dad", "ipv6_router_solicitation"):
            if flag in raw:
                kwargs[flag] = self.typed(raw[flag], flag, bool)
        if "observed" in raw:
            kwargs["observed"] = self.observed(raw["observed"], observed_host)
        if "dhcp_servers" in raw:
            items = self.sequence(raw["dhcp_servers"], "dhcp_servers")
            kwargs["dhcp_servers"] = [
                self.dhcp_server(item, (*path, "dhcp_servers", str(i)))
                for i, item in enumerate(items)
            ]
        if "controllers" in raw:
            items = self.sequence(raw["controllers"], "controllers")
            kwargs["controllers"] = [
                self.controller(item, (*path, "controllers", str(i)))
                for i, item in enumerate(items)
            ]
        return self.build(node, Host, path, **kwargs)

    def controller(self, node: yaml.Node, path: tuple[str, ...]) -> SdnController:
        """`{name: c0, listen: tcp:127.0.0.1:6653 | unix, flows: [FLOW, ...]}`."""
        raw = self.mapping(node, "a controller", _CONTROLLER_KEYS, path)
        self.lines[path] = node.start_mark.line + 1
        if "name" not in raw:
            raise self.error(node, "a controller needs a name")
        kwargs: dict[str, Any] = {"name": self.typed(raw["name"], "name", str)}
        if "listen" in raw:
            kwargs["listen"] = self.typed(raw["listen"], "listen", str)
        flows = [self.typed(f, "a flow", str)
                 for f in (self.sequence(raw["flows"], "controller flows")
                           if "flows" in raw else [])]
        return self.build(node, SdnController, path, flows=flows, **kwargs)

    def dhcp_server(self, node: yaml.Node, path: tuple[str, ...]) -> DhcpServer:
        """`{interface: eth0, range: A-B, lease_time: 3600, router: R, dns: [D]}`."""
        raw = self.mapping(node, "a DHCP server", _DHCP_KEYS, path)
        self.lines[path] = node.start_mark.line + 1
        missing = [k for k in ("interface", "range") if k not in raw]
        if missing:
            raise self.error(node, f"a DHCP server needs {' and '.join(missing)}")
        kwargs: dict[str, Any] = {"interface": self.typed(raw["interface"], "interface", str)}
        if isinstance(raw["range"], yaml.SequenceNode):
            ends = [self.typed(e, "a DHCP range's end", str) for e in raw["range"].value]
        else:
            ends = self.typed(raw["range"], "DHCP range", str)
        kwargs["range"] = self.build(raw["range"], dhcp.dhcp_range, value=ends)
        if "lease_time" in raw:
            value = self.typed(raw["lease_time"], "lease_time", int)
            kwargs["lease_time"] = self.build(raw["lease_time"], dhcp.lease_time, value=value)
        if "router" in raw:
            kwargs["router"] = self.build(
                raw["router"], dhcp.ipv4, value=self.typed(raw["router"], "router", str),
                what="DHCP router",
            )
        if "dns" in raw:
            node_dns = raw["dns"]
            items = node_dns.value if isinstance(node_dns, yaml.SequenceNode) else [node_dns]
            kwargs["dns"] = [
                self.build(d, dhcp.ipv4, value=self.typed(d, "dns", str), what="DHCP dns server")
                for d in items
            ]
        return self.build(node, DhcpServer, path, **kwargs)

    def observed(self, node: yaml.Node, factory: Callable[[object], T]) -> T:
        """An `observed:` block: plain data, checked by its dataclasses."""
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, "observed must be a mapping")
        try:
            data = self._constructor.construct_object(node, deep=True)
        except Exception as exc:  # a bad tag inside
            raise self.error(node, f"bad value in observed: {exc}") from None
        return self.build(node, factory, value=data)

    def interface(self, name: str, node: yaml.Node, path: tuple[str, ...]) -> Interface:
        if isinstance(node, yaml.ScalarNode) and self.scalar(node, "interface") is None:
            return self.build(node, Interface, name=name)
        raw = self.mapping(node, f"interface {name!r}", _IFACE_KEYS | set(_KINDS), path)
        kinds = [k for k in raw if k in _KINDS]
        if len(kinds) > 1:
            raise self.error(node, f"interface {name!r} has two types: {' and '.join(kinds)}")
        kwargs: dict[str, Any] = {"name": name}
        if kinds:
            kwargs["kind"] = self.kind(kinds[0], raw[kinds[0]], (*path, kinds[0]))
        if "addresses" in raw:
            kwargs["addresses"] = [
                self.address(a) for a in self.sequence(raw["addresses"], "addresses")
            ]
        if "master" in raw:
            kwargs["master"] = self.typed(raw["master"], "master", str)
        for key, types in (
            ("learning", (bool,)),
            ("up", (bool,)),
            ("dhcp", (bool,)),
            ("mac", (str,)),
            ("mtu", (int,)),
            ("tag", (int,)),
        ):
            if key in raw:
                kwargs[key] = self.typed(raw[key], key, *types)
        if "trunks" in raw:
            items = self.sequence(raw["trunks"], "trunks")
            kwargs["trunks"] = [self.typed(v, "a trunks entry", int) for v in items]
        if "vlans" in raw:
            items = self.sequence(raw["vlans"], "vlans")
            kwargs["vlans"] = [self.bridge_vlan(v) for v in items]
        if "observed" in raw:
            kwargs["observed"] = self.observed(raw["observed"], observed)
        if "impair" in raw:
            kwargs["impair"] = self.impair(raw["impair"], (*path, "impair"))
        return self.build(node, Interface, path, **kwargs)

    def impair(self, node: yaml.Node, path: tuple[str, ...]) -> Impair:
        """`{rate: 10mbit, delay: 20ms, loss: 1%}`: each value checked where it stands."""
        known = {f.name for f in fields(Impair)}
        raw = self.mapping(node, "impair", known, path)
        values = {k: self.typed(v, f"impair {k}", str, int, float) for k, v in raw.items()}
        for key, value in values.items():  # alone first, so a bad value names its own line
            needs = _IMPAIR_NEEDS.get(key)
            alone = {key: value, **({needs: values[needs]} if needs in values else {})}
            if needs is None or needs in values:
                self.build(raw[key], Impair, (*path, key), **alone)
        return self.build(node, Impair, path, **values)

    def bridge_vlan(self, node: yaml.Node) -> BridgeVlan:
        """`10` (a tagged VLAN) or `{id: 10, pvid: true, untagged: true}`."""
        if isinstance(node, yaml.ScalarNode):
            return self.build(node, BridgeVlan, id=self.typed(node, "a vlans entry", int))
        raw = self.mapping(node, "a vlans entry", _VLAN_KEYS, ())
        if "id" not in raw:
            raise self.error(node, "a vlans entry needs `id`")
        kwargs = {"id": self.typed(raw["id"], "vlan id", int)}
        kwargs.update(
            {k: self.typed(raw[k], f"vlan {k}", bool) for k in ("pvid", "untagged") if k in raw}
        )
        return self.build(node, BridgeVlan, **kwargs)

    def kind(self, kind: str, node: yaml.Node, path: tuple[str, ...]) -> Kind:
        factory, keys = _KINDS[kind]
        if kind == "veth" and isinstance(node, yaml.ScalarNode):
            return self.build(node, Veth, peer=self.typed(node, "veth peer", str))
        if isinstance(node, yaml.ScalarNode) and self.scalar(node, kind) in (None, True):
            return self.build(node, factory)  # `tap: true`, `bridge:` with defaults; or
            # "missing argument" for kinds that need settings, turned into a SpecError
        raw = self.mapping(node, kind, keys, path)
        if kind == "ovs":
            return self.ovs_bridge(node, raw)
        required = [f.name for f in fields(factory) if f.default is MISSING]  # type: ignore[arg-type]
        missing = [k for k in required if k not in raw]
        if missing:
            raise self.error(node, f"{kind} needs {', '.join(missing)}")
        kwargs = {k: self.typed(v, f"{kind} {k}", str, int, float, bool) for k, v in raw.items()}
        return self.build(node, factory, **kwargs)  # types checked by the dataclasses

    def ovs_bridge(self, node: yaml.Node, raw: dict[str, yaml.Node]) -> OvsBridge:
        flows = []
        for item in self.sequence(raw["flows"], "ovs flows") if "flows" in raw else []:
            flows.append(self.build(item, OvsBridge, flows=[self.typed(item, "a flow", str)]))
        extra = {k: self.typed(raw[k], f"ovs {k}", str)
                 for k in ("controller", "fail_mode") if k in raw}
        return self.build(node, OvsBridge, flows=[f for one in flows for f in one.flows],
                          **extra)

    def route(self, node: yaml.Node, path: tuple[str, ...]) -> Route:
        raw = self.mapping(node, "a route", _ROUTE_KEYS, path)
        self.lines[path] = node.start_mark.line + 1
        if "to" not in raw:
            raise self.error(node, "a route needs `to` (default or a CIDR network)")
        kwargs: dict[str, Any] = {
            k: self.typed(v, f"route {k}", str) for k, v in raw.items() if k != "metric"
        }
        if "metric" in raw:
            kwargs["metric"] = self.typed(raw["metric"], "route metric", int)
        return self.build(node, Route, **kwargs)

    def firewall(self, node: yaml.Node, path: tuple[str, ...]) -> list[Firewall]:
        items = self.sequence(node, "firewall") if isinstance(node, yaml.SequenceNode) else [node]
        rules = []
        for index, item in enumerate(items):
            raw = self.mapping(item, "a firewall entry", set(_FIREWALL_KINDS), (*path, str(index)))
            if len(raw) != 1:
                raise self.error(
                    item, "a firewall entry is one of nft: FILE, iptables: FILE, ip6tables: FILE"
                )
            ((kind, value),) = raw.items()
            file = os.path.join(self.base, self.typed(value, kind, str))
            self.lines[(*path, str(index))] = item.start_mark.line + 1
            rules.append(self.build(item, Firewall, kind=kind, path=file))
        return rules
