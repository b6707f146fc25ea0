"""dhcp: a VM on a bridge gets its address from the LAN's DHCP server (Proxmox bridged
mode: the VM's TAP and the uplink NIC are ports of vmbr0, the office router serves DHCP).

netprobe plays the VM's DHCP client with crafted frames (through the TAP's descriptor, or
from a host port) and watches every port that matters: the DISCOVER broadcast floods the
bridge (out of the uplink to the server, and to the other ports, as a broadcast must); the
OFFER comes back to the client's port only (a barrier proves it never left by another);
the offered address lies in the server's range, with the router, DNS and server id
expected; REQUEST and ACK likewise; then the lease is renewed (a unicast REQUEST from the
leased address, ciaddr set, ACKed; netprobe answers the server's ARP for the address, as
the VM would) and released (whenever an ACK was seen, the run passing or not). After the
expected OFFER the client's port is watched `window` s more for other servers' OFFERs,
and the servers running on the bridge's segment are read: a second one fails the check
whether or not it was fast enough to answer. Failures are named from the kernel's and the
server's state: a port not enslaved to the bridge, an nft rule that drops DHCP, no server
or one listening on another interface or address, a pool with no address left, a second
(rogue) server answering or running on the segment.
"""

from __future__ import annotations

import ipaddress
import os

from netprobe.check import Check, Context, Param, Port, Status, at_exactly, param, require_bridge
from netprobe.errors import SpecError
from netprobe.traffic import DhcpMessage, dhcp_client

from . import _dhcp_faults as faults
from ._dhcp_exchange import Answers, Watch

__all__ = ["CHECK", "run"]

OFFER_TIMEOUT = 6.0  # dnsmasq pings an address ~3 s before it offers it
ACK_TIMEOUT = 3.0
_FLOOD_TIMEOUT = 1.0
STEPS = ("discover", "offer", "offer options", "request", "ack", "ack options",
         "renew request", "renew ack")


def body(
    ctx: Context, *, client: str = "pve:tap100i0@vm", bridge: str = "pve:vmbr0",
    uplink: str = "pve:eno1", server: str = "lan:eth0", others: str = "pve:tap101i0@vm",
    range: str = "192.168.10.100-192.168.10.199", router: str = "192.168.10.1",
    dns: str = "192.168.10.1", mac: str = "", window: float = 1.0,
) -> None:
    """DISCOVER, OFFER, REQUEST, ACK, renewal; each where it must appear, none elsewhere."""
    run = _Run(ctx, client, bridge, uplink, server, others, mac)
    run.window = window
    want = wanted(range, router, dns)
    ctx.plan(*STEPS)
    try:
        _exchange(run, want)
    finally:
        run.release()


def _exchange(run: _Run, want: _Wanted) -> None:
    offer = run.discover()
    if offer is None or not run.options("offer options", offer, want):
        return
    ack = run.select(offer)
    if ack is None or not run.options("ack options", ack, want):
        return
    run.renew(ack)


def wanted(range: str, router: str, dns: str) -> _Wanted:
    """What the answers must carry, from the check's params."""
    return _Wanted(_pool(range), router, tuple(a.strip() for a in dns.split(",") if a.strip()))


