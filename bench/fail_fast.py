"""Failing fast: how long a positive expectation that cannot succeed takes to FAIL, and
what a passing one costs, with the late watch and without it.

Two topologies: "routed", the kernel NAT selftest's network (ns1 ─ router ns0 ─ ns2, a UDP
probe ns1→ns2 expected at ns2:eth0), and "bridged", examples/redblue.yaml (red → blue
through a Linux bridge). Failures:

  forwarding_off  routed, `net.ipv4.conf.veth0.forwarding=0` on ns0 (as the selftest has it)
  nft_drop        routed, an nft forward-chain rule on ns0 drops the probe
  bridge_drop     bridged, an nft bridge-family rule on the switch drops it
  bridge_barrier  the same, with the drop trace made unavailable: the barrier decides

Each failure runs --fail-reps times with the watch (median, p90 of the expectation's
wall time, and how it was decided) and --before-reps times without it (`LATE` set to
infinity: the code path as it was, which waits out the 1 s deadline). Passing positives,
routed and bridged, run --pass-reps times each with the watch and without, interleaved,
so load from other users falls on both. The last line of output is one line of JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import netprobe  # noqa: E402
from netprobe.errors import SetupError  # noqa: E402
from netprobe.expect import ROUTED, Outcome, _expectation, _late, at, expect, prepare  # noqa: E402  # noqa: E402
from netprobe.topology import Topology  # noqa: E402
from netprobe.traffic import _topotrace, udp  # noqa: E402

ROUTED_SPEC = """
name: failfast
hosts:
  ns0:
    interfaces:
      veth0: {veth: ns1:eth0, addresses: [10.0.1.1/24]}
      veth1: {veth: ns2:eth0, addresses: [10.0.2.1/24]}
    sysctls: {net.ipv4.conf.veth0.forwarding: 1, net.ipv4.conf.veth1.forwarding: 1}
  ns1:
    interfaces: {eth0: {addresses: [10.0.1.99/24]}}
    routes: [{to: default, via: 10.0.1.1}]
  ns2:
    interfaces: {eth0: {addresses: [10.0.2.99/24]}}
    routes: [{to: default, via: 10.0.2.1}]
