"""Why a DHCP exchange across a bridge failed, as the dhcp check names it: a client port
off the bridge, an nft rule that drops DHCP, a server that is not there, listens
elsewhere or has no address left, a server that is not the one expected."""

from __future__ import annotations

import ipaddress
import json
import re

from netprobe.check import Context, Port
from netprobe.traffic import DhcpMessage

from ._dhcp_servers import Server, active, servers


def attachment(ctx: Context, bridge: Port, port: Port, what: str) -> list[str]:
    """What keeps `port` (a TAP's VM side, or a host port whose veth ends in the bridge's
    host, or a port of the bridge's host itself) from being a forwarding port of `bridge`."""
    near = Port(port.host, port.ifname)
    if not port.vm and near.host != bridge.host:
        far = ctx.topo.peer(near)
        if far is None or far.host != bridge.host:
            return []  # not a veth into the bridge's host: nothing to read here
        near = far
    iface = ctx.topo.live(near.host, addresses=False).interface(near.ifname)
    if iface is None:
        return [f"{near} ({what}) does not exist"]
    if iface.master != bridge.ifname:
        why = "it has no master" if iface.master is None else f"its master is {iface.master}"
        return [f"{near} ({what}) is not a port of {bridge.ifname}: {why} (`ip link set "
                f"{near.ifname} master {bridge.ifname}` in {near.host})"]
    if not iface.up:
        return [f"{near} ({what}) is down"]
    if iface.port_state not in (None, "forwarding"):
        return [f"{near} ({what}) is in STP state {iface.port_state}: it forwards nothing"]
    return []


def nft_drop(ctx: Context, host: str) -> str | None:
    """The nft rule of `host` that dropped the last failed step's probe (its nft trace), or
    else a bridge-family rule read back from the ruleset that drops DHCP (UDP 67/68)."""
    failed = ctx.steps[-1] if ctx.steps else None
    explanation = getattr(failed, "explanation", None)
    for report in getattr(explanation, "nft", ()):
        verdict = report.verdict
        if report.host == host and verdict is not None and verdict.action is not None:
            return f"{host}'s nft {verdict.describe()} drops it (nft trace)"
    rule = _ruleset_rule(ctx, host)
    if rule is not None:
        return f"{host}'s nft {rule} drops DHCP (read back from its ruleset)"
    return None


_DHCP_PORTS = re.compile(r"\b(67|68|bootps|bootpc)\b")


def _ruleset_rule(ctx: Context, host: str) -> str | None:
    """A drop rule of a bridge-family table in `host` that matches UDP port 67 or 68."""
    result = ctx.topo.run(host, ["nft", "-j", "-a", "list", "ruleset"])
    if not result.ok or not result.stdout:
        return None
    listing = ctx.topo.run(host, ["nft", "-a", "list", "ruleset"]).stdout
    for item in json.loads(result.stdout).get("nftables", []):
        rule = item.get("rule")
        if not rule or rule.get("family") != "bridge":
            continue
        exprs = json.dumps(rule.get("expr", []))
        if '"drop"' in exprs and re.search(r'"(sport|dport)"', exprs) and _DHCP_PORTS.search(
                exprs):
            text = _rule_text(listing, rule.get("handle"))
            where = f"bridge {rule['table']} {rule['chain']}, handle {rule.get('handle')}"
            return f"rule `{text}` (chain {where})"
    return None


def _rule_text(listing: str, handle: object) -> str:
    for line in listing.splitlines():
        if line.rstrip().endswith(f"# handle {handle}") and "chain" not in line.split()[:1]:
            return line.split(" # handle")[0].strip()
    return "?"


def no_offer(ctx: Context, server: Port, mac: str) -> str:
    """Why nothing answered a DISCOVER from `mac` that reached `server`."""
    found = servers(ctx.topo, server.host)
    if not found:
        return (f"no DHCP server runs in {server.host}: nothing answers the DISCOVER that "
                f"reached {server}")
    serving = [s for s in found if s.serves(server.ifname)]
    if not serving:
        listens = "; ".join(f"{s.program} (pid {s.pid}) listens on {_where(s)}" for s in found)
        return (f"the DHCP server in {server.host} does not serve {server.ifname}: {listens}, "
                f"not on {server.ifname} where the DISCOVER arrived")
    return _why_silent(serving[0], server, mac)


def _where(found: Server) -> str:
    if found.interfaces:
        return ", ".join(found.interfaces)
    return "every interface but " + ", ".join(found.except_interfaces)


def _why_silent(found: Server, server: Port, mac: str) -> str:
    who = f"the DHCP server on {server} ({found.program}, pid {found.pid})"
    size = sum(_size(first, last) for first, last in found.ranges)
    pool = ", ".join(f"{a}-{b}" for a, b in found.ranges) or "(no range)"
    taken = [x for x in active(found.leases()) if x.mac != mac.lower()
             and any(_within(x.ip, r) for r in found.ranges)]
    said = [line for line in found.log_lines(mac) if "DISCOVER" in line]
    saw = ("saw the DISCOVER from " + mac + (f" (its log: {_tail(said[-1])})" if said else "")
           if said or taken else f"got the DISCOVER from {mac} (captured at {server})")
    if size and len(taken) >= size:
        held = ", ".join(f"{x.ip} to {x.mac}" for x in taken[:3])
        return (f"{who} {saw} and made no offer: its pool {pool} is full ({len(taken)} of "
                f"{size} addresses leased: {held})")
    if said and "no address" in said[-1]:
        return f"{who} {saw} and made no offer: no address available in {pool}"
    return f"{who} {saw} but made no offer (pool {pool}, {len(taken)} of {size} leased)"


def _tail(line: str) -> str:
    return line.split(": ", 1)[-1].strip()


def _size(first: str, last: str) -> int:
    return int(ipaddress.IPv4Address(last)) - int(ipaddress.IPv4Address(first)) + 1


def _within(ip: str, pool: tuple[str, str]) -> bool:
    lo, hi = (ipaddress.IPv4Address(a) for a in pool)
    return lo <= ipaddress.IPv4Address(ip) <= hi


def stranger(ctx: Context, bridge: Port, msg: DhcpMessage, server: Port) -> str:
    """Name a DHCP server that is not the expected one: its id, MAC, the bridge port it
    came in by and the host behind that port."""
    came = _fdb_port(ctx, bridge, msg.eth_src)
    behind = ctx.topo.peer(Port(bridge.host, came)) if came else None
    holder = ctx.topo.holder(msg.server_id) if msg.server_id else None
    where = f"; it came in by {bridge.ifname}'s port {came}" if came else ""
    if behind is not None:
        where += f", from {behind}"
    elif holder is not None:
        where += f", from {holder}"
    return (f"a second DHCP server answers on {bridge.ifname}: server {msg.server_id} (MAC "
            f"{msg.eth_src}) {msg.kind} {msg.yiaddr} to {msg.chaddr}{where}; the expected "
            f"server is on {server}")


def _fdb_port(ctx: Context, bridge: Port, mac: str) -> str | None:
    result = ctx.topo.run(bridge.host, ["bridge", "-j", "fdb", "show", "br", bridge.ifname])
    if not result.ok or not result.stdout.strip():
        return None
    for entry in json.loads(result.stdout):
        if entry.get("mac") == mac and entry.get("ifname"):
            return str(entry["ifname"])
    return None