def _pool(text: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    first, _, last = text.partition("-")
    try:
        return ipaddress.IPv4Address(first.strip()), ipaddress.IPv4Address(last.strip())
    except ValueError:
        raise SpecError(f"range must be FIRST-LAST (IPv4), not {text!r}") from None


class _Wanted:
    def __init__(self, pool: tuple[ipaddress.IPv4Address, ipaddress.IPv4Address],
                 router: str, dns: tuple[str, ...]) -> None:
        self.pool, self.router, self.dns = pool, router, dns

    def faults(self, msg: DhcpMessage, server_ids: list[str]) -> list[str]:
        out = []
        if not self.pool[0] <= ipaddress.IPv4Address(msg.yiaddr) <= self.pool[1]:
            out.append(f"{msg.yiaddr} is outside {self.pool[0]}-{self.pool[1]}")
        if self.router and msg.router[:1] != (self.router,):
            out.append(f"router {', '.join(msg.router) or 'none'}, not {self.router}")
        if self.dns and msg.dns != self.dns:
            out.append(f"DNS {', '.join(msg.dns) or 'none'}, not {', '.join(self.dns)}")
        if msg.server_id not in server_ids:
            out.append(f"server id {msg.server_id}, not {' or '.join(server_ids)}")
        if not msg.lease_time:
            out.append("no lease time")
        return out


class _Run:
    """One client's exchange: its ports, its xid, what it was offered."""

    def __init__(self, ctx: Context, client: str, bridge: str, uplink: str, server: str,
                 others: str, mac: str) -> None:
        self.ctx, self.topo = ctx, ctx.topo
        self.bridge = require_bridge(ctx, bridge)
        self.client, self.uplink, self.server = (Port.parse(p) for p in (client, uplink, server))
        self.others = [Port.parse(p) for p in others.split(",") if p.strip()]
        self.mac = mac.lower() or (_VM_MAC if self.client.vm else self.topo.mac(self.client))
        self.xid = int.from_bytes(os.urandom(4), "big")
        self.server_mac = self.topo.mac(self.server)
        live = self.topo.live(self.server.host).interface(self.server.ifname)
        self.server_ids = [str(a.ip) for a in (live.ipv4 if live else ())]
        self.watch = Watch(self.topo, str(self.client), self.mac, [str(p) for p in self.others])
        self.window = 1.0  # seconds watched for other servers after the expected OFFER
        self.acked: DhcpMessage | None = None  # the last ACK seen: released at the end

    def _flood(self, key: str, name: str, msg: str, requested: str | None = None,
               server_id: str | None = None) -> bool:
        """A broadcast from the client that must reach the server and every other port."""
        frame = dhcp_client(msg, self.mac, xid=self.xid, hostname="vm", requested=requested,
                            server_id=server_id)
        where = [self.server, *self.others]
        outcome = self.ctx.expect(name, frame, self.client, at_exactly(where, among=where),
                                  timeout=_FLOOD_TIMEOUT, key=key)
        self.watch.absorb(outcome)
        if not outcome.passed:
            self._not_flooded(outcome.reports[str(self.server)].copies != [])
        return outcome.passed

    def _not_flooded(self, reached_server: bool) -> None:
        found = faults.attachment(self.ctx, self.bridge, self.client, "the client's port")
        found += faults.attachment(self.ctx, self.bridge, self.uplink, "the uplink")
        rule = None if found else faults.nft_drop(self.ctx, self.bridge.host)
        for text in found or ([rule] if rule else []):
            self.ctx.diagnose(text)
        if not found and rule is None:
            where = "the other ports" if reached_server else str(self.server)
            self.ctx.diagnose(f"the broadcast from {self.client} never reached {where} "
                              f"across {self.bridge}")

    def discover(self) -> DhcpMessage | None:
        name = (f"DISCOVER from {self.client} floods {self.bridge.ifname}: out of "
                f"{self.uplink.ifname} to {self.server}" + self._and_others())
        if not self._flood("discover", name, "DISCOVER"):
            return None
        found = self.watch.answers(self.xid, {"OFFER"}, self.server_mac, OFFER_TIMEOUT,
                                   str(self.server), linger=self.window)
        return self._answered("offer", "OFFER", found, no_answer=lambda: faults.no_offer(
            self.ctx, self.server, self.mac))

    def _and_others(self) -> str:
        return f", and to {', '.join(map(str, self.others))}" if self.others else ""

    def _answered(self, key: str, kind: str, found: Answers, no_answer: object,
                  name: str | None = None) -> DhcpMessage | None:
        """Judge the server's answer: from the expected server, to the client only."""
        mine = found.first({kind}, self.server_mac)
        name = name or f"{kind} from {self.server} back to {self.client} only"
        strangers = [m for m in found.at_client if m.eth_src != self.server_mac]
        for msg in strangers[:1]:
            self.ctx.diagnose(faults.stranger(self.ctx, self.bridge, msg, self.server))
        if mine is None:
            self._unanswered(key, kind, name, found, no_answer if not strangers else None)
            return None
        if kind == "ACK":
            self.acked = mine
        if not self._alone(key, kind, name, found, strangers):
            return None
        watched = f"; no other answer in {found.watched:g} s" if found.watched else ""
        self.ctx.record(name, True, f"{mine.summary()}{watched}; barrier reached "
                        f"{', '.join(map(str, self.others)) or 'the client'}", key=key)
        return mine

    def _unanswered(self, key: str, kind: str, name: str, found: Answers,
                    no_answer: object) -> None:
        nak = found.first({"NAK"}, self.server_mac)
        why = (f"{self.server}'s server answered NAK ({nak.message or 'no message'})"
               if nak else f"no {kind} from {self.server} within the deadline")
        self.ctx.record(name, False, why, key=key)
        if nak is None and callable(no_answer):
            self.ctx.diagnose(str(no_answer()))

    def _alone(self, key: str, kind: str, name: str, found: Answers,
               strangers: list[DhcpMessage]) -> bool:
        """The answer went nowhere else, and no other server answered or serves."""
        leaked = [(p, m[0]) for p, m in found.elsewhere.items() if m]
        if leaked:
            port, msg = leaked[0]
            self.ctx.record(name, False, f"{msg.summary()} left {self.bridge.ifname} by "
                            f"{port} too, where it must not", key=key)
            self.ctx.diagnose(f"{self.bridge} sends the {kind} meant for {self.mac} out of "
                              f"{port} as well (a flooded unicast: the bridge did not learn "
                              f"{self.mac}, or ageing 0)")
            return False
        if found.barrier_missing:
            self.ctx.inconclusive(name, "the barrier never reached "
                                  f"{', '.join(found.barrier_missing)}: absence not proven",
                                  key=key)
            return False
        if strangers:
            self.ctx.record(name, False, f"{strangers[0].summary()} came too: another "
                            "server answers", key=key)
            return False
        return kind != "OFFER" or self._no_rival(key, name, found)

    def _no_rival(self, key: str, name: str, found: Answers) -> bool:
        """No other DHCP server runs on the bridge's segment (one slower than the window
        would answer some other client first)."""
        others = faults.rivals(self.ctx, self.bridge, self.server)
        if not others:
            return True
        self.ctx.record(name, False, f"no other answer in {found.watched:g} s, but another "
                        f"DHCP server runs on {self.bridge.ifname}'s segment", key=key)
        self.ctx.diagnose(f"a second DHCP server runs on {self.bridge.ifname}'s segment: "
                          f"{'; '.join(others)} (it did not answer within {found.watched:g} "
                          f"s of the expected OFFER); the expected server is on {self.server}")
        return False

    def options(self, key: str, msg: DhcpMessage, want: _Wanted) -> bool:
        bad = want.faults(msg, self.server_ids)
        name = (f"{msg.kind}: {msg.yiaddr} in {want.pool[0]}-{want.pool[1]}, router "
                f"{want.router or 'any'}, DNS {', '.join(want.dns) or 'any'}, from server "
                f"{' or '.join(self.server_ids)}")
        detail = "; ".join(bad) or (f"lease {msg.lease_time} s, mask {msg.subnet_mask}, "
                                    f"siaddr {msg.siaddr}")
        if bad:
            self.ctx.diagnose(f"{self.server}'s server {msg.kind}s {msg.yiaddr} with "
                              + "; ".join(bad))
        return self.ctx.record(name, not bad, detail, key=key)

    def select(self, offer: DhcpMessage) -> DhcpMessage | None:
        name = (f"REQUEST (selecting {offer.yiaddr} from {offer.server_id}) floods "
                f"{self.bridge.ifname} to {self.server}" + self._and_others())
        if not self._flood("request", name, "REQUEST", requested=offer.yiaddr,
                           server_id=offer.server_id):
            return None
        self.watch.leased = offer.yiaddr  # dnsmasq ARPs for it only after the ACK
        found = self.watch.answers(self.xid, {"ACK"}, self.server_mac, ACK_TIMEOUT,
                                   str(self.server))
        return self._answered("ack", "ACK", found, no_answer=None)

    def renew(self, ack: DhcpMessage) -> None:
        ip, sid = ack.yiaddr, ack.server_id or ""
        frame = dhcp_client("REQUEST", self.mac, xid=self.xid, ciaddr=ip, src_ip=ip,
                            dst_ip=sid, dst_mac=ack.eth_src)
        among = [self.server, *self.others]
        outcome = self.ctx.expect(
            f"renewal: unicast REQUEST from {ip} (ciaddr) to {sid} reaches {self.server} only",
            frame, self.client, at_exactly([self.server], among=among),
            timeout=_FLOOD_TIMEOUT, key="renew request")
        self.watch.absorb(outcome)
        if not outcome.passed:
            self._not_flooded(False)
            return
        found = self.watch.answers(self.xid, {"ACK"}, self.server_mac, ACK_TIMEOUT,
                                   str(self.server))
        got = self._answered("renew ack", "ACK", found, no_answer=None,
                             name=f"renewal ACKed by {self.server} to {self.client} only")
        if got is None:
            self.ctx.diagnose(f"{self.server}'s server did not ACK the renewal of {ip}")
        elif found.arp_answered and self.ctx.steps[-1].status is Status.PASS:
            self.ctx.steps[-1].detail += f"; its ARP for {ip} answered from {self.client}"

    def release(self) -> None:
        """Give back the address of the last ACK seen, so no lease outlives the run."""
        ack = self.acked
        if ack is None:
            return
        ip, sid = ack.yiaddr, ack.server_id or ""
        release = dhcp_client("RELEASE", self.mac, xid=self.xid, ciaddr=ip, server_id=sid,
                              src_ip=ip, dst_ip=sid, dst_mac=ack.eth_src)
        self.watch.pset.sender(str(self.client)).send(release.probe()[0])


_VM_MAC = "bc:24:11:00:01:00"  # Proxmox's OUI, as it gives a VM's NIC


CHECK = Check(
    name="dhcp",
    summary="a VM on a bridge gets, keeps and renews its address from the LAN's DHCP server",
    body=body,
    reference="proxmox-bridged.yaml",
    requires=("veth", "bridge", "tap", "AF_PACKET", "ip", "dnsmasq"),
    params={
        "client": Param("the client's port: a TAP's VM side HOST:TAP@vm, or HOST:IFNAME",
                        param.port(vm=True)),
        "bridge": Param("the bridge the client is on, HOST:BRIDGE", param.port()),
        "uplink": Param("the bridge's port toward the server, HOST:IFNAME", param.port()),
        "server": Param("the port of the expected DHCP server, HOST:IFNAME", param.port()),
        "others": Param("other ports on the bridge, which must never see the answers "
                        "(HOST:IFNAME or HOST:TAP@vm, comma-separated; empty: none)",
                        param.optional(param.port_list(minimum=1))),
        "range": Param("the server's pool, FIRST-LAST", param.text),
        "router": Param("the router option (3) expected; empty: not checked",
                        param.optional(param.ip(4))),
        "dns": Param("the DNS servers (option 6) expected, comma-separated; empty: not "
                     "checked", param.text),
        "mac": Param("the client's MAC (default: a TAP's VM bc:24:11:00:01:00, a host "
                     "port's own)", param.text),
        "window": Param("seconds the client's port is watched for other servers' OFFERs "
                        "after the expected one", param.number(0.0, 30.0)),
    },
)

run = CHECK.run
