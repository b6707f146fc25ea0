"""sdn: an Open vSwitch bridge run by an OpenFlow controller does what the controller says.

Three proofs, each resting on the switch's own state and on frames sent into the hosts'
ports and captured at the others (a negative verdict decided by a barrier):

1. the bridge is connected to its controller (ovs-vsctl's `is_connected`, role, state);
2. the flow the controller pushed takes effect: IPv4 from the bad neighbour is dropped
   on its way to the server while the good host's reaches it, and the drop flow is in
   the bridge's table (ovs-ofctl dump-flows: its cookie, priority and match);
3. with the controller gone (stopped: it stays stopped), fail_mode=secure forwards
   nothing new (a packet between two hosts no flow covers dies) while the flows pushed
   before stay; standalone falls back to MAC learning (the same packet is delivered, by
   OVS's own fail-open flow). The bridge's own fail mode is shown first, then the other
   one, set for the proof and put back after it (in a `finally`).

Only netprobe's own controller (a daemon of this topology) is stopped, and only a bridge
of a host netprobe owns has its fail mode switched: for anyone else's controller, or an
adopted host's bridge, the steps of 3 are SKIP with the reason, unless the
`stop_controller` param names the pid of the controller the check may stop.
"""

from __future__ import annotations

import json
import time
from typing import Any

from netprobe.check import Check, Context, Param, Port, param, parse_ports
from netprobe.expect import at, nowhere
from netprobe.traffic import Template

from .ovs_switch import flows, ipv4_address, require_ovs_bridge, switch_port, trace, udp_probe

__all__ = ["CHECK", "run"]

_TIMEOUT = 0.5  # seconds for what must arrive: the userspace switch delivers in ~1 ms
_PORT = 7778
_STATE_WAIT = 5.0  # seconds for ovs-vswitchd to report a connection made or lost
_FAIL_OPEN = "priority=15790320"  # the hidden flow of a bridge that failed open (NORMAL)


def body(ctx: Context, *, bridge: str = "switch:br0", good: str = "good:eth0",
         server: str = "server:eth0", bad: str = "bad:eth0",
         stop_controller: int | None = None) -> None:
    """`bridge` is connected to its controller, whose drop of `bad`'s IPv4 takes effect;
    with the controller gone, secure forwards nothing new and standalone learns."""
    switch, name = require_ovs_bridge(ctx.topo, bridge)
    g, s, b = (parse_ports(ctx.topo, p, at_least=1)[0] for p in (good, server, bad))
    bad_ip = ipv4_address(ctx, b)
    found = _ovs_get(ctx, switch, "bridge", name, "fail_mode")
    mode = found or "standalone"
    other = "standalone" if mode == "secure" else "secure"
    connected = f"{bridge} is connected to its controller"
    pushed = f"the controller's flow dropping IPv4 from {bad_ip} is in {bridge}'s table"
    ctx.plan(connected, _dropped(b, s), _switched(g, s), pushed,
             *(step for m in (mode, other) for step in _gone_steps(m, g, s, b)))
    state = _connection(ctx, switch, name)
    ctx.record(connected, state.get("is_connected") is True, _describe(state))
    if state.get("is_connected") is not True:
        _diagnose_connection(ctx, switch, name, state)
    _pushed_flow(ctx, switch, name, g, s, b, pushed)
    target = str(state.get("target", ""))
    refused = _refusal(ctx, switch, name, target, mode, stop_controller)
    pid = None if refused or not target else \
        ctx.topo.stop_controller(switch, target, allow=stop_controller)
    if pid is None:
        why = refused or f"no controller listens at {target or '(none configured)'} in {switch}"
        for step in (step for m in (mode, other) for step in _gone_steps(m, g, s, b)):
            ctx.skip(step, why)
        return
    try:
        for fail_mode in (mode, other):
            _set_fail_mode(ctx, switch, name, fail_mode)
            _without_controller(ctx, switch, name, fail_mode, g, s, b, pid)
    finally:  # the bridge's own mode, whatever happened: secure must not stay fail-open
        _set_fail_mode(ctx, switch, name, found)


def _gone_steps(mode: str, g: Port, s: Port, b: Port) -> list[str]:
    return [_noticed(mode), _gone(mode, g, b), *([_kept(g, s)] if mode == "secure" else [])]


