"""Pure parsing behind explain: the tracepoint format, trace lines, nft monitor output,
/proc counters and kallsyms, from text captured on a real machine (captures/explain/)."""

from __future__ import annotations

from support import paths

from netprobe.explain._counters import (
    HostCounters,
    Snapshot,
    deltas,
    parse_netdev,
    parse_nft_counters,
    parse_snmp,
    parse_snmp6,
)
from netprobe.explain._nfttrace import final_verdict, match_expression, parse_monitor, trace_table
from netprobe.traffic import _craft as craft
from netprobe.traffic._droptrace import Wiring, attribute, parse_line, parse_reasons, parse_trace
from netprobe.traffic._tracefs import Symbols, _parse_stats, stale

CAPTURES = paths.CAPTURES / "explain"


def test_reason_names_come_from_the_format_file() -> None:
    reasons = parse_reasons((CAPTURES / "kfree_skb.format").read_text())
    assert reasons[2] == "NOT_SPECIFIED"
    assert {"NO_SOCKET", "OTHERHOST", "IP_RPFILTER", "IP_INNOROUTES", "NETFILTER_DROP"} <= set(
        reasons.values()
    )
    assert len(reasons) == len(set(reasons))


def test_a_format_without_reasons_gives_none() -> None:
    old = 'print fmt: "skbaddr=%p protocol=%u location=%p", REC->skbaddr, REC->protocol'
    assert parse_reasons(old) == {}


def test_a_kfree_skb_line_parses() -> None:
    line = (
        "          python-15725   [000] ..s1.  8012.031298: kfree_skb: skbaddr=000000009e8073da "
        "rx_sk=0000000000000000 protocol=2048 location=ip_error+0x94/0x210 reason: IP_INADDRERRORS"
    )
    event = parse_line(line)
    assert event is not None
    assert (event.event, event.task, event.pid, event.cpu) == ("kfree_skb", "python", 15725, 0)
    assert event.skbaddr == "000000009e8073da"
    assert event.fields["reason"] == "IP_INADDRERRORS"
    assert event.fields["location"] == "ip_error+0x94/0x210"


def test_task_names_with_dashes_and_headers() -> None:
    event = parse_line(
        " kworker/u4:1-events_unbound-123 [001] b....  1.5: net_dev_xmit: "
        "dev=eth0 skbaddr=ab len=58 rc=0"
    )
    assert event is not None and event.task == "kworker/u4:1-events_unbound" and event.pid == 123
    assert (event.dev, event.length) == ("eth0", 58)
    assert parse_line("# tracer: nop") is None


def test_events_after_the_marker_only() -> None:
    text = (CAPTURES / "trace.txt").read_text()
    events = parse_trace(text, "netprobe probe 1: Ether / IP / UDP")
    assert [e.event for e in events][:2] == ["net_dev_xmit", "netif_receive_skb"]
    assert len(parse_trace(text)) == 9


def _router() -> Wiring:
    return Wiring(
        {"eth0": ("left", "right", "router"), "eth1": ("router",)},
        {
            ("left", "eth0"): ("router", "eth0"),
            ("router", "eth0"): ("left", "eth0"),
            ("right", "eth0"): ("router", "eth1"),
            ("router", "eth1"): ("right", "eth0"),
        },
    )


def test_drops_are_attributed_by_buffer_not_by_time() -> None:
    events = parse_trace((CAPTURES / "trace.txt").read_text(), "netprobe probe 1: Ether / IP / UDP")
    drops, path, others = attribute(events, frame_len=58, first_host="left", wiring=_router())
    assert [(d.reason, d.host, d.device) for d in drops] == [("IP_INADDRERRORS", "router", "eth0")]
    assert [h.describe() for h in path] == ["left by left:eth0", "arrived on router:eth0"]
    # the IPv6 multicast drop on another eth0 at the same moment is not the probe's
    assert [o.reason for o in others] == ["NOT_SPECIFIED"]


