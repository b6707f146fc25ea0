"""ovs-lacp: an LACP bond between two Open vSwitch hosts negotiates, balances, fails over
and takes a link back.

1. Both ends negotiate: lacp/show on the bond and on the bond at its members' far ends
   says every member is `current attached`, with one partner, the far bond's system id
   (polled until then, up to `max_negotiation` seconds).
2. UDP flows of `flows` 5-tuples (one source port each) from `a` to `b` use both links:
   each flow's frames are seen coming in at the far end of the member they crossed.
3. One link is cut (the far end of the member carrying the first flow set down) while the
   flows stream, one frame every 0.5 ms in turn: the flows it carried must come back on
   the other member within `max_failover` seconds; the frames lost and the longest gap
   between their arrivals (kernel receive timestamps) are measured.
4. The link back up, the member is attached again and, once the bond has rebalanced,
   carries flows again.

On failure the LACP state of both ends names the fault: LACP off on one side, both
passive, members cabled to two different switches.
"""

from __future__ import annotations

import threading
import time

from netprobe.check import Check, Context, Param, Port, param, parse_ports, peer_port
from netprobe.errors import SpecError

from ._lacp_diagnosis import diagnose
from ._lacp_traffic import Flows
from .ovs_switch import LacpState, bond_members, bond_of, lacp_state

__all__ = ["CHECK", "run"]

_INTERVAL = 0.0005  # seconds between frames of the stream (the flows take turns)
_BEFORE = 0.2  # seconds of stream before the link is cut
_RESUMED = 20  # frames of the moved flows, sent after the cut, that prove them back
_REBALANCE = 10.0  # seconds between rebalances when the bond does not say (OVS's default)


def body(ctx: Context, *, bond: str = "server:bond0", a: str = "c1:eth0",
         b: str = "c2:eth0", flows: int | str = 16, max_failover: float | str = 1.0,
         max_negotiation: float | str = 10.0) -> None:
    """Negotiate, balance, cut a link, take it back: `bond` (HOST:BOND) carries a → b."""
    host, name, members = bond_members(ctx, bond)
    count = int(_number(flows, "flows", 2, 256))
    failover, negotiation = (_number(max_failover, "max_failover", 0, 60),
                             _number(max_negotiation, "max_negotiation", 0, 120))
    src, dst = parse_ports(ctx.topo, [a, b], at_least=2)
    keys = [f"{bond} negotiates LACP", f"flows of {count} 5-tuples use both links",
            "cutting a link moves its flows", "the link back rejoins",
            "the link back carries flows again"]
    ctx.plan(*keys)
    far = {m: peer_port(ctx.topo, Port(host, m)) for m in members}
    if not _negotiate(ctx, host, name, far, negotiation, keys[0]):
        _diagnose(ctx, host, name, far)
        return
    links = {m: p for m, p in far.items() if p is not None}
    traffic = Flows(ctx, src, dst, links, count)
    wait = _rebalance(ctx, host, name)
    on, took = _spread_over(traffic, members, wait)
    ctx.record(f"flows of {count} 5-tuples use both links of {bond}", all(on.values()),
               f"{_spread(on)} (after {took:.2f} s; the bond rebalances every {wait:g} s)",
               key=keys[1])
    if not all(on.values()):
        idle = ", ".join(m for m in members if not on[m])
        ctx.diagnose(f"{bond} sent no flow of {count} over {idle} in {wait + 2:g} s: its "
                     "flows are not balanced over the members")
    cut = next((m for m in members if on[m]), members[0])
    _cut(ctx, traffic, cut, links[cut], failover, keys[2])
    _rejoin(ctx, traffic, (host, name), cut, negotiation, keys[3:])


