"""explain() names the real fault behind a failed probe, on real namespaces.

Each case sabotages a small topology one way, sends a probe that must fail, and checks
that the top cause names that fault. The reason names are this kernel's own (read from
the kfree_skb tracepoint's format file), e.g. ip_forward 0 shows as IP_INADDRERRORS.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from explain_cases import NFT_DROP, STP_LAN
from support.paths import EXAMPLES

import netprobe
from netprobe.expect import at, expect
from netprobe.explain import Explanation, explain
from netprobe.explain._nfttrace import TABLE
from netprobe.topology import Topology
from netprobe.traffic import Template, from_scapy
from netprobe.traffic import _craft as craft
from netprobe.traffic._topotrace import held_instances
from netprobe.traffic._tracefs import TRACEFS, instance_names

pytestmark = pytest.mark.root


@pytest.fixture
def router() -> Iterator[Topology]:
    with netprobe.build(netprobe.load(EXAMPLES / "router.yaml")) as topo:
        yield topo


@pytest.fixture
def redblue() -> Iterator[Topology]:
    with netprobe.build(netprobe.load(EXAMPLES / "redblue.yaml")) as topo:
        yield topo


def _udp(topo: Topology, *, dst: str = "10.2.0.10", **options: object) -> Template:
    return craft.udp(
        topo.mac("left", "eth0"), topo.mac("router", "eth0"), "10.1.0.10", dst, **options
    )


def _failed(topo: Topology, frame: Template, port: str, to: str) -> Explanation:
    outcome = expect(topo, frame, port, at(to))
    assert not outcome.passed, outcome.evidence()
    explanation = explain(topo, frame, port, outcome)
    _assert_clean(topo)
    return explanation


def _top(explanation: Explanation) -> str:
    assert explanation.top is not None, explanation.render()
    return explanation.top.text


def _assert_clean(topo: Topology) -> None:
    """At most one trace instance of this topology, the one it holds (late positives and
    explanations share it), idle between uses until teardown (other topologies of this
    process may hold theirs); no trace table, no monitor left."""
    mine = _instances(topo)
    assert len(mine) <= 1, mine
    assert set(mine) <= set(held_instances()), mine
    for name in mine:
        assert Path(TRACEFS, "instances", name, "tracing_on").read_text().strip() == "0"
    for host in topo.spec.hosts:
        tables = topo.run(host.name, ["nft", "list", "tables"]).stdout
        assert TABLE not in tables
    monitors = subprocess.run(
        ["pgrep", "-P", str(os.getpid()), "-f", "nft -a monitor trace"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert monitors == ""


def test_ip_forward_off_names_forwarding_disabled(router: Topology) -> None:
    router.run("router", ["sysctl", "-qw", "net.ipv4.ip_forward=0"], check=True)
    found = _failed(router, _udp(router), "left:eth0", "right:eth0")
    assert _top(found) == "forwarding disabled on router (net.ipv4.ip_forward = 0)"
    assert any("IP_INADDRERRORS" in e for e in found.causes[0].evidence)


def test_an_nft_drop_names_the_rule(router: Topology) -> None:
    router.run("router", ["nft", "-f", "-"], input=NFT_DROP, check=True)
    found = _failed(router, _udp(router), "left:eth0", "right:eth0")
    assert _top(found) == (
        "nft rule `udp dport 9 drop` (chain inet fw forward, handle 2) on router gave `drop`"
    )
    assert any("NETFILTER_DROP" in e for e in found.causes[0].evidence)


def test_an_iptables_nft_drop_names_the_rule(router: Topology) -> None:
    router.run(
        "router",
        ["iptables", "-A", "FORWARD", "-p", "udp", "--dport", "9", "-j", "DROP"],
        check=True,
    )
    found = _failed(router, _udp(router), "left:eth0", "right:eth0")
    assert _top(found).startswith("nft rule `")
    assert "chain ip filter FORWARD" in _top(found)
    assert "udp dport 9" in _top(found) and "drop" in _top(found)


def test_no_route_names_ip_innoroutes_with_the_lookup(router: Topology) -> None:
    found = _failed(router, _udp(router, dst="10.9.9.9"), "left:eth0", "right:eth0")
    assert _top(found) == (
        "IP_INNOROUTES on router: no route to 10.9.9.9 (ip route get 10.9.9.9 from "
        "10.1.0.10 iif eth0: RTNETLINK answers: Network is unreachable)"
    )


def test_a_wrong_destination_mac_names_otherhost(router: Topology) -> None:
    frame = craft.udp(router.mac("left", "eth0"), "02:00:00:00:00:99", "10.1.0.10", "10.2.0.10")
    found = _failed(router, frame, "left:eth0", "right:eth0")
    mac = router.mac("router", "eth0")
    assert _top(found) == (
        f"OTHERHOST on router:eth0: destination MAC 02:00:00:00:00:99 is not router:eth0's ({mac})"
    )


def test_rp_filter_names_ip_rpfilter(router: Topology) -> None:
    for key in ("all", "eth0"):
        router.run("router", ["sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=1"], check=True)
    # a source that lives behind eth1, arriving on eth0
    frame = craft.udp(
        router.mac("left", "eth0"), router.mac("router", "eth0"), "10.2.0.77", "10.2.0.10"
    )
    found = _failed(router, frame, "left:eth0", "right:eth0")
    assert _top(found) == (
        "IP_RPFILTER on router:eth0: the reverse-path filter refuses source 10.2.0.77 "
        "(rp_filter all=1, rp_filter default=0, rp_filter eth0=1); router's route back to "
        "10.2.0.77 leaves by eth1, not by eth0 where it came in (an asymmetric source)"
    )
    assert found.causes[0].fix is not None and "rp_filter=2" in found.causes[0].fix
    assert found.causes[0].evidence[-1] == "counter router TcpExtIPReversePathFilter +1"


def test_a_closed_port_names_no_socket(router: Topology) -> None:
    # the probe reaches right:eth0 (an expectation there passes); what fails is the
    # service behind it, so explain is asked directly
    found = explain(router, _udp(router, dport=9), "left:eth0")
    _assert_clean(router)
    assert _top(found) == "NO_SOCKET on right: nothing listens on udp port 9 of 10.2.0.10"


def test_a_bad_ip_checksum_names_ip_csum(router: Topology) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    frame = from_scapy(
        Ether(src=router.mac("left", "eth0"), dst=router.mac("router", "eth0"))
        / IP(src="10.1.0.10", dst="10.2.0.10", chksum=0x1234)
        / UDP(sport=40000, dport=7)
    )
    found = _failed(router, frame, "left:eth0", "right:eth0")
    assert _top(found) == "IP_CSUM on router:eth0: the probe's IPv4 header checksum is wrong"


def test_ttl_one_through_a_router_names_ip_inhdr(router: Topology) -> None:
    found = _failed(router, _udp(router, ttl=1), "left:eth0", "right:eth0")
    assert _top(found) == (
        "IP_INHDR on router: TTL 1 expired in transit (the router sends time exceeded)"
    )


def test_an_stp_learning_port_names_its_state() -> None:
    with netprobe.build(netprobe.loads(STP_LAN)) as topo:
        frame = craft.udp("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2")
        found = _failed(topo, frame, "red:eth0", "blue:eth0")
        top = _top(found)
        assert top.startswith("bridge port switch:red of br0 is in STP state ")
        assert top.removeprefix("bridge port switch:red of br0 is in STP state ") in (
            "listening",
            "learning",
            "blocking",
        )


def test_a_port_out_of_its_bridge_names_the_missing_master(redblue: Topology) -> None:
    redblue.run("switch", ["ip", "link", "set", "red", "nomaster"], check=True)
    frame = craft.udp("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2")
    found = _failed(redblue, frame, "red:eth0", "blue:eth0")
    assert _top(found) == ("switch:red is not a port of br0: it has no master (missing master br0)")


def test_without_the_drop_trace_counters_and_state_still_name_it(router: Topology) -> None:
    router.run("router", ["sysctl", "-qw", "net.ipv4.ip_forward=0"], check=True)
    found = explain(router, _udp(router), "left:eth0", trace=False)
    assert _top(found) == "forwarding disabled on router (net.ipv4.ip_forward = 0)"
    assert not found.drops.available
    assert any("counters and state" in n for n in found.notes)
    _assert_clean(router)


def test_an_error_midway_leaves_nothing_behind(
    router: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    router.run("router", ["nft", "-f", "-"], input=NFT_DROP, check=True)
    from netprobe.explain import _explanation as explanation

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected failure")

    monkeypatch.setattr(explanation, "ports", broken)
    with pytest.raises(RuntimeError, match="injected failure"):
        explain(router, _udp(router), "left:eth0")
    _assert_clean(router)


def test_the_explanation_renders_and_serialises(router: Topology) -> None:
    import json

    router.run("router", ["sysctl", "-qw", "net.ipv4.ip_forward=0"], check=True)
    found = explain(router, _udp(router), "left:eth0")
    data = json.loads(json.dumps(found.to_dict()))
    assert data["causes"][0]["text"] == _top(found)
    assert data["drop_trace"]["path"][:2] == ["left by left:eth0", "arrived on router:eth0"]
    assert found.render().splitlines()[1].startswith("[0.97] forwarding disabled on router")


def test_one_trace_instance_serves_a_topology_and_goes_with_it() -> None:
    """A late positive's watch and the explanations use the topology's one trace instance
    (idle in between: a fresh buffer each time, so each sees only its own probe); teardown
    removes it."""
    with netprobe.build(netprobe.load(EXAMPLES / "router.yaml")) as topo:
        topo.run("router", ["sysctl", "-qw", "net.ipv4.ip_forward=0"], check=True)
        outcome = expect(topo, _udp(topo), "left:eth0", at("right:eth0"))
        assert outcome.decided_by.startswith("the drop trace"), outcome.decided_by
        made = _instances(topo)
        assert len(made) == 1 and set(made) <= set(held_instances())
        first = explain(topo, _udp(topo), "left:eth0", outcome)
        assert _instances(topo) == made
        second = explain(topo, _udp(topo), "left:eth0")
        assert _instances(topo) == made
        assert [d.describe() for d in first.drops.drops] == [
            d.describe() for d in second.drops.drops
        ], (first.render(), second.render())
        assert len(second.drops.drops) == 1, second.render()
        _assert_clean(topo)
    assert _instances(topo) == []


def test_the_topologys_trace_serves_one_user_at_a_time(router: Topology) -> None:
    """Two threads: one holds the trace; the other, not waiting (a late positive), is
    refused at once, and waiting, gets the same instance once it is let go."""
    import threading

    from netprobe.errors import SetupError
    from netprobe.explain import wiring_of
    from netprobe.traffic._topotrace import drop_trace

    wiring, got, free = wiring_of(router), [], threading.Event()

    def second() -> None:
        with pytest.raises(SetupError, match="in use"), drop_trace(router, wiring, wait=False):
            pass
        free.set()
        with drop_trace(router, wiring) as trace:
            got.append(trace.instance.name)

    with drop_trace(router, wiring) as trace:
        other = threading.Thread(target=second)
        other.start()
        assert free.wait(10)
        assert other.is_alive() and not got  # waiting for the trace
    other.join(10)
    assert got == [trace.instance.name] == _instances(router)
    _assert_clean(router)


def _instances(topo: Topology) -> list[str]:
    """The trace instances of `topo` (other topologies of this process hold their own)."""
    return [n for n in instance_names() if n.startswith(f"netprobe-{topo.runid}-{os.getpid()}-")]