def test_a_consumed_buffer_ends_the_chain() -> None:
    lines = [
        "p-1 [000] ..... 1.0: net_dev_xmit: dev=eth0 skbaddr=aa len=58 rc=0",
        "p-1 [000] ..... 1.1: consume_skb: skbaddr=aa location=x",
        "p-1 [000] ..... 1.2: kfree_skb: skbaddr=aa protocol=2048 location=y reason: NO_SOCKET",
    ]
    events = [e for e in map(parse_line, lines) if e]
    drops, _, others = attribute(events, frame_len=58, first_host="left", wiring=_router())
    assert drops == [] and len(others) == 1


def test_symbols_resolve_addresses() -> None:
    symbols = Symbols("ffffffff81000000 T _text\nffffffff81000100 T ip_error\n")
    assert symbols.resolve("ffffffff81000110") == "ip_error+0x10"
    assert symbols.resolve("ip_error+0x94/0x210") == "ip_error+0x94/0x210"
    assert Symbols("0000000000000000 T ip_error\n").resolve("ffffffff81000110") == (
        "ffffffff81000110"
    )


def test_ring_buffer_stats_and_stale_instances() -> None:
    stats = _parse_stats("entries: 5\noverrun: 3\ncommit overrun: 0\ndropped events: 1\n")
    assert stats["overrun"] == 3 and stats["dropped events"] == 1
    assert stale(["netprobe-abc-999999999-1", "other"]) == ["netprobe-abc-999999999-1"]


def test_nft_monitor_trace_gives_the_rule_that_dropped() -> None:
    steps = parse_monitor((CAPTURES / "nft-monitor-trace.txt").read_text())
    assert [s.kind for s in steps] == ["packet", "rule", "policy", "packet", "rule", "rule"]
    final = final_verdict(steps)
    assert final is not None
    assert final.rule == "udp dport 9 reject with icmp port-unreachable"
    assert (final.family, final.table, final.chain, final.handle) == ("ip", "filter", "SVC", 2)
    assert final.action == "reject"
    assert steps[4].verdict == "jump SVC"
    assert final.describe() == (
        "rule `udp dport 9 reject with icmp port-unreachable` (chain ip filter SVC, handle 2)"
    )


def test_the_trace_match_is_the_probe_nonce() -> None:
    frame = craft.udp("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2")
    nonce = bytes(range(16))
    assert match_expression(frame, nonce) == "@th,64,128 0x000102030405060708090a0b0c0d0e0f"
    tcp = craft.tcp("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2")
    assert match_expression(tcp, nonce).startswith("@th,160,128 ")  # type: ignore[union-attr]
    assert match_expression(craft.ethernet("02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff"), nonce) is None
    script = trace_table(["inet"], "@th,64,128 0x00")
    assert "hook prerouting priority -500" in script and "meta nftrace set 1" in script


def test_proc_counters_parse() -> None:
    netdev = (
        "Inter-|   Receive  |  Transmit\n face |bytes packets\n"
        "  eth0:     580      10    0    1    0     0          0         0      116       2"
        "    0    0    0     0       0          0\n"
    )
    assert parse_netdev(netdev)["eth0"]["rx_dropped"] == 1
    snmp = "Ip: Forwarding InAddrErrors\nIp: 2 7\nUdp: NoPorts\nUdp: 3\n"
    assert parse_snmp(snmp) == {"IpForwarding": 2, "IpInAddrErrors": 7, "UdpNoPorts": 3}
    assert parse_snmp6("Ip6InNoRoutes                   \t4\n") == {"Ip6InNoRoutes": 4}


def test_nft_counters_and_their_deltas() -> None:
    ruleset = (
        "table inet fw { # handle 1\n\tchain forward { # handle 1\n"
        "\t\ttype filter hook forward priority filter; policy accept;\n"
        "\t\tudp dport 9 counter packets 3 bytes 132 drop # handle 2\n\t}\n}\n"
    )
    counted = parse_nft_counters(ruleset)
    assert counted == {"inet fw forward #2": ("udp dport 9 drop", 3)}
    before = Snapshot({"r": HostCounters("r", {}, {"IpInNoRoutes": 1}, counted)})
    after = Snapshot(
        {"r": HostCounters("r", {}, {"IpInNoRoutes": 2}, {"inet fw forward #2": ("x", 4)})}
    )
    assert [d.describe() for d in deltas(before, after)] == ["r IpInNoRoutes +1", "r `x` +1"]


