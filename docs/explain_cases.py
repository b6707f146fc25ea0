"""Regenerate docs/explain.md from a real run: each fault, and what explain() says of it.

    sudo .venv/bin/python docs/explain_cases.py            # writes docs/explain.md

Every case builds a small topology from examples/, sabotages it one way, sends one probe
that fails, and records explain()'s ranked causes. The second table runs the check
library on sabotaged reference topologies (the faults of tests/integration/
test_check_*.py) and records each check's diagnosis next to the top cause of its first
explained failure. Nothing is hand-written.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import netprobe
from netprobe.check import Result, reference_path, run_check
from netprobe.explain import Explanation, explain
from netprobe.topology import Topology
from netprobe.traffic import Template, from_scapy
from netprobe.traffic import _craft as craft

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# STP_LAN and NFT_DROP are tests/integration/test_explain.py's too: the faults documented
# here are the ones tested there.
STP_LAN = """\
name: stplan
hosts:
  red:
    interfaces:
      eth0: {veth: switch:red, mac: "02:00:00:00:00:01", addresses: [10.0.0.1/24]}
  blue:
    interfaces:
      eth0: {veth: switch:blue, mac: "02:00:00:00:00:02", addresses: [10.0.0.2/24]}
  switch:
    interfaces:
      br0: {bridge: {stp: true, forward_delay: 30}}
      red: {master: br0}
      blue: {master: br0}
"""
NFT_DROP = """\
table inet fw {
  chain forward {
    type filter hook forward priority filter; policy accept;
    udp dport 9 counter drop
  }
}
"""


# Said of networks netprobe did not build; their cases run in
# tests/integration/test_explain_adopted.py (they need namespaces made by hand).
ADOPTED = """\
## On networks netprobe did not build

