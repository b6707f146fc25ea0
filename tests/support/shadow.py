"""One round of the NAT selftest's port-shadow scenario, on its network (tests/peer).

ns0 masquerades what leaves by veth0. ns2 (inside) first sends a datagram from the
service port 1405 to ns1:41404: masqueraded, it leaves a conntrack entry whose reply
direction is ns1:41404 → ns0:1405. Both ns0 and ns2 then listen on 1405, and ns1 sends
to ns0:1405 from 41404. Unmitigated, conntrack takes that for the reply of ns2's flow and
hands it to ns2: the router's service is shadowed. Who answered is told by the reply
itself: the address it left from where it began (ns2's 10.0.2.99, or ns0's 10.0.1.1),
and the probe's path agrees (forwarded to ns2, or no port on ns2's link saw it).
"""

from __future__ import annotations

from netprobe.expect import HostOutcome, Match, Where, at, expect_from_host, nowhere
from netprobe.topology import Topology
from netprobe.topology._kernel import netns
from support.listener import listening

SERVICE, HIGHPORT = 1405, 41404
NS1_LINK, NS2_LINK = ("ns0:veth0", "ns1:eth0"), ("ns0:veth1", "ns2:eth0")
MASQUERADE = """table ip nat {
 chain postrouting {
  type nat hook postrouting priority 0; policy accept;
  meta oif veth0 masquerade
 }
}
"""
# The host each reply source stands for, where the reply began.
ANSWERERS = {"10.0.2.99": "ns2", "10.0.1.1": "ns0"}
FAKE_MASQUERADED = (at("ns1:eth0"), Match(src="10.0.1.1", sport=SERVICE))
FAKE_DROPPED = (nowhere(among=NS1_LINK), None)


def flush_conntrack(topo: Topology, host: str) -> None:
    """Forget every connection `host` tracks, through ctnetlink from inside its namespace
    (pyroute2, in this process: as `conntrack -F` there, without starting one)."""
    from pyroute2 import NFCTSocket

    with netns.entered(topo.fd_of(host)), NFCTSocket() as sock:
        sock.flush()


def fake_entry(topo: Topology, where: Where, match: Match | None) -> HostOutcome:
    """ns2's datagram from the service port to ns1's high port, judged by `where`."""
    return expect_from_host(
        topo, "ns2", "udp", "10.0.1.99", HIGHPORT, sport=SERVICE, where=where, match=match
    )


def answered_by(outcome: HostOutcome) -> str | None:
    """The host whose address the reply left from where it began (None: no reply)."""
    back = outcome.result.reply_path
    return ANSWERERS.get(back[0].src or "", back[0].src) if back else None


def shadow_round(
    topo: Topology, answerer: str, fake: tuple[Where, Match | None] = FAKE_MASQUERADED
) -> HostOutcome:
    """Plant the fake entry (its copy judged by `fake`), then ns1 asks ns0's service:
    `answerer` ("ns2" shadowed, "ns0" not) must answer. The outcome is returned."""
    flush_conntrack(topo, "ns0")
    fake_entry(topo, *fake).assert_passed()
    to_ns2 = answerer == "ns2"
    where = at("ns2:eth0") if to_ns2 else nowhere(among=NS2_LINK)
    match = Match(dst="10.0.2.99", dport=SERVICE) if to_ns2 else None
    with listening(topo, "ns0", "udp", SERVICE), listening(topo, "ns2", "udp", SERVICE):
        outcome = expect_from_host(
            topo, "ns1", "udp", "10.0.1.1", SERVICE,
            sport=HIGHPORT, where=where, match=match, reply="answer",
        )  # fmt: skip
    outcome.assert_passed()
    who = answered_by(outcome)
    assert who == answerer, f"answered by {who}, not {answerer}\n{outcome.evidence()}"
    return outcome
