"""The JSON documents of `netprobe list --json`, `doctor --json`, `topo list --json` and
`topo show --json`: what their tables say, for programs, in the versioned family of
docs/json.md (schema: docs/netprobe-json.schema.json)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._version import __version__

if TYPE_CHECKING:
    from .._capabilities import Capability
    from ..check import Check, Registration
    from ..topology import Spec
    from ..topology._kernel.inspect import HostView
    from ..topology._kernel.owner import RunRecord

VERSION = 1


MINOR = 4  # fields added within version 1 (docs/json.md): 4, a link's qdisc


def _head(fmt: str) -> dict[str, Any]:
    return {"format": fmt, "version": VERSION, "minor": MINOR, "netprobe": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip


def checks_document(
    registrations: Mapping[str, Registration], names: Sequence[str] = ()
) -> dict[str, Any]:
    """`netprobe list --json`: each check (or those `names`), what it needs, whether this
    machine has it, and its parameters."""
    from ..check import load_check

    out: list[dict[str, Any]] = []
    for name in names or list(registrations):
        try:
            check = load_check(name)
        except Exception as exc:  # a broken third-party entry point must not hide the rest
            if names:
                raise
            out.append({"name": name, "summary": "", "reference": None, "requires": [],
                        "missing": [], "runs_here": False, "params": {},
                        "error": f"cannot load {registrations[name].target}: {exc}"})  # fmt: skip
            continue
        out.append(_check(check))
    return {**_head("netprobe-checks"), "checks": out}


def _check(check: Check) -> dict[str, Any]:
    from .._capabilities import probe
    from ._text import _no_reference

    missing = [c.name for c in probe(check.requires) if not c.present]
    no_reference = _no_reference(check)
    return {
        "name": check.name, "summary": check.summary, "reference": check.reference,
        "requires": list(check.requires), "missing": missing,
        "runs_here": not missing and not no_reference,
        "params": {k: str(v) for k, v in check.parameters().items()},
    }  # fmt: skip


def doctor_document(found: Sequence[Capability], *, root: bool) -> dict[str, Any]:
    """`netprobe doctor --json`: each kernel feature and tool, present or not, with its
    remedy; `root` false: the kernel was not probed."""
    return {
        **_head("netprobe-doctor"), "root": root,
        "capabilities": [
            {"kind": c.kind, "name": c.name, "present": c.present,
             "probed": c.present or not c.detail.startswith("not probed"),
             "detail": c.detail, "remedy": None if c.present else c.remedy}
            for c in found
        ],
    }  # fmt: skip


def runs_document(records: Sequence[RunRecord]) -> dict[str, Any]:
    """`netprobe topo list --json`: the topologies left up and the runs in progress."""
    from ..topology._kernel.owner import is_alive

    return {
        **_head("netprobe-topologies"),
        "topologies": [
            {"name": r.name, "runid": r.runid,
             "state": "persistent" if r.persistent else ("running" if is_alive(r) else "dead"),
             "owner_pid": r.pid, "spec": r.spec_path, "namespaces": dict(r.namespaces),
             "adopted": list(r.adopted)}
            for r in records
        ],
    }  # fmt: skip


def topology_document(name: str, views: Sequence[HostView], spec: Spec | None) -> dict[str, Any]:
    """`netprobe topo show NAME --json`: each host's namespace (and the command that
    enters it), links, addresses and routes as the kernel has them; the links between
    hosts and their impairments, from the spec it was built from (when there is one)."""
    return {
        **_head("netprobe-topology"), "name": name,
        "hosts": [_host(v) for v in views],
        "links": _spec_links(spec) if spec is not None else [],
    }  # fmt: skip


def _host(view: HostView) -> dict[str, Any]:
    enter = f"ip netns exec {view.namespace} $SHELL" if view.namespace else "$SHELL"
    return {
        "host": view.host, "namespace": view.namespace or None, "enter": enter,
        "adopted": view.adopted,
        "links": [
            {"name": link.name, "kind": link.kind, "up": link.up, "carrier": link.carrier,
             "mac": link.mac, "mtu": link.mtu, "master": link.master,
             "addresses": list(link.addresses), "qdisc": link.qdisc,
             **({"added": view.is_mine(link)} if view.adopted else {})}
            for link in view.links
        ],
        "routes": list(view.routes),
    }  # fmt: skip


def _spec_links(spec: Spec) -> list[dict[str, Any]]:
    """Each veth as its two ends (HOST:IF), with the impairments either end sends with."""
    from ..topology import Veth

    out = []
    for host in spec.hosts:
        for iface in host.interfaces:
            if not isinstance(iface.kind, Veth):
                continue
            far_host, _, far_name = iface.kind.peer.partition(":")
            far = next((h.interface(far_name) for h in spec.hosts if h.name == far_host), None)
            impair = {f"{host.name}:{iface.name}": iface.impair,
                      iface.kind.peer: far.impair if far is not None else None}  # fmt: skip
            out.append({
                "kind": "veth", "ends": [f"{host.name}:{iface.name}", iface.kind.peer],
                "impair": {end: _impair(i) for end, i in impair.items() if i is not None},
            })  # fmt: skip
    return out


def _impair(impair: Any) -> dict[str, str]:
    import dataclasses

    return {f.name: getattr(impair, f.name) for f in dataclasses.fields(impair)
            if getattr(impair, f.name) is not None}  # fmt: skip