def _refusal(ctx: Context, host: str, bridge: str, target: str, mode: str,
             allow: int | None) -> str | None:
    """Why the steps without the controller are not taken (None: they are): netprobe stops
    only its own controller, and switches the fail mode only of a bridge of a host it owns,
    unless `allow` names the pid of the controller it may stop."""
    remedy = ("; run the check on netprobe's reference topology, or pass "
              "-p stop_controller=PID to let it stop that controller (it is not restarted) "
              "and switch the bridge's fail mode for the proof (put back after)")
    if not target:
        return None
    foreign = ctx.topo.foreign_controller(host, target, allow=allow)
    if foreign is not None:
        return foreign + remedy
    spec = next((h for h in ctx.topo.spec.hosts if h.name == host), None)
    if allow is None and (spec is None or not spec.owned):
        return (f"{host} is a host netprobe does not own: it leaves the fail mode of {bridge} "
                f"as it is ({mode}){remedy}")
    return None


def _dropped(src: Port, dst: Port) -> str:
    return f"IPv4 {src} → {dst} is dropped by the controller's flow"


def _switched(src: Port, dst: Port) -> str:
    return f"IPv4 {src} → {dst} is delivered"


def _gone(mode: str, src: Port, dst: Port) -> str:
    verb = "is dropped (forwards nothing new)" if mode == "secure" else \
        "is delivered (falls back to learning)"
    return f"controller gone, fail_mode={mode}: IPv4 {src} → {dst}, which no flow covers, {verb}"


def _kept(src: Port, dst: Port) -> str:
    return f"controller gone, fail_mode=secure: IPv4 {src} → {dst} still meets its pushed flow"


def _probe(ctx: Context, src: Port, dst: Port) -> Template:
    return udp_probe(ctx, src, dst, _PORT)


# -- what OVS says ----------------------------------------------------------------------

def _ovs_get(ctx: Context, host: str, table: str, record: str, column: str) -> str:
    result = ctx.topo.ovs(host, "ovs-vsctl", "--timeout=30", "get", table, record, column)
    return result.stdout.strip().strip('"[]') if result.ok else ""


def _connection(ctx: Context, host: str, bridge: str) -> dict[str, Any]:
    """The bridge's (first) controller row: target, is_connected, role, status; waits
    up to _STATE_WAIT s for it to say connected (ovs-vswitchd writes it a moment late)."""
    deadline = time.monotonic() + _STATE_WAIT
    while True:
        row = _controller_row(ctx, host, bridge)
        if row.get("is_connected") is True or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


def _controller_row(ctx: Context, host: str, bridge: str) -> dict[str, Any]:
    uuid = _ovs_get(ctx, host, "bridge", bridge, "controller").split(",")[0].strip()
    if not uuid:
        return {}
    result = ctx.topo.ovs(host, "ovs-vsctl", "--timeout=30", "--format=json", "--columns="
                          "target,is_connected,role,status", "list", "controller", uuid)
    if not result.ok:
        return {}
    data = json.loads(result.stdout)
    row = dict(zip(data["headings"], data["data"][0], strict=True))
    status = row.get("status")
    row["status"] = dict(status[1]) if isinstance(status, list) and status[0] == "map" else {}
    role = row.get("role")
    row["role"] = role if isinstance(role, str) else None
    return row


def _describe(state: dict[str, Any]) -> str:
    if not state:
        return "the bridge has no controller"
    status = state["status"]
    extra = f", last_error {status['last_error']!r}" if "last_error" in status else ""
    return (f"target {state['target']}: is_connected: "
            f"{str(state.get('is_connected')).lower()}, role: {state['role'] or 'none'}, "
            f"state: {status.get('state', '?')}{extra} (ovs-vsctl list controller)")


def _diagnose_connection(ctx: Context, host: str, bridge: str, state: dict[str, Any]) -> None:
    spec = ctx.topo.spec.host(host) if host in {h.name for h in ctx.topo.spec.hosts} else None
    ours = [f"{c.name} at {c.listen}" for c in (spec.controllers if spec else ())]
    where = f"; netprobe's controllers in {host}: {', '.join(ours)}" if ours else ""
    if not state:
        ctx.diagnose(f"{host}:{bridge} has no controller configured{where}")
        return
    status = state["status"]
    ctx.diagnose(f"{host}:{bridge} is not connected to its controller at {state['target']}: "
                 f"state {status.get('state', '?')}, last_error "
                 f"{status.get('last_error', 'none')!r}{where}")


def _set_fail_mode(ctx: Context, host: str, bridge: str, mode: str) -> None:
    """Set the bridge's fail mode ("": none set, OVS's default, standalone)."""
    argv = ("set-fail-mode", bridge, mode) if mode else ("del-fail-mode", bridge)
    ctx.topo.ovs(host, "ovs-vsctl", "--timeout=30", *argv, check=True)


