"""ovs-flows: an Open vSwitch bridge's OpenFlow table keeps the bad neighbour out.

Every IPv4 packet from the blocked host's address must die in the bridge, whichever host
it is sent to, while the other hosts reach each other. Each verdict rests on frames sent
into the hosts' ports and captured at the others (a negative one decided by a barrier);
ofproto/trace then names the flow the blocked host's packets meet, which is the evidence
of *why* they died, or of why they did not.
"""

from __future__ import annotations

from itertools import permutations

from netprobe.check import Check, Context, Param, Port, param, parse_ports
from netprobe.expect import at, nowhere
from netprobe.traffic import Template

from .ovs_switch import (
    Trace,
    flows,
    ipv4_address,
    require_ovs_bridge,
    switch_port,
    trace,
    udp_probe,
)

__all__ = ["CHECK", "run"]

_TIMEOUT = 0.5  # seconds for what must arrive: the userspace switch delivers in ~1 ms
_PORT = 7777


def body(ctx: Context, *, bridge: str = "switch:br0", hosts: str = "h1:eth0,h2:eth0",
         blocked: str = "bad:eth0") -> None:
    """The allowed `hosts` reach each other across `bridge`; `blocked` reaches none."""
    switch, name = require_ovs_bridge(ctx.topo, bridge)
    allowed = parse_ports(ctx.topo, hosts, at_least=2)
    (bad,) = parse_ports(ctx.topo, blocked, at_least=1)
    bad_ip = ipv4_address(ctx, bad)
    everyone = [*allowed, bad]
    traced = f"{bridge}'s flow table drops IPv4 from {bad_ip} (ofproto/trace)"
    ctx.plan(*(_switched(src, dst) for src, dst in permutations(allowed, 2)),
             *(_dropped(bad, bad_ip, dst) for dst in allowed), traced)
    for src, dst in permutations(allowed, 2):
        outcome = ctx.expect(_switched(src, dst), _probe(ctx, src, dst),
                             src, at(dst), timeout=_TIMEOUT)
        if not outcome.passed:
            _explain(ctx, switch, name, src, dst, "drops")
    for dst in allowed:
        outcome = ctx.expect(_dropped(bad, bad_ip, dst), _probe(ctx, bad, dst), bad,
                             nowhere(among=[p for p in everyone if p != bad]),
                             timeout=_TIMEOUT)
        if not outcome.passed:
            _explain(ctx, switch, name, bad, dst, "passes")
    verdict = _trace(ctx, switch, name, bad, allowed[0])
    if verdict is not None:  # else ofproto/trace gave no answer: not run
        ctx.record(traced, verdict.dropped, f"matched {verdict.rule!r}; datapath actions: "
                   f"{verdict.actions}")


def _switched(src: Port, dst: Port) -> str:
    return f"IPv4 {src} → {dst} is switched"


def _dropped(bad: Port, bad_ip: str, dst: Port) -> str:
    return f"IPv4 from {bad} ({bad_ip}) to {dst} is dropped"


def _probe(ctx: Context, src: Port, dst: Port) -> Template:
    return udp_probe(ctx, src, dst, _PORT)


def _trace(ctx: Context, switch: str, bridge: str, src: Port, dst: Port) -> Trace | None:
    """ofproto/trace of an IPv4 packet from `src` to `dst`, entering at src's OVS port."""
    flow = (f"in_port={switch_port(ctx.topo, src, switch)},udp,"
            f"dl_src={ctx.topo.mac(src)},"
            f"dl_dst={ctx.topo.mac(dst)},"
            f"nw_src={ipv4_address(ctx, src)},nw_dst={ipv4_address(ctx, dst)}")
    return trace(ctx, switch, bridge, flow)


def _explain(ctx: Context, switch: str, bridge: str, src: Port, dst: Port, wrong: str) -> None:
    """Name the flow that dropped (or passed) what it should not have."""
    found = _trace(ctx, switch, bridge, src, dst)
    table = "; ".join(flows(ctx, switch, bridge)) or "none"
    if found is None:
        ctx.diagnose(f"{switch}:{bridge} could not be traced (is ovs-vswitchd running?)")
    elif wrong == "passes" and not found.dropped:
        ctx.diagnose(f"no flow on {switch}:{bridge} drops IPv4 from {ipv4_address(ctx, src)}: its "
                     f"packets match {found.rule!r} (datapath actions: {found.actions}); "
                     f"the flow table is: {table}")
    elif wrong == "drops" and found.dropped:
        ctx.diagnose(f"{switch}:{bridge} drops IPv4 {src} → {dst} too: it matches "
                     f"{found.rule!r}, which catches more than "
                     f"{ipv4_address(ctx, src)}'s neighbour")
    else:
        ctx.diagnose(f"ofproto/trace says {switch}:{bridge} handles {src} → {dst} with "
                     f"{found.rule!r} ({found.actions}), yet the frames disagree: see the "
                     "evidence of each step")


CHECK = Check(
    name="ovs-flows",
    summary="an OVS bridge's OpenFlow table drops a blocked host's IPv4, passes the others'",
    body=body,
    reference="ovs-flows.yaml",
    requires=("veth", "AF_PACKET", "ovs-vsctl"),
    params={
        "bridge": Param("the OVS bridge, HOST:BRIDGE", param.port()),
        "hosts": Param(
            "ports of the hosts that must reach each other, HOST:IFNAME,...",
            param.port_list(minimum=2),
        ),
        "blocked": Param(
            "the port of the host whose IPv4 must be dropped, HOST:IFNAME",
            param.port(),
        ),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
