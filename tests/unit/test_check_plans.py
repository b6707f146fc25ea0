"""Checks this kernel cannot run (vlan, vlan-bridge need a full kernel) plan exactly the
steps they take: run on their reference topologies with every probe passing (no
traffic), each step is taken under a name it planned, and each planned step is taken."""

from __future__ import annotations

from typing import Any

import pytest

import netprobe
from netprobe.check import Check, Context, Port, Status, Step, load_check
from netprobe.topology import LiveHost, LiveInterface, Spec, Vlan


class _Topology:
    """The reference spec; every interface a bridge, with one MAC."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.hosts = {h.name: h for h in spec.hosts}

    def mac(self, host: str | Port, name: str | None = None) -> str:
        return "02:00:00:00:00:01"

    def live(self, host: str, *, addresses: bool = True) -> LiveHost:
        """The spec's interfaces as the kernel would list them (VLANs on their parents)."""
        ifaces = self.spec.host(host).interfaces
        index = {i.name: n for n, i in enumerate(ifaces, 1)}
        return LiveHost(host, tuple(
            LiveInterface(
                i.name, index[i.name], "vlan" if isinstance(i.kind, Vlan) else "veth",
                "02:00:00:00:00:01", 1500, True, True,
                link_index=index.get(i.kind.parent) if isinstance(i.kind, Vlan) else None,
            )
            for i in ifaces
        ))


class _Passed:
    passed = True


class _Passing(Context):
    """Every expectation passes, without sending anything."""

    def expect(self, name: str, *args: Any, key: str | None = None, **options: Any) -> Any:
        self.steps.append(Step(name, Status.PASS, key=key))
        return _Passed()

    def link(self, host: str | Port, name: str | None = None) -> dict[str, Any] | None:
        return {"linkinfo": {"info_kind": "bridge"}}


@pytest.mark.parametrize("name", ["vlan", "vlan-bridge"])
def test_a_passing_run_takes_every_planned_step_under_its_planned_name(name: str) -> None:
    check = load_check(name)
    assert isinstance(check, Check)
    ctx = _Passing(_Topology(netprobe.load(check.reference_file())))  # type: ignore[arg-type]
    check.body(ctx)
    assert ctx.steps and ctx.not_run() == []
    assert [s.id for s in ctx.steps] == ctx.planned