def _failed_open(ctx: Context, host: str, bridge: str) -> bool:
    result = ctx.topo.ovs(host, "ovs-appctl", "bridge/dump-flows", bridge)
    return result.ok and _FAIL_OPEN in result.stdout


# -- the steps --------------------------------------------------------------------------

def _pushed_flow(ctx: Context, host: str, bridge: str, g: Port, s: Port, b: Port,
                 pushed: str) -> None:
    bad_ip = ipv4_address(ctx, b)
    drop = ctx.expect(_dropped(b, s), _probe(ctx, b, s), b, nowhere(among=[g, s]),
                      timeout=_TIMEOUT)
    ctx.expect(_switched(g, s), _probe(ctx, g, s), g, at(s), timeout=_TIMEOUT)
    table = flows(ctx, host, bridge)
    mine = [f for f in table if f"nw_src={bad_ip}" in f and f.endswith("actions=drop")]
    ctx.record(pushed, bool(mine), "; ".join(mine) or f"no drop flow names nw_src={bad_ip}; "
               f"the table: {'; '.join(table) or 'empty'}")
    if drop.passed:
        return
    found = trace(ctx, host, bridge, f"in_port={switch_port(ctx.topo, b, host)},udp,"
                  f"dl_src={ctx.topo.mac(b)},dl_dst={ctx.topo.mac(s)},"
                  f"nw_src={bad_ip},nw_dst={ipv4_address(ctx, s)}")
    drops = [f for f in table if f.endswith("actions=drop")]
    met = f"; its packets meet {found.rule!r} ({found.actions})" if found else ""
    ctx.diagnose(f"the controller pushed no flow that matches the bad host {b} ({bad_ip}): "
                 f"its drop flows match {' | '.join(drops) or 'nothing (none pushed)'}, "
                 f"not nw_src={bad_ip}{met}")


def _without_controller(ctx: Context, host: str, bridge: str, mode: str, g: Port, s: Port,
                        b: Port, pid: int) -> None:
    name, noticed = _gone(mode, g, b), _noticed(mode)
    deadline = time.monotonic() + 3 * _STATE_WAIT
    while not _lost(ctx, host, bridge, mode) and time.monotonic() < deadline:
        time.sleep(0.02)
    fail_open = _failed_open(ctx, host, bridge)
    ctx.record(noticed, _lost(ctx, host, bridge, mode),
               f"controller pid {pid} stopped; {_describe(_controller_row(ctx, host, bridge))};"
               f" fail-open flow {'present' if fail_open else 'absent'} "
               "(ovs-appctl bridge/dump-flows)")
    where = nowhere(among=[s, b]) if mode == "secure" else at(b)
    outcome = ctx.expect(name, _probe(ctx, g, b), g, where, timeout=_TIMEOUT)
    if not outcome.passed:
        ctx.diagnose(f"with its controller gone, {host}:{bridge} in fail_mode={mode} "
                     f"{'forwarded' if mode == 'secure' else 'did not forward'} a packet no "
                     f"flow covers ({g} → {b}); fail-open flow "
                     f"{'present' if fail_open else 'absent'}")
    if mode == "secure":
        ctx.expect(_kept(g, s), _probe(ctx, g, s), g, at(s), timeout=_TIMEOUT)


def _noticed(mode: str) -> str:
    what = "reports it disconnected" if mode == "secure" else "has failed open"
    return f"controller gone, fail_mode={mode}: the bridge {what}"


def _lost(ctx: Context, host: str, bridge: str, mode: str) -> bool:
    if mode == "standalone":
        return _failed_open(ctx, host, bridge)
    return _controller_row(ctx, host, bridge).get("is_connected") is False


CHECK = Check(
    name="sdn",
    summary="an OVS bridge obeys its OpenFlow controller; without it, secure forwards "
            "nothing new and standalone learns",
    body=body,
    reference="sdn.yaml",
    requires=("veth", "AF_PACKET", "ovs-vsctl"),
    params={
        "bridge": Param("the OVS bridge, HOST:BRIDGE", param.port()),
        "good": Param("the port of a host allowed to reach the server", param.port()),
        "server": Param("the port of the server", param.port()),
        "bad": Param("the port of the host whose IPv4 the controller drops", param.port()),
        "stop_controller": Param(
            "the pid of a controller netprobe did not start that the check may stop (it is "
            "not restarted) and whose bridge's fail mode it may switch for the proof; "
            "without it only netprobe's own controller is stopped",
            param.optional(param.integer(1), none=None)),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
