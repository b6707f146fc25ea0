"""Why a DHCP exchange across a bridge failed, as the dhcp check names it: a client port
off the bridge, an nft rule that drops DHCP, a server that is not there, listens
elsewhere or has no address left, a server that is not the one expected (one that
answered, or one that runs on the bridge's segment)."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Sequence
from typing import Any

from netprobe.check import Context, Port
from netprobe.topology import DhcpLease, RunningDhcpServer
from netprobe.traffic import DhcpMessage


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


_DHCP_PORTS = {67, 68}
_PORT_NAMES = {"bootps": 67, "bootpc": 68}
_INET_HOOKS = {"prerouting", "forward", "postrouting"}  # what br_netfilter passes through


def _ruleset_rule(ctx: Context, host: str) -> str | None:
    """A drop rule of `host` that matches UDP port 67 or 68: in a bridge-family table, or
    (bridge-nf-call-iptables=1) in an ip/inet table bridged IPv4 goes through."""
    result = ctx.topo.run(host, ["nft", "-j", "-a", "list", "ruleset"])
    if not result.ok or not result.stdout:
        return None
    items = json.loads(result.stdout).get("nftables", [])
    bridge_nf = ctx.topo.sysctl(host, "net.bridge.bridge-nf-call-iptables") == "1"
    rule = next((r for r in dhcp_drops(items, bridge_nf=bridge_nf)), None)
    if rule is None:
        return None
    text = _rule_text(ctx.topo.run(host, ["nft", "-a", "list", "ruleset"]).stdout,
                      rule.get("handle"))
    where = f"{rule['family']} {rule['table']} {rule['chain']}, handle {rule.get('handle')}"
    why = ("; bridge-nf-call-iptables=1 sends bridged IPv4 through it"
           if rule["family"] != "bridge" else "")
    return f"rule `{text}` (chain {where}{why})"


def dhcp_drops(items: Sequence[dict[str, Any]], *, bridge_nf: bool) -> list[dict[str, Any]]:
    """The rules of an `nft -j list ruleset` that drop (or reject) UDP to or from port 67
    or 68 on a path bridged DHCP takes: every bridge-family chain's; with `bridge_nf`,
    those of ip/inet chains on the prerouting, forward, postrouting hooks (and of the
    regular chains of a table that has one)."""
    chains = [i["chain"] for i in items if "chain" in i]
    seen = {(c["family"], c["table"]) for c in chains if c.get("hook") in _INET_HOOKS}
    hooked = {(c["family"], c["table"], c["name"]): c.get("hook") for c in chains}
    out = []
    for rule in (i["rule"] for i in items if "rule" in i):
        family, table = rule.get("family"), rule.get("table")
        if family != "bridge":
            hook = hooked.get((family, table, rule.get("chain")))
            reached = hook in _INET_HOOKS or (hook is None and (family, table) in seen)
            if not (bridge_nf and family in ("ip", "inet") and reached):
                continue
        exprs = rule.get("expr", [])
        if any("drop" in e or "reject" in e for e in exprs) and any(
                _matches_dhcp_port(e.get("match")) for e in exprs):
            out.append(rule)
    return out


def _matches_dhcp_port(match: Any) -> bool:
    """A `udp|th sport|dport == VALUE` match whose value (a port, set or range) holds 67
    or 68."""
    if not isinstance(match, dict) or match.get("op", "==") not in ("==", "in"):
        return False
    payload = (match.get("left") or {}).get("payload") if isinstance(
        match.get("left"), dict) else None
    if not isinstance(payload, dict) or payload.get("protocol") not in ("udp", "th") or \
            payload.get("field") not in ("sport", "dport"):
        return False
    return bool(_ports_in(match.get("right")) & _DHCP_PORTS)


def _ports_in(value: Any) -> set[int]:
    if isinstance(value, bool):
        return set()
    if isinstance(value, int):
        return {value}
    if isinstance(value, str):
        return {_PORT_NAMES[value]} if value in _PORT_NAMES else set()
    if isinstance(value, dict) and isinstance(value.get("set"), list):
        return set().union(*(_ports_in(v) for v in value["set"]))
    if isinstance(value, dict) and isinstance(value.get("range"), list):
        low, high = (next(iter(_ports_in(v)), None) for v in value["range"])
        return {p for p in _DHCP_PORTS if low is not None and high is not None
                and low <= p <= high}
    return set()


def _rule_text(listing: str, handle: object) -> str:
    for line in listing.splitlines():
        if line.rstrip().endswith(f"# handle {handle}") and "chain" not in line.split()[:1]:
            return line.split(" # handle")[0].strip()
    return "?"


def no_offer(ctx: Context, server: Port, mac: str) -> str:
    """Why nothing answered a DISCOVER from `mac` that reached `server`."""
    found = ctx.topo.dhcp_servers(server.host)
    if not found:
        return (f"no DHCP server runs in {server.host}: nothing answers the DISCOVER that "
                f"reached {server}")
    holders = _holders(ctx, server.host)
    serving = [s for s in found if s.serves(server.ifname, _held(holders, server.ifname))]
    if not serving:
        listens = "; ".join(f"{s.program} (pid {s.pid}) listens on {_where(s, holders)}"
                            for s in found)
        return (f"the DHCP server in {server.host} does not serve {server.ifname}: {listens}, "
                f"not on {server.ifname} where the DISCOVER arrived")
    return _why_silent(serving[0], server, mac)


def _holders(ctx: Context, host: str) -> dict[str, str]:
    """The interface of `host` that holds each of its IPv4 addresses, by address."""
    return {str(a.ip): i.name for i in ctx.topo.live(host).interfaces for a in i.ipv4}


def _held(holders: dict[str, str], ifname: str) -> list[str]:
    return [ip for ip, name in holders.items() if name == ifname]


def _where(found: RunningDhcpServer, holders: dict[str, str]) -> str:
    """The interfaces `found` serves, in words: by name, by listen-address (and where
    that address is), or every one but some."""
    named = list(found.interfaces) + [
        f"listen-address {a} ({holders.get(a, 'held by no interface')})"
        for a in found.listen_addresses]
    bind = f" with bind-{found.bind}" if found.listen_addresses and found.bind != "wildcard" \
        else ""
    if named:
        return ", ".join(named) + bind
    return "every interface but " + ", ".join((*found.except_interfaces,
                                               *found.no_dhcp_interfaces))


def active(leases: Sequence[DhcpLease], now: float | None = None) -> list[DhcpLease]:
    """The leases not expired."""
    now = time.time() if now is None else now
    return [x for x in leases if x.expires == 0 or x.expires > now]


def _why_silent(found: RunningDhcpServer, server: Port, mac: str) -> str:
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


def rivals(ctx: Context, bridge: Port, server: Port) -> list[str]:
    """The DHCP servers, other than the one on `server`, that serve a link on `bridge`'s
    segment: the bridge itself, and the far end of each veth enslaved to it."""
    links = [Port(bridge.host, bridge.ifname)] + [
        far for port in ctx.topo.live(bridge.host, addresses=False).ports_of(bridge.ifname)
        if (far := ctx.topo.peer(Port(bridge.host, port.name))) is not None]
    out = []
    for link in links:
        if (link.host, link.ifname) == (server.host, server.ifname):
            continue
        holders = _holders(ctx, link.host)
        for found in ctx.topo.dhcp_servers(link.host):
            if found.serves(link.ifname, _held(holders, link.ifname)):
                pool = ", ".join(f"{a}-{b}" for a, b in found.ranges) or "no DHCPv4 range"
                out.append(f"{found.program} (pid {found.pid}) in {link.host} serves {link} "
                           f"({pool})")
    return out