"""
FORWARD_DROP = (
    "table inet ff {\n chain f { type filter hook forward priority 0; udp dport 9 drop; }\n}\n"
)
BRIDGE_DROP = (
    "table bridge ff {\n chain f { type filter hook forward priority 0; udp dport 9 drop; }\n}\n"
)


def routed(topo: Topology) -> Callable[[], Outcome]:
    """The routed expectation (its probe built once: the timing is the expectation's)."""
    probe = udp(topo.mac("ns1:eth0"), topo.mac("ns0:veth0"), "10.0.1.99", "10.0.2.99")
    return lambda: expect(topo, probe, "ns1:eth0", at("ns2:eth0"), match=ROUTED)


def bridged(topo: Topology) -> Callable[[], Outcome]:
    probe = udp(topo.mac("red:eth0"), topo.mac("blue:eth0"), "10.0.0.1", "10.0.0.2")
    return lambda: expect(topo, probe, "red:eth0", at("blue:eth0"))


@contextlib.contextmanager
def watch(on: bool) -> Iterator[None]:
    """The late watch as shipped, or off (`LATE` infinite: the deadline decides)."""
    before = _expectation.LATE
    _expectation.LATE = _late.LATE if on else float("inf")
    try:
        yield
    finally:
        _expectation.LATE = before


@contextlib.contextmanager
def no_drop_trace() -> Iterator[None]:
    def refuse(self: object) -> None:
        raise SetupError("drop trace made unavailable by the benchmark")

    saved, opener = _topotrace._cache, _topotrace.DropTrace.open
    _topotrace._cache = weakref.WeakKeyDictionary()
    _topotrace.DropTrace.open = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        _topotrace._cache, _topotrace.DropTrace.open = saved, opener  # type: ignore[method-assign]


@contextlib.contextmanager
def nft(topo: Topology, host: str, rules: str, table: str) -> Iterator[None]:
    topo.run(host, ["nft", "-f", "-"], input=rules, check=True)
    try:
        yield
    finally:
        topo.run(host, ["nft", "delete", "table", *table.split()])


@contextlib.contextmanager
def sysctl(topo: Topology, host: str, key: str, value: str) -> Iterator[None]:
    before = topo.sysctl(host, key)
    topo.run(host, ["sysctl", "-q", f"{key}={value}"], check=True)
    try:
        yield
    finally:
        topo.run(host, ["sysctl", "-q", f"{key}={before}"], check=True)


def timed(call: Callable[[], Outcome], reps: int) -> tuple[list[float], list[Outcome]]:
    times, outcomes = [], []
    for _ in range(reps):
        start = time.perf_counter()
        outcomes.append(call())
        times.append(time.perf_counter() - start)
    return times, outcomes


def stats(times: list[float]) -> dict[str, float]:
    p90 = statistics.quantiles(times, n=10)[-1] if len(times) >= 2 else times[0]
    return {"median_ms": round(statistics.median(times) * 1000, 2), "p90_ms": round(p90 * 1000, 2)}


def failing(call: Callable[[], Outcome], reps: int, before_reps: int) -> dict[str, Any]:
    with watch(True):
        call()  # warm-up: the first late probe opens the topology's trace instance
        times, outcomes = timed(call, reps)
    with watch(False):
        before, _ = timed(call, before_reps)
    verdicts = {o.verdict.value for o in outcomes}
    how = sorted({o.decided_by.split(" (")[0] for o in outcomes})
    return {**stats(times), "before": stats(before), "verdicts": sorted(verdicts),
            "decided_by": how, "ok": verdicts == {"FAIL"}}  # fmt: skip


def passing(call: Callable[[], Outcome], reps: int) -> dict[str, Any]:
    call()
    after: list[float] = []
    before: list[float] = []
    verdicts = set()
    for _ in range(reps):
        for on, into in ((True, after), (False, before)):
            with watch(on):
                t, o = timed(call, 1)
            into += t
            verdicts.add(o[0].verdict.value)
    return {"after": stats(after), "before": stats(before), "verdicts": sorted(verdicts),
            "ok": verdicts == {"PASS"}}  # fmt: skip


def measure(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"fail": {}, "pass": {}}
    reps = (args.fail_reps, args.before_reps)
    with netprobe.build(netprobe.loads(ROUTED_SPEC)) as topo:
        prepare(topo)
        out["pass"]["routed"] = passing(routed(topo), args.pass_reps)
        with sysctl(topo, "ns0", "net.ipv4.conf.veth0.forwarding", "0"):
            out["fail"]["forwarding_off"] = failing(routed(topo), *reps)
        with nft(topo, "ns0", FORWARD_DROP, "inet ff"):
            out["fail"]["nft_drop"] = failing(routed(topo), *reps)
    with netprobe.build(netprobe.load(str(ROOT / "examples/redblue.yaml"))) as topo:
        out["pass"]["bridged"] = passing(bridged(topo), args.pass_reps)
        with nft(topo, "switch", BRIDGE_DROP, "bridge ff"):
            out["fail"]["bridge_drop"] = failing(bridged(topo), *reps)
            with no_drop_trace():
                out["fail"]["bridge_barrier"] = failing(bridged(topo), *reps)
    return out


def report(out: dict[str, Any]) -> None:
    print(f"{'failing positive':<16} {'median':>9} {'p90':>9} {'before':>10}  decided by")
    for name, r in out["fail"].items():
        print(f"{name:<16} {r['median_ms']:>6.1f} ms {r['p90_ms']:>6.1f} ms "
              f"{r['before']['median_ms']:>7.1f} ms  {'; '.join(r['decided_by'])}")  # fmt: skip
    print(f"\n{'passing positive':<16} {'after':>9} {'(p90)':>9} {'before':>9} {'(p90)':>9}")
    for name, r in out["pass"].items():
        a, b = r["after"], r["before"]
        print(f"{name:<16} {a['median_ms']:>6.3f} ms {a['p90_ms']:>6.3f} ms "
              f"{b['median_ms']:>6.3f} ms {b['p90_ms']:>6.3f} ms")  # fmt: skip
    print(f"(1-minute load average at the end: {os.getloadavg()[0]:.2f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fail-reps", type=int, default=30)
    parser.add_argument("--before-reps", type=int, default=3)
    parser.add_argument("--pass-reps", type=int, default=200)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root: it builds network namespaces")
    out = measure(args)
    report(out)
    ok = all(r["ok"] for part in out.values() for r in part.values())
    out["bar_50ms"] = all(r["median_ms"] <= 50 for r in out["fail"].values())
    print(json.dumps({"bench": "fail_fast", **out}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
