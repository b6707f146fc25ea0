"""`Spec` → topology YAML that `load` reads back to an equal Spec.

Bug-report bundles carry the exact spec a check ran on, whether it came from a file,
was built in Python or was changed by a test. Ruleset files can be renamed on the way
(a bundle keeps its own copies under relative names).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from .load import _KINDS as _LOADER_KINDS
from .spec import Host, Interface, Spec, Veth


def dump(spec: Spec, *, rename: Callable[[str], str] | None = None) -> str:
    """YAML text of `spec`; `rename` maps each ruleset path to the one written."""
    return yaml.dump(to_data(spec, rename=rename), Dumper=_Dumper, sort_keys=False, width=100)


class _Dumper(yaml.SafeDumper):
    """Safe YAML, with text of several lines (a discovered ruleset) as a literal block."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def to_data(spec: Spec, *, rename: Callable[[str], str] | None = None) -> dict[str, Any]:
    """The plain data (dicts, lists, scalars) of the topology YAML for `spec`."""
    return {
        "name": spec.name,
        "hosts": {host.name: _host(host, rename or (lambda path: path)) for host in spec.hosts},
    }


def _host(host: Host, rename: Callable[[str], str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if host.interfaces:
        out["interfaces"] = {iface.name: _interface(iface) for iface in host.interfaces}
    if host.routes:
        out["routes"] = [_fields(route) for route in host.routes]
    if host.sysctls:
        out["sysctls"] = dict(host.sysctls)
    if host.firewall:
        out["firewall"] = [{fw.kind: rename(fw.path)} for fw in host.firewall]
    for name in ("adopt", "root", "ipv6_dad", "ipv6_router_solicitation"):
        value = getattr(host, name)
        if value != _default(Host, name):
            out[name] = value
    if host.dhcp_servers:
        out["dhcp_servers"] = [
            {**_fields(server), "range": "-".join(server.range)} for server in host.dhcp_servers
        ]
    if host.controllers:
        out["controllers"] = [_fields(c) for c in host.controllers]
    if host.observed is not None:
        seen = _fields(host.observed)
        if host.observed.sysctls:
            seen["sysctls"] = dict(host.observed.sysctls)
        out["observed"] = seen
    return out


def _interface(iface: Interface) -> dict[str, Any] | None:
    out = _fields(iface, skip=("name", "kind"))
    if iface.kind is not None:
        key = _kind_key(type(iface.kind))
        if isinstance(iface.kind, Veth):
            out = {key: iface.kind.peer, **out}
        else:
            out = {key: _fields(iface.kind) or True, **out}
    return out or None


def _kind_key(cls: type) -> str:
    """The YAML key of an interface type: the loader's table, read backwards."""
    return next(key for key, (factory, _) in _LOADER_KINDS.items() if factory is cls)


def _fields(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of a spec dataclass that differ from their defaults, as plain data."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name in skip or not f.init or value == _default(type(obj), f.name):
            continue
        out[f.name] = _plain(value)
    return out


def _default(cls: type, name: str) -> Any:
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    return dataclasses.MISSING


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return str(value)
    return value
