"""Traffic: netprobe's injection, capture and expectations against bare sockets and scapy.

Four measurements, side by side in one run, all on topologies netprobe builds (so every
frame stays between this benchmark's own namespaces):

  inject    one prebuilt 60-byte frame sent N times from a:eth0 (a veth to b:eth0):
            netprobe `Sender.send_many` vs a bare `socket.send` loop on the very same
            raw socket vs scapy `sendp()` called once per frame (run inside a's
            namespace by `ip netns exec`, only its sending loop timed);
  capture   a burst of N frames a:eth0 → b:eth0 at full speed, captured on b:eth0 by
            netprobe's `Capture` (drained, burst sent, then read) vs scapy's
            `AsyncSniffer` (in b's namespace, ready before the burst);
  nowhere   "this probe reaches none of 64 ports": a star of 65 hosts on one bridge,
            an nft rule on the bridge drops the probe, the broadcast barrier decides;
  at        one positive expectation (inject, capture, verdict) on examples/redblue.yaml.

The last line of output is one line of JSON.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import json
import os
import select
import shlex
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # so `python3 bench/traffic.py` runs from a checkout

import netprobe  # noqa: E402
from netprobe import Bridge, Host, Interface, Spec, Veth  # noqa: E402
from netprobe.expect import Verdict, at, expect, nowhere  # noqa: E402
from netprobe.topology import Topology  # noqa: E402
from netprobe.traffic import Capture, Sender, Template, ethernet, ports, udp  # noqa: E402

MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"
BURST_ETHERTYPE = 0x88B5  # netprobe's local experimental type: nothing else sends it
LEAVES = 65  # h0 sends, h1..h64 must not see the probe
DROPPED_DPORT = 7777
PTF_WAIT_PER_PORT = 0.1  # PTF's default negative-check timeout, per port


@dataclass(frozen=True)
class Sizes:
    inject: int
    inject_rounds: int
    sendp: int
    burst: int
    nowhere_reps: int
    at_reps: int


FULL = Sizes(
    inject=200_000, inject_rounds=5, sendp=300, burst=200_000, nowhere_reps=50, at_reps=200
)
QUICK = Sizes(inject=20_000, inject_rounds=2, sendp=30, burst=20_000, nowhere_reps=5, at_reps=20)


# -- topologies -----------------------------------------------------------------------


def pair_spec() -> Spec:
    """Two hosts joined by one veth: a:eth0 ═══ b:eth0."""
    addr = ipaddress.ip_interface
    a = Host(
        "a", interfaces=(Interface("eth0", Veth("b:eth0"), (addr("10.0.0.1/24"),), mac=MAC_A),)
    )
    b = Host("b", interfaces=(Interface("eth0", None, (addr("10.0.0.2/24"),), mac=MAC_B),))
    return Spec("trafficpair", hosts=(a, b))


def leaf_mac(i: int) -> str:
    return f"02:00:00:00:{(i + 1) >> 8:02x}:{(i + 1) & 0xFF:02x}"


def leaf_ip(i: int) -> str:
    return f"10.0.{i // 250}.{i % 250 + 1}"


def star_spec(leaves: int) -> Spec:
    """Host "sw" with bridge br0 and ports p0..; host hI's eth0 is the far end of pI."""
    bridge_ports = tuple(Interface(f"p{i}", master="br0") for i in range(leaves))
    sw = Host("sw", interfaces=(Interface("br0", Bridge()), *bridge_ports))
    hosts = [
        Host(
            f"h{i}",
            interfaces=(
                Interface(
                    "eth0",
                    Veth(f"sw:p{i}"),
                    (ipaddress.ip_interface(f"{leaf_ip(i)}/16"),),
                    mac=leaf_mac(i),
                ),
            ),
        )
        for i in range(leaves)
    ]
    return Spec("trafficstar", hosts=(sw, *hosts))


# -- scapy, run inside a namespace ----------------------------------------------------

# Both scripts talk JSON lines on stdout; scapy is imported there, in the namespace it
# works in, because scapy's interface list belongs to the namespace it was imported in.
SENDP_SCRIPT = """
import json, sys, time
from scapy.all import Raw, sendp
frame, n = Raw(bytes.fromhex(sys.argv[1])), int(sys.argv[2])
for _ in range(3):
    sendp(frame, iface="eth0", verbose=False)  # warm-up: first-call imports and caches
t0 = time.perf_counter()
for _ in range(n):
    sendp(frame, iface="eth0", verbose=False)
print(json.dumps({"sent": n, "seconds": time.perf_counter() - t0}), flush=True)
"""