def _number(value: float | int | str, what: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SpecError(f"{what} must be a number, not {value!r}") from None
    if not low < number <= high:
        raise SpecError(f"{what} must be {low:g}..{high:g}, not {value!r}")
    return number


def _far_bonds(ctx: Context, far: dict[str, Port | None]) -> dict[str, tuple[str, str] | None]:
    """Member → (host, bond) at its far end, or None (no veth, or no OVS bond there)."""
    found: dict[str, tuple[str, str] | None] = {}
    for member, port in far.items():
        name = bond_of(ctx, port.host, port.ifname) if port else None
        found[member] = (port.host, name) if port and name else None
    return found


def _negotiated(ctx: Context, host: str, name: str,
                partners: dict[str, tuple[str, str] | None]) -> tuple[bool, list[str]]:
    """(both ends agree, what lacp/show says of each end)."""
    near = lacp_state(ctx, host, name)
    ends = {(host, name): near} | {
        p: lacp_state(ctx, *p) for p in dict.fromkeys(partners.values()) if p is not None}
    seen = [_described(f"{h}:{n}", s) for (h, n), s in ends.items()]
    if near is None or None in partners.values() or len(set(partners.values())) != 1:
        return False, seen
    far = ends[next(iter(partners.values()))]  # type: ignore[index]
    ok = far is not None and all(
        s.negotiated and all(m.attached for m in s.members.values())
        for s in (near, far)) and {m.partner for m in near.members.values()} == {far.sys_id} \
        and {m.partner for m in far.members.values()} == {near.sys_id}
    return ok, seen


def _described(end: str, state: LacpState | None) -> str:
    if state is None:
        return f"{end}: no LACP"
    members = ", ".join(f"{m} {s.state}, partner {s.partner or 'none'}"
                        for m, s in state.members.items())
    return f"{end} ({state.sys_id}) {state.status}: {members}"


def _negotiate(ctx: Context, host: str, name: str, far: dict[str, Port | None],
               limit: float, key: str) -> bool:
    """Poll both ends' LACP until they agree or `limit` seconds pass; record the step."""
    start = time.monotonic()
    while True:
        partners = _far_bonds(ctx, far)
        ok, seen = _negotiated(ctx, host, name, partners)
        took = time.monotonic() - start
        if ok or took > limit:
            break
        time.sleep(0.05)
    ends = sorted({f"{p[0]}:{p[1]}" for p in partners.values() if p})
    when = f"after {took:.2f} s" if ok else f"not in {limit:g} s"
    return ctx.record(f"{host}:{name} and {', '.join(ends) or 'no partner bond'} negotiate "
                      "LACP", ok, f"{'; '.join(seen)} ({when})", key=key)


def _spread(on: dict[str, list[int]]) -> str:
    def sports(flows: list[int]) -> str:
        return f" (sports {', '.join(str(Flows.sport(i)) for i in flows)})" if flows else ""

    return "; ".join(f"{m}: {len(f)} flow(s){sports(f)}" for m, f in on.items())


def _cut(ctx: Context, traffic: Flows, member: str, at: Port, limit: float, key: str) -> None:
    """Stream; cut the link of `member` at `at`; its flows must come back on another."""
    stop = threading.Event()
    thread = traffic.stream(stop, _INTERVAL)
    cut = None
    try:
        _watch(traffic, time.time() + _BEFORE, lambda: False)
        ctx.topo.set_link(at, up=False)
        cut = time.time()
        moved = {f for f, m in traffic.last_member(cut).items() if m == member}
        _watch(traffic, cut + limit, lambda: _back(traffic, moved, cut))
    finally:
        stop.set()
        thread.join()
        restored = time.time()
        if cut is not None:
            ctx.topo.set_link(at, up=True)
    time.sleep(0.01)  # the last frames' way across
    traffic.collect()
    _judge_cut(ctx, traffic, member, at, moved, (cut, restored, limit), key)


def _watch(traffic: Flows, until: float, done: object) -> None:
    while time.time() < until:
        traffic.collect()
        if callable(done) and done():
            return
        time.sleep(0.002)


def _back(traffic: Flows, moved: set[int], cut: float) -> bool:
    return sum(1 for n in traffic.after(moved, cut) if n in traffic.arrived) >= _RESUMED


def _judge_cut(ctx: Context, traffic: Flows, member: str, at: Port, moved: set[int],
               times: tuple[float, float, float], key: str) -> None:
    cut, restored, limit = times
    name = f"cutting {member} (at {at}) moves its flows to the other member"
    if not moved:
        ctx.record(name, False, f"no flow crossed {member} just before the cut", key=key)
        return
    after = [n for n in traffic.after(moved, cut) if traffic.arrived.get(n, restored) < restored]
    via = sorted({traffic.via[n] for n in after if n in traffic.via})
    gap = traffic.gap(moved, cut, restored)
    lost, sent = traffic.lost(moved)
    others = set(range(traffic.count)) - moved
    lost_other, sent_other = traffic.lost(others)
    measured = (f"{len(moved)} flow(s) on {member}: {lost} of {sent} of their frames lost, "
                f"longest gap {gap * 1000:.1f} ms" if gap is not None else
                f"{len(moved)} flow(s) on {member}: none came back in {limit:g} s, "
                f"{lost} of {sent} frames lost")
    detail = (f"{measured}; after the cut they crossed {', '.join(via) or 'nothing'}; the "
              f"other flows lost {lost_other} of {sent_other} (a frame every "
              f"{_INTERVAL * 1000:g} ms, the flows in turn)")
    ok = gap is not None and gap <= limit and bool(via) and member not in via
    ctx.record(name, ok, detail, key=key)
    if not ok:
        ctx.diagnose(f"the flows of {member} did not move to another member of the bond "
                     f"within {limit:g} s of {at} going down: {measured}")


def _rejoin(ctx: Context, traffic: Flows, bond: tuple[str, str], member: str, limit: float,
            keys: list[str]) -> None:
    """The cut member attached again, then (after a rebalance) carrying flows."""
    host, name = bond
    start = time.monotonic()
    state = lacp_state(ctx, host, name)
    while (state is None or member not in state.members or not state.members[member].attached) \
            and time.monotonic() - start < limit:
        time.sleep(0.05)
        state = lacp_state(ctx, host, name)
    took = time.monotonic() - start
    seen = state.members[member].state if state and member in state.members else "absent"
    if not ctx.record(f"{member} rejoins {host}:{name} when its link is back",
                      seen == "current attached", f"{member}: {seen} after {took:.2f} s",
                      key=keys[0]):
        ctx.diagnose(f"{member} did not rejoin {host}:{name} in {limit:g} s: {seen}")
        return
    wait = _rebalance(ctx, host, name)
    on = _spread_over(traffic, [member], wait)[0][member]
    ctx.record(f"{member} carries flows again after rejoining", bool(on),
               f"{len(on)} of {traffic.count} flows on {member} after "
               f"{time.monotonic() - start:.2f} s (the bond rebalances every {wait:g} s)",
               key=keys[1])
    if not on:
        ctx.diagnose(f"{member} rejoined {host}:{name} but no flow moved back to it in "
                     f"{wait + 2:g} s (the bond rebalances every {wait:g} s)")


def _spread_over(traffic: Flows, members: list[str],
                 wait: float) -> tuple[dict[str, list[int]], float]:
    """Bursts of every flow until each of `members` carries one, or a rebalance (every
    `wait` s) and 2 s more have passed: a balancing bond places a flow's hash where it
    first sees it (on the members enabled then), and evens the load out when it
    rebalances. (member → its flows, seconds taken)."""
    start = time.monotonic()
    while True:
        seen = traffic.burst()
        on = {m: sorted(f for f, crossed in seen.items() if m in crossed) for m in members}
        took = time.monotonic() - start
        settled = all(len(crossed) == 1 for crossed in seen.values())  # none moved mid-burst
        if (all(on.values()) and settled) or took > wait + 2.0:
            return on, took


def _rebalance(ctx: Context, host: str, name: str) -> float:
    result = ctx.topo.ovs(host, "ovs-vsctl", "--if-exists", "get", "port", name,
                          "other_config:bond-rebalance-interval")
    try:
        return int(result.stdout.strip().strip('"')) / 1000
    except ValueError:
        return _REBALANCE


def _diagnose(ctx: Context, host: str, name: str, far: dict[str, Port | None]) -> None:
    """Name what kept the two ends from negotiating."""
    diagnose(ctx, host, name, far, _far_bonds(ctx, far))


CHECK = Check(
    name="ovs-lacp",
    summary="an LACP bond between two OVS hosts negotiates, balances, fails over, rejoins",
    body=body,
    reference="ovs-lacp.yaml",
    requires=("veth", "AF_PACKET", "ovs-vsctl"),
    params={
        "bond": Param("the OVS bond, HOST:BOND", param.port()),
        "a": Param("where the flows start, HOST:IFNAME", param.port()),
        "b": Param("where they go, HOST:IFNAME", param.port()),
        "flows": Param("how many 5-tuples (default 16)", param.number(2, 256)),
        "max_failover": Param("seconds the cut link's flows may stop (default 1)",
                              param.number(0, 60)),
        "max_negotiation": Param("seconds LACP may take to agree (default 10)",
                                 param.number(0, 120)),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
