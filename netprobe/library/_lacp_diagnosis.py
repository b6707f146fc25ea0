"""What kept two ends of an OVS LACP bond from negotiating, named from the LACP state
both report and the bond settings in their databases."""

from __future__ import annotations

from netprobe.check import Context, Port

from .ovs_switch import LacpState, lacp_state


def lacp_mode(ctx: Context, host: str, bond: str) -> str:
    """The bond's `lacp` column: active, passive or off (unset is off)."""
    result = ctx.topo.ovs(host, "ovs-vsctl", "--if-exists", "get", "port", bond, "lacp")
    value = result.stdout.strip().strip('"')
    return value if result.ok and value in ("active", "passive") else "off"


def diagnose(ctx: Context, host: str, name: str, far: dict[str, Port | None],
             partners: dict[str, tuple[str, str] | None]) -> None:
    """Diagnose a bond `host:name` whose members (→ far ends, → far bonds) did not
    negotiate LACP with one partner."""
    near = lacp_state(ctx, host, name)
    if near is None:
        ctx.diagnose(f"{host}:{name} has lacp={lacp_mode(ctx, host, name)}: no partner")
    for member, bond in partners.items():
        if far[member] is None:
            ctx.diagnose(f"{host}:{name}'s member {member} is no veth to another host")
        elif bond is None:
            ctx.diagnose(f"{host}:{name}'s member {member} leads to {far[member]}, which is "
                         "in no OVS bond: nothing there speaks LACP")
    ends = {b for b in partners.values() if b is not None}
    states = {b: lacp_state(ctx, *b) for b in ends}
    for (fhost, fbond), state in states.items():
        if state is None:
            ctx.diagnose(f"{fhost}:{fbond} has lacp={lacp_mode(ctx, fhost, fbond)}: no "
                         f"partner for {host}:{name}{_members(near)}")
    if len(ends) > 1:
        where = ", ".join(f"{m} at {far[m]} ({b[0]}:{b[1]}, system "
                          f"{_sys_id(states.get(b))})" for m, b in partners.items() if b)
        ctx.diagnose(f"{host}:{name}'s members end on different switches: {where}; LACP "
                     f"aggregates links to one partner only{_members(near)}")
    modes = {lacp_mode(ctx, *b) for b in ends}
    if near is not None and modes == {"passive"} and lacp_mode(ctx, host, name) == "passive":
        ctx.diagnose(f"{host}:{name} and its partner are both lacp=passive: neither sends "
                     "the first LACPDU")
    if not ctx.diagnoses:
        ctx.diagnose(f"{host}:{name} and its partner did not agree on an aggregate"
                     f"{_members(near)}: see the evidence")


def _sys_id(state: LacpState | None) -> str:
    return state.sys_id if state is not None else "none: no LACP"


def _members(state: LacpState | None) -> str:
    if state is None or not state.members:
        return ""
    return " (" + ", ".join(f"{m}: {s.state}" for m, s in state.members.items()) + ")"
