"""explain() on a network netprobe did not build: namespaces made by hand with plain
`ip`/`nft`/`sysctl`, adopted by a spec that adds nothing. Each case seeds one fault,
fails an expectation with a crafted frame into a port, and checks that the explanation
ranks that fault first; netprobe's temporary nft trace table is gone afterwards, and
with touch=False nothing of the namespaces changes at all.

    a:eth0 10.71.1.1 ── ra 10.71.1.254  r  br0 10.71.2.254 ─ rb ── b:eth0 10.71.2.1
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import netprobe
from netprobe import Host, Spec
from netprobe.check import ROUTED, echo_and_reply
from netprobe.expect import at, expect
from netprobe.explain import Explanation, explain
from netprobe.explain._nfttrace import TABLE
from netprobe.topology import Topology
from netprobe.traffic import Template, from_scapy
from netprobe.traffic import _craft as craft

pytestmark = pytest.mark.root

_COUNTER = itertools.count()
NFT_DROP = """\
table inet fw {
  chain forward {
    type filter hook forward priority filter; policy accept;
    udp dport 9 counter drop
  }
}
"""


@dataclass
class Hand:
    """Three namespaces made by hand, by their real names."""

    a: str
    r: str
    b: str

    def sh(self, ns: str, *argv: str, stdin: str | None = None) -> str:
        done = subprocess.run(["ip", "netns", "exec", ns, *argv], input=stdin,
                              capture_output=True, text=True, check=True)  # fmt: skip
        return done.stdout


def _make(prefix: str) -> Hand:
    hand = Hand(f"{prefix}-a", f"{prefix}-r", f"{prefix}-b")
    script = f"""\