def test_a_new_buffer_joins_the_probe_only_where_the_probe_is() -> None:
    lines = [
        "p-1 [000] ..... 1.0000: net_dev_xmit: dev=eth0 skbaddr=aa len=58 rc=0",
        "p-1 [000] ..... 1.0001: netif_receive_skb: dev=eth0 skbaddr=aa len=44",
        # another namespace's eth0, same length: not a copy of the probe
        "q-2 [001] ..... 1.0001: netif_receive_skb: dev=eth0 skbaddr=bb len=44",
        "q-2 [001] ..... 1.0002: kfree_skb: skbaddr=bb protocol=2048 location=z reason: NO_SOCKET",
        # a copy sent out of a host the probe reached (a flood): it is the probe's
        "p-1 [000] ..... 1.0003: net_dev_xmit: dev=eth1 skbaddr=cc len=58 rc=0",
        "p-1 [000] ..... 1.0004: netif_receive_skb: dev=eth0 skbaddr=cc len=44",
        "p-1 [000] ..... 1.0005: kfree_skb: skbaddr=cc protocol=2048 location=y reason: NO_SOCKET",
    ]
    events = [e for e in map(parse_line, lines) if e]
    drops, path, others = attribute(
        events, frame_len=58, first_host="left", wiring=_router(), first_dev="eth0"
    )
    assert [(d.host, d.device) for d in drops] == [("right", "eth0")]
    assert [h.describe() for h in path] == [
        "left by left:eth0",
        "arrived on router:eth0",
        "left by router:eth1",
        "arrived on right:eth0",
    ]
    assert [o.location for o in others] == ["z"]


def test_answers_and_the_senders_other_frames_stay_off_the_path() -> None:
    """An echo reply is as long as the echo request, and may leave within the clone
    window or not, as the machine's load has it: the path must not depend on that."""
    lines = [
        "p-1 [000] ..... 1.0000: net_dev_xmit: dev=eth0 skbaddr=aa len=98 rc=0",
        "p-1 [000] ..... 1.0001: netif_receive_skb: dev=eth0 skbaddr=aa len=84",
        "p-1 [000] ..... 1.0002: net_dev_xmit: dev=eth1 skbaddr=aa len=98 rc=0",
        "p-1 [000] ..... 1.0003: netif_receive_skb: dev=eth0 skbaddr=aa len=84",
        "p-1 [000] ..... 1.0004: consume_skb: skbaddr=aa location=icmp_rcv",
        # right's echo reply, back out of the device the probe came in by
        "p-1 [000] ..... 1.0005: net_dev_xmit: dev=eth0 skbaddr=bb len=98 rc=0",
        "p-1 [000] ..... 1.0006: netif_receive_skb: dev=eth1 skbaddr=bb len=84",
        # the sender's barrier echo, out of its own port
        "p-1 [000] ..... 1.0007: net_dev_xmit: dev=eth0 skbaddr=cc len=98 rc=0",
        "p-1 [000] ..... 1.0008: kfree_skb: skbaddr=bb protocol=2048 location=ping_rcv "
        "reason: NO_SOCKET",
    ]
    events = [e for e in map(parse_line, lines) if e]
    for _ in range(3):
        drops, path, others = attribute(
            events, frame_len=98, first_host="left", wiring=_router(), first_dev="eth0"
        )
        assert [h.describe() for h in path] == [
            "left by left:eth0",
            "arrived on router:eth0",
            "left by router:eth1",
            "arrived on right:eth0",
        ]
        assert drops == [] and [o.location for o in others] == ["ping_rcv"]