# The listen socket is scapy's own (conf.L2listen, what sniff() opens for iface=...),
# handed over as opened_socket only so that PACKET_STATISTICS can be read from it.
SNIFF_SCRIPT = """
import json, struct, sys, time
from scapy.all import AsyncSniffer, conf
from scapy.data import ETH_P_ALL
nonce = bytes.fromhex(sys.argv[1])
sock = conf.L2listen(iface="eth0", type=ETH_P_ALL)
got = 0
def count(packet):
    global got
    if nonce in bytes(packet):
        got += 1
sniffer = AsyncSniffer(opened_socket=sock, prn=count, store=False)
sniffer.start()
while not (sniffer.running and hasattr(sniffer, "continue_sniff")):  # start() returns early
    time.sleep(0.01)
time.sleep(0.2)
stats = lambda: struct.unpack("=II", sock.ins.getsockopt(263, 6, 8))  # resets on read
stats()
print(json.dumps({"ready": True}), flush=True)
sys.stdin.readline()  # the burst has been sent
last, quiet_since = -1, time.monotonic()
while time.monotonic() - quiet_since < 1.0:  # let it work through its queue
    if got != last:
        last, quiet_since = got, time.monotonic()
    time.sleep(0.05)
packets, drops = stats()
sniffer.stop()
print(json.dumps({"received": got, "kernel_packets": packets, "drops": drops}), flush=True)
"""