Explanations read the live state of every host, adopted namespaces as much as those
netprobe made: devices, veth peers across namespaces, addresses, masters, bridge port
states, routes and neighbours come from the kernels, never from the spec. Before the probe
is re-sent, its way is walked through that state (veth peers, bridges, each router's own
route lookup, the next hop's MAC); in namespaces netprobe did not create, only the hosts on
that way have their counters read (nft rule counters, and the statistics of the devices on
the way) and their rulesets traced, so a busy Docker host's other traffic is not blamed.
The machine's own namespace (a `root: true` host) is never traced.

To name the nft rule that dropped a probe in such a namespace, netprobe adds a temporary
table, `table inet netprobe_trace_RUNID` (and a bridge one where bridged frames are
filtered), whose one chain sets `meta nftrace set 1` on the probe alone. Its removal is
written to the run's record before it is added, so even after a kill `netprobe clean`
removes it; the explanation's notes say where it was added. `explain(..., touch=False)`
(or `topo.touch = False` for every explanation of a topology, as the CLI's `--no-touch`
sets it) adds nothing to any namespace netprobe did not create: the notes then say that no
rule can be named there, and the causes rest on the kernel's drop reason and the rule
counters (`nft rule `udp dport 9 drop` on r dropped it (its counter moved)`).

Causes found from that state, each with a `fix:` line: a neighbour entry (of the sender or
a router) naming a MAC its holder does not have; no route on the sender; no route back
(from the far host, or a router on the way back); a source address the far side cannot
answer; a router sending the probe back out the way it came (both routes named); path MTU
(the link, its MTU and the probe's size, with Don't Fragment set); a masquerade rule bound
to an interface the route to the destination does not leave by; a bridge port with no
master; a bridge port not forwarding (STP state); forwarding off, for the whole host
(`net.ipv4.ip_forward`, which sets every interface's switch) or for what arrives on one
interface (`net.ipv4.conf.IF.forwarding`: IPv4 forwards by the input interface's own
switch, so a router with `ip_forward` 0 and its interfaces at 1, as the kernel's NAT
selftest makes it, forwards; IPv6 by `net.ipv6.conf.all.forwarding`); strict
`rp_filter` against an asymmetric source, with the interface the route back leaves by.
`tests/integration/test_explain_adopted.py` seeds each on namespaces made by hand with
`ip`, `nft` and `sysctl`, adopted, and checks that it ranks first.

Where NAT took part, a cause names the packet as it was where it died: NO_SOCKET names
the address and port a DNAT rewrote it to (from the conntrack entry), and a forwarding
drop after a DNAT (IP_INADDRERRORS at `ip_error`: routed onward, so rewritten) is
forwarding, never "not rewritten". Drops that are not the probe's death are left out: its
answer (an echo reply no ping socket takes), a barrier, the probe at the host it was
expected at where no listener was asked for, and, once the probe was seen to arrive,
other traffic's drops. `explain_probe(topo, result, where=..., match=...)` is told what an
`expect_from_host` expected, and ranks a missing rewrite first as `explain` does.
`tests/peer/test_sabotage.py` holds each against the NAT selftest's network.
"""


@dataclass(frozen=True)
class Case:
    name: str
    sabotage: str
    topology: str  # an examples/ file, or YAML text
    setup: Callable[[Topology], None]
    frame: Callable[[Topology], Template]
    port: str


def _run(host: str, *argv: str, stdin: str | None = None) -> Callable[[Topology], None]:
    return lambda topo: (topo.run(host, list(argv), input=stdin, check=True), None)[1]


def _udp(
    dst: str = "10.2.0.10", src: str = "10.1.0.10", mac: str | None = None, **kw: object
) -> Callable[[Topology], Template]:
    def make(topo: Topology) -> Template:
        router = mac or topo.mac("router", "eth0")
        return craft.udp(topo.mac("left", "eth0"), router, src, dst, **kw)  # type: ignore[arg-type]

    return make


def _bad_ip_checksum(topo: Topology) -> Template:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    return from_scapy(
        Ether(src=topo.mac("left", "eth0"), dst=topo.mac("router", "eth0"))
        / IP(src="10.1.0.10", dst="10.2.0.10", chksum=0x1234)
        / UDP(dport=7)
    )


def _lan_udp(topo: Topology) -> Template:
    return craft.udp("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2")


def _nothing(topo: Topology) -> None:
    return None


def _rp_filter(topo: Topology) -> None:
    for key in ("all", "eth0"):
        topo.run("router", ["sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=1"], check=True)


CASES = [
    Case(
        "ip_forward off",
        "router: sysctl net.ipv4.ip_forward=0",
        "router.yaml",
        _run("router", "sysctl", "-qw", "net.ipv4.ip_forward=0"),
        _udp(),
        "left:eth0",
    ),
    Case(
        "nft drop",
        "router: `udp dport 9 counter drop` in an inet forward chain",
        "router.yaml",
        _run("router", "nft", "-f", "-", stdin=NFT_DROP),
        _udp(),
        "left:eth0",
    ),
    Case(
        "iptables-nft drop",
        "router: iptables -A FORWARD -p udp --dport 9 -j DROP",
        "router.yaml",
        _run("router", "iptables", "-A", "FORWARD", "-p", "udp", "--dport", "9", "-j", "DROP"),
        _udp(),
        "left:eth0",
    ),
    Case(
        "no route",
        "probe to 10.9.9.9: router has no route there",
        "router.yaml",
        _nothing,
        _udp(dst="10.9.9.9"),
        "left:eth0",
    ),
    Case(
        "wrong destination MAC",
        "probe sent to 02:00:00:00:00:99, not the router's MAC",
        "router.yaml",
        _nothing,
        _udp(mac="02:00:00:00:00:99"),
        "left:eth0",
    ),
    Case(
        "rp_filter",
        "router: rp_filter=1; source 10.2.0.77 (behind eth1) arrives on eth0",
        "router.yaml",
        _rp_filter,
        _udp(src="10.2.0.77"),
        "left:eth0",
    ),
    Case(
        "closed port",
        "nothing listens on right's UDP port 9",
        "router.yaml",
        _nothing,
        _udp(dport=9),
        "left:eth0",
    ),
    Case(
        "bad checksum",
        "IPv4 header checksum 0x1234",
        "router.yaml",
        _nothing,
        _bad_ip_checksum,
        "left:eth0",
    ),
    Case(
        "TTL expired", "TTL 1 through the router", "router.yaml", _nothing, _udp(ttl=1), "left:eth0"
    ),
    Case(
        "STP port not forwarding",
        "bridge with STP, forward delay 30 s: fresh ports",
        STP_LAN,
        _nothing,
        _lan_udp,
        "red:eth0",
    ),
    Case(
        "port not enslaved",
        "switch: ip link set red nomaster",
        "redblue.yaml",
        _run("switch", "ip", "link", "set", "red", "nomaster"),
        _lan_udp,
        "red:eth0",
    ),
]


@dataclass(frozen=True)
class Sabotage:
    check: str
    sabotage: str
    topology: str  # a reference topology file name
    setup: Callable[[Topology], None]
    params: tuple[tuple[str, str], ...] = ()


def _all(*steps: Callable[[Topology], None]) -> Callable[[Topology], None]:
    def run(topo: Topology) -> None:
        for step in steps:
            step(topo)

    return run


_OPEN_FORWARD = (
    "table inet f {\n chain fw { type filter hook forward priority 0; policy drop; }\n}\n"
)
_DNAT = "! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80"
# Docker 27's rules in place of Docker 28's: no raw table, isolation by DOCKER-ISOLATION alone
_DOCKER27 = _all(
    _run("dockerhost", "iptables-restore",
         stdin=reference_path("docker-bridge-27.rules").read_text()),
    _run("dockerhost", "iptables", "-t", "raw", "-F"),
)

SABOTAGES = [
    Sabotage(
        "isolation",
        "hv: a veth x1/x2 added by hand, one end on br-a, the other on br-b",
        "tenants.yaml",
        _all(
            _run("hv", "ip", "link", "add", "x1", "type", "veth", "peer", "name", "x2"),
            _run("hv", "ip", "link", "set", "x1", "master", "br-b", "up"),
            _run("hv", "ip", "link", "set", "x2", "master", "br-a", "up"),
        ),
    ),
    Sabotage(
        "isolation",
        "hv: ip link set b1 master br-a",
        "tenants.yaml",
        _run("hv", "ip", "link", "set", "b1", "master", "br-a"),
    ),
    Sabotage(
        "isolation",
        "hv: ip link set a2 nomaster",
        "tenants.yaml",
        _run("hv", "ip", "link", "set", "a2", "nomaster"),
    ),
    Sabotage(
        "veth",
        "switch: ip link set red mtu 1280",
        "redblue.yaml",
        _run("switch", "ip", "link", "set", "red", "mtu", "1280"),
    ),
    Sabotage(
        "veth",
        "switch: ip link set red down",
        "redblue.yaml",
        _run("switch", "ip", "link", "set", "red", "down"),
    ),
    Sabotage(
        "bridge",
        "switch: ip link set blue nomaster",
        "redblue.yaml",
        _run("switch", "ip", "link", "set", "blue", "nomaster"),
    ),
    Sabotage(
        "bridge",
        "switch: ip link set br0 down",
        "redblue.yaml",
        _run("switch", "ip", "link", "set", "br0", "down"),
    ),
    Sabotage(
        "bridge",
        "switch: an inet forward chain with policy drop",
        "redblue.yaml",
        _run("switch", "nft", "-f", "-", stdin=_OPEN_FORWARD),
    ),
    Sabotage(
        "bridge",
        "blue: ip -4 addr flush dev eth0",
        "redblue.yaml",
        _run("blue", "ip", "-4", "addr", "flush", "dev", "eth0"),
    ),
    Sabotage(
        "mac-learning",
        "switch: bridge_slave p1 learning off",
        "mac-learning.yaml",
        _run("switch", "ip", "link", "set", "dev", "p1", "type", "bridge_slave", "learning", "off"),
    ),
    Sabotage(
        "routing",
        "router: sysctl net.ipv4.ip_forward=0",
        "router.yaml",
        _run("router", "sysctl", "-qw", "net.ipv4.ip_forward=0"),
    ),
    Sabotage(
        "routing",
        "right: ip route del default",
        "router.yaml",
        _run("right", "ip", "route", "del", "default"),
    ),
    Sabotage(
        "routing",
        "router: an inet forward chain with policy drop",
        "router.yaml",
        _run("router", "nft", "-f", "-", stdin=_OPEN_FORWARD),
    ),
    Sabotage(
        "nat",
        "pve: nft flush table ip nat",
        "nat-gateway.yaml",
        _run("pve", "nft", "flush", "table", "ip", "nat"),
    ),
    Sabotage(
        "nat",
        "pve: sysctl net.ipv4.ip_forward=0",
        "nat-gateway.yaml",
        _run("pve", "sysctl", "-qw", "net.ipv4.ip_forward=0"),
    ),
    Sabotage(
        "nat",
        "a port forward 8080->vm1:eth0:80 asked of a gateway without one",
        "nat-gateway.yaml",
        _nothing,
        (("forward", "8080->vm1:eth0:80"),),
    ),
    Sabotage(
        "docker-bridge",
        "dockerhost: Docker 27's rules (docker-bridge-27.rules), iptables -F "
        "DOCKER-ISOLATION-STAGE-2",
        "docker-bridge.yaml",
        _all(_DOCKER27, _run("dockerhost", "iptables", "-F", "DOCKER-ISOLATION-STAGE-2")),
        (("direct", ""),),
    ),
    Sabotage(
        "docker-bridge",
        "dockerhost: Docker 27's rules (no raw table)",
        "docker-bridge.yaml",
        _DOCKER27,
    ),
    Sabotage(
        "docker-bridge",
        "dockerhost: the raw rule for 172.17.0.2 deleted",
        "docker-bridge.yaml",
        _run("dockerhost", "iptables", "-t", "raw", "-D", "PREROUTING", "-d", "172.17.0.2/32",
             "!", "-i", "docker0", "-j", "DROP"),
    ),
    Sabotage(
        "docker-bridge",
        "dockerhost: the published port's DNAT rule deleted",
        "docker-bridge.yaml",
        _run("dockerhost", "iptables", "-t", "nat", "-D", "DOCKER", *_DNAT.split()),
    ),
    Sabotage(
        "docker-bridge",
        "dockerhost: iptables -t nat -F POSTROUTING",
        "docker-bridge.yaml",
        _run("dockerhost", "iptables", "-t", "nat", "-F", "POSTROUTING"),
        (("containers", "c1:eth0"),),
    ),
    Sabotage(
        "filter",
        "fw: nft insert rule inet filter input tcp dport 22 drop (shadows the ssh accept)",
        "filter.yaml",
        _run(
            "fw", "nft", "insert", "rule", "inet", "filter", "input", "tcp", "dport", "22", "drop"
        ),
    ),
    Sabotage(
        "exposure",
        "web: nft insert rule inet filter input tcp dport 22 drop",
        "exposure.yaml",
        _run(
            "web", "nft", "insert", "rule", "inet", "filter", "input", "tcp", "dport", "22", "drop"
        ),
    ),
]


def run_sabotage(case: Sabotage) -> Result:
    with netprobe.build(netprobe.load(reference_path(case.topology))) as topo:
        case.setup(topo)
        return run_check(case.check, topo, **dict(case.params))


def run_case(case: Case, *, trace: bool = True) -> Explanation:
    spec = (
        netprobe.load(EXAMPLES / case.topology)
        if case.topology.endswith(".yaml")
        else netprobe.loads(case.topology)
    )
    with netprobe.build(spec) as topo:
        case.setup(topo)
        return explain(topo, case.frame(topo), case.port, trace=trace)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(results: list[tuple[Case, Explanation]]) -> str:
    out = [
        "# explain: where did the frame die, and why",
        "",
        "Generated by `docs/explain_cases.py` from a real run on "
        f"Linux {platform.release()} (do not edit by hand). Each case sabotages a small "
        "topology one way and asks `netprobe.explain.explain()` why one probe failed. "
        "The reason names are the kernel's own, read from the `skb:kfree_skb` "
        "tracepoint's format file: note that ip_forward 0 shows as IP_INADDRERRORS, "
        "a closed UDP port as NO_SOCKET and an expired TTL as IP_INHDR. The time column "
        "is one run each (the first pays cold caches); `bench/explain.py` gives medians.",
        "",
        ADOPTED,
        "| case | sabotage | top cause | kernel drop | time |",
        "|---|---|---|---|---|",
    ]
    for case, found in results:
        top = found.top
        drop = found.drops.drops[0].describe() if found.drops.drops else "(none attributed)"
        out.append(
            f"| {case.name} | {_cell(case.sabotage)} | {_cell(top.text if top else '-')}"
            f" | {_cell(drop)} | {found.elapsed * 1000:.0f} ms |"
        )
    out += ["", "## Full output", ""]
    for case, found in results:
        out += [f"### {case.name}", "", "```", found.render(), "```", ""]
    return "\n".join(out)


UNEXPLAINED = "(not explained: no expectation failed, only a check step)"


def render_checks(results: list[tuple[Sabotage, Result]]) -> str:
    out = [
        "## The check library, sabotaged",
        "",
        "Each row sabotages a check's reference topology (as its sabotage test in "
        "`tests/integration/test_check_*.py` does) and runs the check. The diagnosis is the "
        "check's own; the top cause is what `explain()` said of the first failed "
        "expectation, which the check knows nothing of. A probe that arrived where it must "
        "not, or arrived un-rewritten, is no drop: explain says it was delivered, and why. "
        "A check that fails without a failed probe (a state read, an nmap scan) has nothing "
        "to explain.",
        "",
        "| check | sabotage | check's diagnosis | explain's top cause |",
        "|---|---|---|---|",
    ]
    for case, result in results:
        top = result.explanation[0]["text"] if result.explanation else UNEXPLAINED
        diagnosis = result.diagnosis or result.summary
        out.append(f"| {case.check} | {_cell(case.sabotage)} | {_cell(diagnosis)} | {_cell(top)} |")
    return "\n".join(out)


def main() -> int:
    results = [(case, run_case(case)) for case in CASES]
    checks = [(case, run_sabotage(case)) for case in SABOTAGES]
    text = render(results) + "\n" + render_checks(checks)
    target = Path(os.environ.get("EXPLAIN_DOC", ROOT / "docs" / "explain.md"))
    target.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