netns add {hand.a}
netns add {hand.r}
netns add {hand.b}
link add eth0 netns {hand.a} type veth peer name ra netns {hand.r}
link add eth0 netns {hand.b} type veth peer name rb netns {hand.r}
"""
    subprocess.run(["ip", "-batch", "-"], input=script, text=True, check=True)
    for ns, lines in (
        (hand.a, ["addr add 10.71.1.1/24 dev eth0"]),
        (hand.r, ["link add br0 type bridge", "link set rb master br0",
                  "addr add 10.71.1.254/24 dev ra", "addr add 10.71.2.254/24 dev br0"]),
        (hand.b, ["addr add 10.71.2.1/24 dev eth0"]),
    ):  # fmt: skip
        batch = "".join(f"{line}\n" for line in lines)
        subprocess.run(["ip", "-n", ns, "-batch", "-"], input=batch, text=True, check=True)
    for ns, links in ((hand.a, ["lo", "eth0"]), (hand.r, ["lo", "ra", "rb", "br0"]),
                      (hand.b, ["lo", "eth0"])):  # fmt: skip
        hand.sh(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        for link in links:
            hand.sh(ns, "ip", "link", "set", link, "up")
    hand.sh(hand.r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    hand.sh(hand.a, "ip", "route", "add", "default", "via", "10.71.1.254")
    hand.sh(hand.b, "ip", "route", "add", "default", "via", "10.71.2.254")
    return hand


@pytest.fixture
def hand() -> Iterator[Hand]:
    prefix = f"hx{os.getpid()}-{next(_COUNTER)}"
    try:
        yield _make(prefix)
    finally:
        for host in "arb":
            subprocess.run(["ip", "netns", "del", f"{prefix}-{host}"], capture_output=True)


def _adopt(hand: Hand) -> Topology:
    spec = Spec("handmade", hosts=(Host("a", adopt=hand.a), Host("r", adopt=hand.r),
                                   Host("b", adopt=hand.b)))  # fmt: skip
    return netprobe.build(spec)


def _udp(topo: Topology, dst: str = "10.71.2.1", src: str = "10.71.1.1", **kw: object) -> Template:
    return craft.udp(topo.mac("a:eth0"), topo.mac("r:ra"), src, dst, **kw)  # type: ignore[arg-type]


def _explained(topo: Topology, frame: Template, to: str = "b:eth0", **kw: object) -> Explanation:
    outcome = expect(topo, frame, "a:eth0", at(to), **kw)  # type: ignore[arg-type]
    assert not outcome.passed, outcome.evidence()
    found = explain(topo, frame, "a:eth0", outcome)
    _assert_no_table(topo)
    return found


def _assert_no_table(topo: Topology) -> None:
    for host in topo.hosts:
        assert TABLE not in topo.run(host, ["nft", "list", "tables"]).stdout
    assert not any("nft_table" in e for e in topo.record.undo)


def _top(found: Explanation) -> str:
    assert found.top is not None, found.render()
    return found.top.text


def test_forwarding_off(hand: Hand) -> None:
    hand.sh(hand.r, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    with _adopt(hand) as topo:
        found = _explained(topo, _udp(topo))
    assert _top(found) == "forwarding disabled on r (net.ipv4.ip_forward = 0)"
    assert any("IP_INADDRERRORS" in e and "r:ra" in e for e in found.causes[0].evidence)
    assert found.causes[0].fix == "in r: sysctl -w net.ipv4.ip_forward=1 (it is meant to route)"


def test_forwarding_off_on_one_interface(hand: Hand) -> None:
    hand.sh(hand.r, "sysctl", "-qw", "net.ipv4.conf.ra.forwarding=0")
    with _adopt(hand) as topo:
        found = _explained(topo, _udp(topo))
    assert _top(found) == (
        "forwarding disabled on r for what arrives on ra (net.ipv4.conf.ra.forwarding = 0)"
    )


def test_strict_rp_filter_against_an_asymmetric_source(hand: Hand) -> None:
    for key in ("all", "ra"):
        hand.sh(hand.r, "sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=1")
    with _adopt(hand) as topo:
        found = _explained(topo, _udp(topo, src="10.71.2.77"))
    assert _top(found) == (
        "IP_RPFILTER on r:ra: the reverse-path filter refuses source 10.71.2.77 (rp_filter "
        "all=1, rp_filter default=0, rp_filter ra=1); r's route back to 10.71.2.77 leaves by "
        "br0, not by ra where it came in (an asymmetric source)"
    )
    assert "net.ipv4.conf.all.rp_filter=2 and net.ipv4.conf.ra.rp_filter=2" in (
        found.causes[0].fix or ""
    )


def test_an_nft_drop_rule_is_named_and_the_trace_table_removed(hand: Hand) -> None:
    hand.sh(hand.r, "nft", "-f", "-", stdin=NFT_DROP)
    before = hand.sh(hand.r, "nft", "-s", "list", "ruleset")
    with _adopt(hand) as topo:
        found = _explained(topo, _udp(topo))
        assert _top(found).startswith(
            "nft rule `udp dport 9 drop` (chain inet fw forward, handle "
        ) and _top(found).endswith(" on r gave `drop`")
        assert any("counter r `udp dport 9 drop` +1" in e for e in found.causes[0].evidence)
        assert any("netprobe_trace_" in n and "removed" in n for n in found.notes)
    assert hand.sh(hand.r, "nft", "-s", "list", "ruleset") == before


def test_no_touch_changes_nothing_and_says_what_it_costs(hand: Hand) -> None:
    hand.sh(hand.r, "nft", "-f", "-", stdin=NFT_DROP)
    before = hand.sh(hand.r, "nft", "-a", "-s", "list", "ruleset")  # -s: counters aside
    with _adopt(hand) as topo:
        outcome = expect(topo, _udp(topo), "a:eth0", at("b:eth0"))
        watcher = subprocess.Popen(["ip", "netns", "exec", hand.r, "nft", "monitor", "tables"],
                                   stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            time.sleep(0.2)  # let the monitor subscribe: any table added would show
            found = explain(topo, _udp(topo), "a:eth0", outcome, touch=False)
        finally:
            watcher.terminate()
            seen, _ = watcher.communicate()
        topo.touch = False  # the topology's own setting, taken when explain is not told
        again = explain(topo, _udp(topo), "a:eth0", outcome)
    assert seen == ""
    assert hand.sh(hand.r, "nft", "-a", "-s", "list", "ruleset") == before
    assert _top(found) == "nft rule `udp dport 9 drop` on r dropped it (its counter moved)"
    assert any("touch=False" in n and "no rule can be named" in n for n in found.notes)
    assert found.nft == ()
    assert _top(again) == _top(found)


def test_a_wrong_neighbour_entry_on_the_sender(hand: Hand) -> None:
    hand.sh(hand.a, "ip", "neigh", "replace", "10.71.1.254", "lladdr", "02:00:00:00:00:99",
            "dev", "eth0", "nud", "permanent")  # fmt: skip
    with _adopt(hand) as topo:
        entry = topo.live("a").neighbour("10.71.1.254")
        assert entry is not None and entry.mac is not None
        frame = craft.udp(topo.mac("a:eth0"), entry.mac, "10.71.1.1", "10.71.2.1")
        found = _explained(topo, frame)
        mac = topo.mac("r:ra")
    assert _top(found) == (
        "a's neighbour entry for 10.71.1.254 on eth0 says 02:00:00:00:00:99 (permanent), but "
        f"10.71.1.254 is r:ra, whose MAC is {mac}: a sends its frames for 10.71.1.254 to a "
        "MAC nobody there has"
    )
    assert f"ip neigh replace 10.71.1.254 lladdr {mac} dev eth0" in (found.causes[0].fix or "")


def test_a_stale_neighbour_entry_on_the_router(hand: Hand) -> None:
    hand.sh(hand.r, "ip", "neigh", "replace", "10.71.2.1", "lladdr", "02:00:00:00:00:98",
            "dev", "br0", "nud", "permanent")  # fmt: skip
    with _adopt(hand) as topo:  # b's stack drops the request: no echo reply comes back
        frame, back = echo_and_reply(topo.mac("a:eth0"), topo.mac("r:ra"), "10.71.1.1",
                                     "10.71.2.1", routed=True)  # fmt: skip
        found = _explained(topo, frame, "a:eth0", match=back, timeout=0.5)
    assert _top(found).startswith(
        "r's neighbour entry for 10.71.2.1 on br0 says 02:00:00:00:00:98 (permanent), but "
        "10.71.2.1 is b:eth0"
    )


def test_a_missing_route_on_the_return_path(hand: Hand) -> None:
    hand.sh(hand.b, "ip", "route", "del", "default")
    with _adopt(hand) as topo:
        frame, back = echo_and_reply(topo.mac("a:eth0"), topo.mac("r:ra"), "10.71.1.1",
                                     "10.71.2.1", routed=True)  # fmt: skip
        found = _explained(topo, frame, "a:eth0", match=back, timeout=0.5)
    assert _top(found) == (
        "no route back: b has no route to 10.71.1.1, so its answer to the probe cannot leave"
    )


def test_a_source_address_the_far_side_cannot_answer(hand: Hand) -> None:
    hand.sh(hand.a, "ip", "addr", "add", "10.99.0.1/32", "dev", "eth0")
    hand.sh(hand.a, "ip", "route", "replace", "default", "via", "10.71.1.254", "src",
            "10.99.0.1")  # fmt: skip
    with _adopt(hand) as topo:
        route = topo.route_to("a", "10.71.2.1")
        assert route is not None and route.src == "10.99.0.1"
        frame, back = echo_and_reply(topo.mac("a:eth0"), topo.mac("r:ra"), route.src,
                                     "10.71.2.1", routed=True)  # fmt: skip
        found = _explained(topo, frame, "a:eth0", match=back, timeout=0.5)
    assert _top(found) == (
        "wrong source address: a's route to 10.71.2.1 (`default via 10.71.1.254 dev eth0 src "
        "10.99.0.1`) picks source 10.99.0.1, which b cannot answer: r has no route to "
        "10.99.0.1"
    )


def test_a_router_sending_the_probe_back_the_way_it_came(hand: Hand) -> None:
    hand.sh(hand.r, "ip", "route", "add", "10.72.0.0/24", "via", "10.71.1.1")
    with _adopt(hand) as topo:
        found = _explained(topo, _udp(topo, dst="10.72.0.5"))
    assert _top(found) == (
        "a routing loop: r sends the probe for 10.72.0.5 back out of ra, the way it came to a "
        "(`10.72.0.0/24 via 10.71.1.1 dev ra`), whose route `default via 10.71.1.254 dev "
        "eth0` sent it to r"
    )
    assert found.causes[0].evidence == (
        "route on a: default via 10.71.1.254 dev eth0",
        "route on r: 10.72.0.0/24 via 10.71.1.1 dev ra",
    )


def test_path_mtu_names_the_link_and_the_size(hand: Hand) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    hand.sh(hand.r, "ip", "link", "set", "rb", "mtu", "1400")  # br0 follows its port
    with _adopt(hand) as topo:
        packet = (Ether(src=topo.mac("a:eth0"), dst=topo.mac("r:ra"))
                  / IP(src="10.71.1.1", dst="10.71.2.1", flags="DF") / UDP(sport=40000, dport=9)
                  / Raw(craft.SLOT + b"x" * 1400))  # fmt: skip
        frame = from_scapy(packet)
        found = _explained(topo, frame)
    assert _top(found) == (
        "path MTU: r routes the probe out of r:br0, whose MTU is 1400; the probe is 1444 bytes "
        "with Don't Fragment set, so r drops it and answers \"fragmentation needed (mtu 1400)\""
    )


def test_masquerade_on_the_wrong_interface(hand: Hand) -> None:
    rules = ("table ip nat {\n chain post {\n  type nat hook postrouting priority srcnat;\n"
             '  oifname "eth9" masquerade\n }\n}\n')  # fmt: skip
    hand.sh(hand.r, "nft", "-f", "-", stdin=rules)
    with _adopt(hand) as topo:
        found = _explained(topo, _udp(topo), match=ROUTED.rewriting(src="10.71.2.254"))
    assert _top(found) == (
        "the probe was delivered, not dropped: it reached b:eth0 with ip.src: expected "
        "10.71.2.254, seen 10.71.1.1 (r's rule `oifname \"eth9\" masquerade` matches oifname "
        '"eth9", but the probe left by rb)'
    )
    assert found.causes[1].text == (
        'masquerade on the wrong interface: r\'s rule `oifname "eth9" masquerade` rewrites only '
        "what leaves by eth9, but its route to 10.71.2.1 (`10.71.2.0/24 dev br0 src 10.71.2.254`) "
        "leaves by br0"
    )


def test_a_bridge_port_with_no_master(hand: Hand) -> None:
    hand.sh(hand.r, "ip", "link", "set", "rb", "nomaster")
    with _adopt(hand) as topo:
        found = _explained(topo, _udp(topo))
    assert _top(found) == (
        "r:rb is not a port of any bridge (missing master: br0); frames for other hosts die on it"
    )
    assert found.causes[0].fix == "in r: ip link set rb master br0"


def test_a_bridge_port_not_forwarding(hand: Hand) -> None:
    hand.sh(hand.r, "bridge", "link", "set", "dev", "rb", "state", "2")  # learning, by hand
    with _adopt(hand) as topo:
        found = _explained(topo, _udp(topo))
    assert _top(found) == "bridge port r:rb of br0 is in STP state learning"


def test_a_closed_port(hand: Hand) -> None:
    with _adopt(hand) as topo:
        found = explain(topo, _udp(topo), "a:eth0")
    assert _top(found) == "NO_SOCKET on b: nothing listens on udp port 9 of 10.71.2.1"


_CHILD = """
import sys, time, netprobe
from netprobe import Host, Spec
from netprobe.explain._nfttrace import NftTrace
topo = netprobe.build(Spec("handkill", hosts=(Host("r", adopt=sys.argv[1]),)))
tracer = NftTrace(topo, ["r"], foreign={"r"})
assert tracer.ruleset_hosts() == ["r"]
tracer.arm("udp dport 9", ["r"])
print("ready", topo.runid, flush=True)
time.sleep(120)
"""


def test_the_trace_table_of_a_killed_run_goes_with_netprobe_clean(hand: Hand) -> None:
    hand.sh(hand.r, "nft", "-f", "-", stdin=NFT_DROP)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, hand.r], stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.startswith("ready"), line
    runid = line.split()[1]
    assert f"netprobe_trace_{runid}" in hand.sh(hand.r, "nft", "list", "tables")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    report = netprobe.clean()
    assert runid in report.removed_runs
    assert TABLE not in hand.sh(hand.r, "nft", "list", "tables")
    assert "table inet fw" in hand.sh(hand.r, "nft", "list", "tables")