def in_namespace(ns: str, script: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-c", textwrap.dedent(script), *args]


def scapy_sendp(ns: str, frame: bytes, n: int) -> float:
    """Frames/s of scapy sendp() called per frame, inside namespace `ns`."""
    proc = subprocess.run(
        in_namespace(ns, SENDP_SCRIPT, frame.hex(), str(n)),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(result["sent"]) / float(result["seconds"])


def scapy_sniff(ns: str, nonce: bytes, send_burst: Callable[[], float]) -> dict[str, Any]:
    """Start scapy's sniffer in `ns`, wait until it reads, send the burst, collect counts."""
    with subprocess.Popen(
        in_namespace(ns, SNIFF_SCRIPT, nonce.hex()),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            if not json.loads(proc.stdout.readline() or "{}").get("ready"):
                raise RuntimeError("scapy sniffer did not start")
            rate = send_burst()
            proc.stdin.write("sent\n")
            proc.stdin.flush()
            result: dict[str, Any] = json.loads(proc.stdout.readline())
            proc.wait(timeout=30)
        except BaseException:
            proc.kill()  # our own child, blocked on stdin: it would never exit by itself
            raise
    result["burst_fps"] = rate
    return result


# -- 1. inject -------------------------------------------------------------------------


def inject(topo: Topology, frame: bytes, sizes: Sizes) -> dict[str, float]:
    """Frames/s for send_many and a bare loop on the same socket (alternating rounds,
    medians), and scapy sendp() per frame."""
    tx = ports(topo).sender("a:eth0")
    assert isinstance(tx, Sender)
    n = sizes.inject

    def with_netprobe() -> float:
        t0 = time.perf_counter()
        tx.send_many(itertools.repeat(frame, n))
        return n / (time.perf_counter() - t0)

    def bare() -> float:
        send = tx.sock.send  # bound once, as any hand-written tight loop would
        t0 = time.perf_counter()
        for _ in range(n):
            send(frame)
        return n / (time.perf_counter() - t0)

    bare(), with_netprobe()  # warm-up: page in, settle the CPU frequency
    rounds: dict[str, list[float]] = {"netprobe": [], "bare": []}
    paired = []  # one round's two runs are back to back: load from others hits both
    for i in range(sizes.inject_rounds):
        order = [("netprobe", with_netprobe), ("bare", bare)]
        for name, run in order if i % 2 == 0 else order[::-1]:  # neither always goes first
            rounds[name].append(run())
        paired.append(rounds["netprobe"][-1] / rounds["bare"][-1])
    ns = topo.namespace("a")
    assert ns is not None
    return {
        "netprobe": statistics.median(rounds["netprobe"]),
        "bare": statistics.median(rounds["bare"]),
        "paired_ratio": statistics.median(paired),
        "scapy_sendp": scapy_sendp(ns, frame, sizes.sendp),
    }


# -- 2. capture ------------------------------------------------------------------------

BIG_BUFFER = 128 << 20  # what DEFAULT_BUFFER now is; 64 MB held only ~161k 60-byte frames


def burst_sender(topo: Topology, frame: bytes, n: int) -> Callable[[], float]:
    tx = ports(topo).sender("a:eth0")

    def send() -> float:
        t0 = time.perf_counter()
        tx.send_many(itertools.repeat(frame, n))
        return n / (time.perf_counter() - t0)

    return send


def read_burst(cap: Capture, template: Template, nonce: bytes, n: int) -> int:
    """Frames carrying `nonce` read from `cap` until N came or nothing new for 0.5 s
    (softirq may still be delivering the tail when the sender returns)."""
    start, end = template.nonce_at, template.nonce_at + len(nonce)
    poller = select.poll()
    poller.register(cap.fileno(), select.POLLIN)
    got = 0
    while got < n and poller.poll(500):
        got += sum(1 for f in cap.read() if f.data[start:end] == nonce)
    return got


def read_after(topo: Topology, cap: Capture, template: Template, n: int) -> dict[str, Any]:
    """What expect() does: drain, send everything, then read what was queued."""
    frame, nonce = template.probe()
    cap.drain()
    rate = burst_sender(topo, frame, n)()
    t0 = time.perf_counter()
    got = read_burst(cap, template, nonce, n)
    read_s = time.perf_counter() - t0
    return {"received": got, "drops": cap.stats().drops, "burst_fps": rate, "read_s": read_s}


def read_during(topo: Topology, cap: Capture, template: Template, n: int) -> dict[str, Any]:
    """A reader thread empties the socket while the burst is sent (it shares the GIL)."""
    frame, nonce = template.probe()
    cap.drain()
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.append(read_burst(cap, template, nonce, n)))
    reader.start()
    rate = burst_sender(topo, frame, n)()
    reader.join()
    return {"received": got[0], "drops": cap.stats().drops, "burst_fps": rate}


def capture(topo: Topology, template: Template, n: int) -> dict[str, dict[str, Any]]:
    """scapy first, while no netprobe socket on b:eth0 shares the burst's cost; then
    netprobe's, each contender with its own burst (a fresh nonce)."""
    ns = topo.namespace("b")
    assert ns is not None
    frame, nonce = template.probe()
    result = {"scapy": scapy_sniff(ns, nonce, burst_sender(topo, frame, n))}
    big = Capture("b:eth0", topo.fd_of("b"), topo.ifname("b", "eth0"), buffer=BIG_BUFFER)
    try:
        result["big_buffer"] = read_after(topo, big, template, n)
    finally:
        big.close()
    cached = ports(topo).capture("b:eth0")  # the socket expect() uses, default buffer
    assert isinstance(cached, Capture)
    result["netprobe"] = read_after(topo, cached, template, n)
    result["concurrent"] = read_during(topo, cached, template, n)
    return result


# -- 3. nowhere, decided by the barrier ------------------------------------------------

NFT_DROP = [
    shlex.split(line)
    for line in (
        "nft add table bridge npbench",
        "nft add chain bridge npbench pass '{ type filter hook forward priority 0; }'",
        f"nft add rule bridge npbench pass udp dport {DROPPED_DPORT} drop",
    )
]


def timed(call: Callable[[], Any], reps: int) -> tuple[list[float], list[Any]]:
    """Wall-clock seconds of each call, and what each returned."""
    times, results = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        results.append(call())
        times.append(time.perf_counter() - t0)
    return times, results


def negative(topo: Topology, reps: int) -> dict[str, Any]:
    """h0 → h1 on port 7777, which the bridge's nft rule drops: must reach none of 64."""
    probe = udp(leaf_mac(0), leaf_mac(1), leaf_ip(0), leaf_ip(1), dport=DROPPED_DPORT)
    others = [f"h{i}:eth0" for i in range(1, LEAVES)]

    def call() -> Any:
        return expect(topo, probe, "h0:eth0", nowhere(among=others))

    # control: without the rule the same expectation must fail (so the PASS is earned);
    # it also opens the 64 capture sockets and the sender (the warm-up)
    control = call()
    for argv in NFT_DROP:
        topo.run("sw", argv, check=True)
    call()
    times, outcomes = timed(call, reps)
    verdicts = {o.verdict for o in outcomes}
    return {
        "ms": statistics.median(times) * 1000,
        "max_ms": max(times) * 1000,
        "elapsed_ms": statistics.median(o.elapsed for o in outcomes) * 1000,
        "verdicts": sorted(v.value for v in verdicts),
        "decided_by": sorted({o.decided_by for o in outcomes}),
        "control": control.verdict.value,
        "ok": verdicts == {Verdict.PASS} and control.verdict is Verdict.FAIL,
    }


# -- 4. at: one positive expectation -------------------------------------------------


def positive(topo: Topology, reps: int) -> dict[str, Any]:
    red, blue = (topo.spec.host(h).interface("eth0") for h in ("red", "blue"))
    assert red is not None and blue is not None and red.mac and blue.mac
    probe = udp(red.mac, blue.mac, str(red.addresses[0].ip), str(blue.addresses[0].ip))

    def call() -> Any:
        return expect(topo, probe, "red:eth0", at("blue:eth0"))

    call()  # warm-up: opens the capture on blue and the sender on red
    times, outcomes = timed(call, reps)
    verdicts = {o.verdict for o in outcomes}
    return {
        "ms": statistics.median(times) * 1000,
        "p90_ms": statistics.quantiles(times, n=10)[-1] * 1000,
        "elapsed_ms": statistics.median(o.elapsed for o in outcomes) * 1000,
        "verdicts": sorted(v.value for v in verdicts),
        "ok": verdicts == {Verdict.PASS},
    }


# -- report --------------------------------------------------------------------------


def summary(
    inj: dict[str, float],
    cap: dict[str, dict[str, Any]],
    neg: dict[str, Any],
    pos: dict[str, Any],
    burst: int,
) -> dict[str, Any]:
    ptf_ms = PTF_WAIT_PER_PORT * (LEAVES - 1) * 1000
    np_cap, sc_cap = cap["netprobe"], cap["scapy"]
    ratio = {
        "inject_netprobe_vs_bare": round(inj["netprobe"] / inj["bare"], 3),
        "inject_netprobe_vs_bare_paired": round(inj["paired_ratio"], 3),
        "inject_netprobe_vs_scapy_sendp": round(inj["netprobe"] / inj["scapy_sendp"], 1),
        "nowhere64_ptf_vs_netprobe": round(ptf_ms / neg["ms"], 1),
    }
    bars = {
        "inject_vs_bare_ge_0.6": ratio["inject_netprobe_vs_bare"] >= 0.6,
        "inject_vs_scapy_ge_100": ratio["inject_netprobe_vs_scapy_sendp"] >= 100,
        "capture_zero_loss": np_cap["received"] == burst and np_cap["drops"] == 0,
        "nowhere64_le_20ms": neg["ms"] <= 20 and neg["ok"],
        "at_median_le_5ms": pos["ms"] <= 5 and pos["ok"],
    }
    return {
        "bench": "traffic",
        "netprobe": {
            "inject_fps": round(inj["netprobe"]),
            "capture_sent": burst,
            "capture_received": np_cap["received"],
            "capture_drops": np_cap["drops"],
            "capture_burst_fps": round(np_cap["burst_fps"]),
            "capture_read_s": round(np_cap["read_s"], 3),
            "capture_128mb_received": cap["big_buffer"]["received"],
            "capture_128mb_drops": cap["big_buffer"]["drops"],
            "capture_thread_received": cap["concurrent"]["received"],
            "capture_thread_drops": cap["concurrent"]["drops"],
            "capture_thread_burst_fps": round(cap["concurrent"]["burst_fps"]),
            "nowhere64_ms": round(neg["ms"], 3),
            "nowhere64_verdicts": neg["verdicts"],
            "at_ms": round(pos["ms"], 3),
            "at_verdicts": pos["verdicts"],
        },
        "baseline": {
            "bare_send_fps": round(inj["bare"]),
            "scapy_sendp_fps": round(inj["scapy_sendp"], 1),
            "scapy_sniff_sent": burst,
            "scapy_sniff_received": sc_cap["received"],
            "scapy_sniff_drops": sc_cap["drops"],
            "scapy_sniff_burst_fps": round(sc_cap["burst_fps"]),
            "ptf_nowhere64_ms_not_measured": ptf_ms,
        },
        "ratio": ratio,
        "bars_met": bars,
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }


def print_table(s: dict[str, Any], neg: dict[str, Any], pos: dict[str, Any]) -> None:
    n, b, r, ok = s["netprobe"], s["baseline"], s["ratio"], s["bars_met"]

    def bar(text: str, key: str) -> str:
        return f"{text}  {'met' if ok[key] else 'MISSED'}"

    def got(prefix: str, src: dict[str, Any]) -> str:
        sent, drops = n["capture_sent"], src[f"{prefix}_drops"]
        return f"{src[f'{prefix}_received']:,}/{sent:,}, {drops:,} drops"

    vs_bare = f"{r['inject_netprobe_vs_bare']:.2f} [{r['inject_netprobe_vs_bare_paired']:.2f}]"
    verdicts = f"{'/'.join(neg['verdicts'])} by {'/'.join(neg['decided_by'])}"
    rows = [
        ("inject: netprobe send_many", f"{n['inject_fps']:,} frames/s", ""),
        ("inject: bare socket.send loop", f"{b['bare_send_fps']:,} frames/s", ""),
        ("inject: scapy sendp() per frame", f"{b['scapy_sendp_fps']:,} frames/s", ""),
        ("  netprobe / bare [paired]", vs_bare, bar(">= 0.6", "inject_vs_bare_ge_0.6")),
        (
            "  netprobe / scapy sendp",
            f"{r['inject_netprobe_vs_scapy_sendp']:,.0f}x",
            bar(">= 100", "inject_vs_scapy_ge_100"),
        ),
        ("capture: netprobe, read after", got("capture", n), bar("no loss", "capture_zero_loss")),
        (
            "  burst sent at, then read in",
            f"{n['capture_burst_fps']:,} frames/s, {n['capture_read_s']:.2f} s",
            "default buffer",
        ),
        ("  same, Capture(buffer=128 MB)", got("capture_128mb", n), "diagnostic"),
        (
            "  default, reader thread",
            got("capture_thread", n),
            f"diagnostic, burst {n['capture_thread_burst_fps']:,}/s",
        ),
        ("capture: scapy AsyncSniffer", got("scapy_sniff", b), ""),
        ("  burst sent at", f"{b['scapy_sniff_burst_fps']:,} frames/s", ""),
        (
            "nowhere among 64, whole call",
            f"{neg['ms']:.2f} ms median (max {neg['max_ms']:.1f})",
            bar("<= 20 ms", "nowhere64_le_20ms"),
        ),
        ("  send to verdict (elapsed)", f"{neg['elapsed_ms']:.2f} ms", verdicts),
        ("  control, no nft rule", neg["control"], "must be FAIL"),
        (
            "  PTF default (not measured)",
            f"{b['ptf_nowhere64_ms_not_measured']:,.0f} ms",
            f"{r['nowhere64_ptf_vs_netprobe']:,.0f}x netprobe",
        ),
        (
            "at(blue), whole call",
            f"{pos['ms']:.3f} ms median (p90 {pos['p90_ms']:.3f})",
            bar("<= 5 ms", "at_median_le_5ms"),
        ),
        ("  send to verdict (elapsed)", f"{pos['elapsed_ms']:.3f} ms", "/".join(pos["verdicts"])),
    ]
    for what, figure, note in rows:
        print(f"{what:<34} {figure:<36} {note}")
    print(f"(1-minute load average at the end: {s['loadavg_1min']})")


def leftovers(runids: list[str]) -> list[str]:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [
        line.split()[0]
        for line in names.splitlines()
        if line and any(line.startswith(f"np-{r}-") for r in runids)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller N: a smoke run")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root: it builds network namespaces")
    sizes = QUICK if args.quick else FULL
    runids: list[str] = []
    template = ethernet(MAC_A, MAC_B, ethertype=BURST_ETHERTYPE, size=60)
    frame = template.probe()[0]
    assert len(frame) == 60, len(frame)
    with netprobe.build(pair_spec()) as topo:
        runids.append(topo.runid)
        print("inject ...", file=sys.stderr, flush=True)
        inj = inject(topo, frame, sizes)
        print("capture ...", file=sys.stderr, flush=True)
        cap = capture(topo, template, sizes.burst)
    with netprobe.build(star_spec(LEAVES)) as topo:
        runids.append(topo.runid)
        print("nowhere among 64 ...", file=sys.stderr, flush=True)
        neg = negative(topo, sizes.nowhere_reps)
    with netprobe.build(netprobe.load(str(ROOT / "examples/redblue.yaml"))) as topo:
        runids.append(topo.runid)
        print("at ...", file=sys.stderr, flush=True)
        pos = positive(topo, sizes.at_reps)
    result = summary(inj, cap, neg, pos, sizes.burst)
    print_table(result, neg, pos)
    left = leftovers(runids)
    print(f"namespaces left behind: {left or 'none'}", file=sys.stderr)
    print(json.dumps(result))
    return 0 if not left else 1


if __name__ == "__main__":
    sys.exit(main())
