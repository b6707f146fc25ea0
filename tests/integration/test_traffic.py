"""Traffic and expectations on real namespaces: delivered, dropped, flooded, rewritten,
tagged, through a TAP; and the verdicts that must not be PASS (loss, no barrier)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.paths import EXAMPLES

import netprobe
from netprobe import Bridge, Host, Interface, Spec, Veth
from netprobe.expect import (
    ROUTED,
    Barrier,
    Match,
    Verdict,
    at,
    at_exactly,
    expect,
    nowhere,
)
from netprobe.traffic import (
    TcpdumpCapture,
    arp,
    decode,
    ethernet,
    find_nonce,
    icmp_echo,
    ports,
    udp,
)

pytestmark = pytest.mark.root

RED, BLUE = "02:00:00:00:00:01", "02:00:00:00:00:02"


@pytest.fixture
def redblue() -> Iterator[netprobe.Topology]:
    with netprobe.build(netprobe.load(EXAMPLES / "redblue.yaml")) as topo:
        yield topo


@pytest.fixture
def router() -> Iterator[netprobe.Topology]:
    with netprobe.build(netprobe.load(EXAMPLES / "router.yaml")) as topo:
        yield topo


def _forward_rule(topo: netprobe.Topology, rule: str) -> None:
    ruleset = (
        "table inet np_test {\n chain forward {\n"
        f"  type filter hook forward priority 0;\n  {rule}\n }}\n}}\n"
    )
    topo.run("router", ["nft", "-f", "-"], input=ruleset, check=True)


def _left_to_right(topo: netprobe.Topology, dport: int) -> netprobe.traffic.Template:
    return udp(
        topo.mac("left", "eth0"), topo.mac("router", "eth0"), "10.1.0.10", "10.2.0.10", dport=dport
    )


def test_a_delivered_probe_passes_with_its_copy_as_evidence(redblue: netprobe.Topology) -> None:
    outcome = expect(redblue, udp(RED, BLUE, "10.0.0.1", "10.0.0.2"), "red:eth0", at("blue:eth0"))
    assert outcome.verdict is Verdict.PASS, outcome.evidence()
    (copy,) = outcome.reports["blue:eth0"].copies
    assert not copy.diffs and find_nonce(copy.frame.data) is not None
    assert "probe 1 matches" in outcome.evidence()


def test_a_probe_dropped_by_nft_is_proven_absent_by_a_barrier(router: netprobe.Topology) -> None:
    _forward_rule(router, "udp dport 7777 drop")
    barrier = Barrier(_left_to_right(router, 7778))
    outcome = expect(
        router,
        _left_to_right(router, 7777),
        "left:eth0",
        nowhere(among=["right:eth0"]),
        barrier=barrier,
    )
    assert outcome.verdict is Verdict.PASS, outcome.evidence()
    assert outcome.decided_by == "barrier"
    assert outcome.reports["right:eth0"].barrier_seen
    # the same expectation on a probe the rule lets through fails, naming the port
    leaked = expect(
        router,
        _left_to_right(router, 7779),
        "left:eth0",
        nowhere(among=["right:eth0"]),
        barrier=barrier,
    )
    assert leaked.verdict is Verdict.FAIL
    assert "probe 1 reached right:eth0, where it must not" in leaked.evidence()


def test_a_given_barrier_that_cannot_arrive_makes_the_verdict_inconclusive(
    router: netprobe.Topology,
) -> None:
    router.run("router", ["sysctl", "-w", "net.ipv4.ip_forward=0"], check=True)
    outcome = expect(
        router,
        _left_to_right(router, 7777),
        "left:eth0",
        nowhere(among=["right:eth0"]),
        barrier=Barrier(_left_to_right(router, 7778)),
        timeout=0.2,
    )
    assert outcome.verdict is Verdict.INCONCLUSIVE
    assert "barrier never reached right:eth0" in outcome.reason


def test_where_the_automatic_barrier_cannot_go_a_quiet_period_decides(
    router: netprobe.Topology,
) -> None:
    # the automatic barrier is an L2 broadcast: it cannot cross the router
    leaked = expect(router, _left_to_right(router, 7777), "left:eth0", nowhere(), timeout=0.2)
    assert leaked.verdict is Verdict.FAIL and "reached right:eth0" in leaked.reason
    router.run("router", ["sysctl", "-w", "net.ipv4.ip_forward=0"], check=True)
    outcome = expect(router, _left_to_right(router, 7777), "left:eth0", nowhere())
    assert outcome.verdict is Verdict.PASS, outcome.evidence()
    assert (
        outcome.decided_by == "a quiet period of 50 ms at right:eth0, router:eth1 (no barrier path)"
    )


def test_without_a_barrier_a_bounded_quiet_period_decides_and_says_so(
    router: netprobe.Topology,
) -> None:
    router.run("router", ["sysctl", "-w", "net.ipv4.ip_forward=0"], check=True)
    outcome = expect(
        router,
        _left_to_right(router, 7777),
        "left:eth0",
        nowhere(among=["right:eth0"]),
        barrier=None,
        quiet=0.03,
    )
    assert outcome.verdict is Verdict.PASS
    assert "quiet period of 30 ms" in outcome.evidence()


def test_flooding_reaches_exactly_the_other_ports() -> None:
    hosts = [
        Host(h, interfaces=[Interface("eth0", Veth(f"sw:{h}"), mac=f"02:00:00:00:0f:0{i}")])
        for i, h in enumerate(("fa", "fb", "fc"), start=1)
    ]
    sw = Host(
        "sw",
        interfaces=[Interface("br0", Bridge()), *(Interface(h.name, master="br0") for h in hosts)],
    )
    with netprobe.build(Spec("flood", hosts=[*hosts, sw])) as topo:
        a, b = "02:00:00:00:0f:01", "02:00:00:00:0f:02"
        everyone = ["fa:eth0", "fb:eth0", "fc:eth0"]
        broadcast = expect(
            topo,
            ethernet(a, "ff:ff:ff:ff:ff:ff"),
            "fa:eth0",
            at_exactly(["fb:eth0", "fc:eth0"], among=everyone),
        )
        assert broadcast.verdict is Verdict.PASS, broadcast.evidence()
        unknown = expect(
            topo, ethernet(a, "02:00:00:00:0f:99"), "fa:eth0", at_exactly(["fb:eth0", "fc:eth0"])
        )
        assert unknown.verdict is Verdict.PASS, unknown.evidence()
        expect(topo, ethernet(b, a), "fb:eth0", at("fa:eth0")).assert_passed()  # b learned
        known = expect(topo, ethernet(a, b), "fa:eth0", at_exactly(["fb:eth0"]))
        assert known.verdict is Verdict.PASS, known.evidence()
        wrong = expect(topo, ethernet(a, "ff:ff:ff:ff:ff:ff"), "fa:eth0", at_exactly(["fb:eth0"]))
        assert wrong.verdict is Verdict.FAIL and "reached fc:eth0" in wrong.reason


def test_a_natted_probe_is_recognised_by_its_nonce_and_its_rewrite_checked() -> None:
    with netprobe.build(netprobe.load(EXAMPLES / "nat-gateway.yaml")) as topo:
        probe = udp(
            "02:10:10:10:00:65",
            topo.mac("pve", "vmbr1"),
            "10.10.10.101",
            "203.0.113.1",
            sport=41000,
            dport=5353,
        )
        snat = ROUTED.rewriting(src="203.0.113.10").masking("sport")
        outcome = expect(topo, probe, "vm1:eth0", at("internet:eth0"), match=snat, count=3)
        assert outcome.verdict is Verdict.PASS, outcome.evidence()
        assert len(outcome.reports["internet:eth0"].copies) == 3
        naive = expect(topo, probe, "vm1:eth0", at("internet:eth0"), match=ROUTED)
        assert naive.verdict is Verdict.FAIL
        evidence = naive.evidence()
        assert "arrived altered at internet:eth0" in evidence
        assert "ip.src: expected 10.10.10.101, seen 203.0.113.10" in evidence


def test_established_flow_and_first_packet_are_judged_one_by_one() -> None:
    with netprobe.build(netprobe.load(EXAMPLES / "router.yaml")) as topo:
        _forward_rule(topo, "udp dport 6000 ct original packets > 1 drop")  # the flow's 2nd+
        outcome = expect(
            topo,
            _left_to_right(topo, 6000),
            "left:eth0",
            at("right:eth0"),
            match=ROUTED,
            count=3,
            timeout=0.3,
        )
        assert outcome.verdict is Verdict.FAIL
        assert outcome.reason == "probe 2 never reached right:eth0"
        assert [c.index for c in outcome.reports["right:eth0"].copies] == [0]


@pytest.mark.parametrize("vlan", [10, (100, 10)])
def test_vlan_tags_survive_a_veth_and_a_plain_bridge(
    redblue: netprobe.Topology, vlan: int | tuple[int, int]
) -> None:
    tags = (vlan,) if isinstance(vlan, int) else vlan
    outcome = expect(
        redblue, udp(RED, BLUE, "10.0.0.1", "10.0.0.2", vlan=vlan), "red:eth0", at("blue:eth0")
    )
    assert outcome.verdict is Verdict.PASS, outcome.evidence()
    seen = decode(outcome.reports["blue:eth0"].copies[0].frame.data)
    assert tuple(vid for _, vid in seen["vlan"]) == tags
    assert seen["vlan"][0][0] == (0x8100 if len(tags) == 1 else 0x88A8)
    on_port = expect(
        redblue, udp(RED, BLUE, "10.0.0.1", "10.0.0.2", vlan=vlan), "red:eth0", at("switch:red")
    )  # the bridge port's own view: tag still there
    assert on_port.verdict is Verdict.PASS, on_port.evidence()


def test_a_tap_is_a_vm_nic_frames_in_and_replies_out() -> None:
    with netprobe.build(netprobe.load(EXAMPLES / "nat-gateway.yaml")) as topo:
        vm_mac, vm_ip = "02:00:00:00:01:00", "10.10.10.100"
        vm = "pve:tap100i0@vm"
        who_has = arp(vm_mac, vm_ip, "10.10.10.1")
        outcome = expect(topo, who_has, vm, at("pve:tap100i0"))  # seen entering the bridge
        assert outcome.verdict is Verdict.PASS, outcome.evidence()
        replies = [decode(f.data) for f in outcome.reports["pve:tap100i0"].frames]
        assert any(f.get("arp.spa") == vm_ip for f in replies)
        vmbr1 = topo.mac("pve", "vmbr1")
        reply = Match(
            ("ip.id", "ttl", "ip.chksum", "l4.chksum"),
            {
                "eth.src": vmbr1,
                "eth.dst": vm_mac,
                "src": "10.10.10.1",
                "dst": vm_ip,
                "icmp.type": 0,
            },
        )
        echo = icmp_echo(vm_mac, vmbr1, vm_ip, "10.10.10.1")
        back = expect(topo, echo, vm, at(vm), match=reply)  # the host answers the "VM"
        assert back.verdict is Verdict.PASS, back.evidence()


def test_capture_loss_is_inconclusive_never_pass(redblue: netprobe.Topology) -> None:
    capture = ports(redblue).capture("blue:eth0")
    capture.set_buffer(4096)  # the kernel's minimum: a burst must overflow it
    try:
        outcome = expect(
            redblue,
            udp(RED, BLUE, "10.0.0.1", "10.0.0.2"),
            "red:eth0",
            at("blue:eth0"),
            count=2000,
            timeout=0.3,
        )
    finally:
        capture.set_buffer(64 << 20)
    assert outcome.verdict is Verdict.INCONCLUSIVE, outcome.evidence()
    assert "capture lost frames at blue:eth0" in outcome.reason


def test_tcpdump_backend_waits_until_listening_and_writes_a_pcap(
    redblue: netprobe.Topology, tmp_path: Path
) -> None:
    path = tmp_path / "blue.pcap"
    dump = TcpdumpCapture(
        "blue:eth0", redblue.namespace("blue"), "eth0", str(path), expression="udp"
    )
    frame, nonce = udp(RED, BLUE, "10.0.0.1", "10.0.0.2").probe()
    ports(redblue).sender("red:eth0").send(frame)
    stats = dump.stop()
    assert stats.drops == 0
    assert [find_nonce(f.data) for f in dump.frames()] == [nonce]


def test_failure_evidence_names_ports_diffs_and_pcaps(
    redblue: netprobe.Topology, tmp_path: Path
) -> None:
    outcome = expect(
        redblue,
        udp(RED, BLUE, "10.0.0.1", "10.0.0.2"),
        "red:eth0",
        at("blue:eth0"),
        match=Match(dst="10.0.0.99"),
    )
    assert outcome.verdict is Verdict.FAIL
    outcome.save_pcaps(str(tmp_path))  # else assert_passed keeps them in a new temp dir
    with pytest.raises(netprobe.CheckFailed) as failed:
        outcome.assert_passed()
    text = str(failed.value)
    assert "ip.dst: expected 10.0.0.99, seen 10.0.0.2" in text
    assert "blue:eth0 (must see it): " in text and "rewrites: dst=10.0.0.99" in text
    pcap = Path(outcome.pcaps["blue:eth0"])
    assert pcap.exists() and str(pcap) in text


def test_a_filtered_capture_never_lets_an_unfiltered_frame_through(
    redblue: netprobe.Topology,
) -> None:
    noise, _ = ethernet(RED, BLUE).probe()
    sender = ports(redblue).sender("red:eth0")
    sender.send_many([noise] * 50)  # queued before the capture exists: must never show
    only_udp = ports(redblue).capture("blue:eth0", filter="udp")
    sender.send_many([noise] * 50)
    frame, nonce = udp(RED, BLUE, "10.0.0.1", "10.0.0.2").probe()
    sender.send(frame)
    seen = only_udp.read()
    assert [find_nonce(f.data) for f in seen] == [nonce]
    assert only_udp.stats().drops == 0


def test_a_vlan_filter_sees_the_tag_the_kernel_moved_aside(redblue: netprobe.Topology) -> None:
    tagged = ports(redblue).capture("blue:eth0", filter="vlan 10 and udp")
    sender = ports(redblue).sender("red:eth0")
    other, _ = udp(RED, BLUE, "10.0.0.1", "10.0.0.2", vlan=20).probe()
    untagged, _ = udp(RED, BLUE, "10.0.0.1", "10.0.0.2").probe()
    frame, nonce = udp(RED, BLUE, "10.0.0.1", "10.0.0.2", vlan=10).probe()
    sender.send_many([other, untagged, frame])
    assert [find_nonce(f.data) for f in tagged.read()] == [nonce]


def test_frames_a_tap_drops_before_the_vm_reads_them_are_counted() -> None:
    with netprobe.build(netprobe.load(EXAMPLES / "nat-gateway.yaml")) as topo:
        burst = ethernet("02:10:10:10:00:65", "ff:ff:ff:ff:ff:ff")
        # the TAP's queue holds ~1000 frames: unread, the rest are dropped, and counted
        outcome = expect(topo, burst, "vm1:eth0", at("pve:tap100i0@vm"), count=1500,
                         timeout=0.5)
    assert outcome.verdict is Verdict.INCONCLUSIVE, outcome.reason
    assert "capture lost frames at pve:tap100i0@vm" in outcome.reason
