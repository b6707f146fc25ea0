"""A matrix of probes against one ruleset: the filter batch engine against the same
probes sent one expectation at a time.

Topology: examples/filter.yaml (client ─ fw ─ router ─ outside). fw's ruleset accepts
TCP to every port p with p % 3 == 0 (an anonymous set), at input and at forward, and
drops the rest (policy drop). The matrix: --probes TCP SYNs from client, half to fw
(INPUT: decided in fw's stack, raw sockets) and half to outside (FORWARD: decided at fw's
egress), ports 1, 2, 3, ... so accepts and drops alternate.

- batch: `netprobe.library.filter.batch.run_batch`, every probe in one burst, one barrier
  (a frame of a local ethertype, seen at fw:eth0 where it enters);
- one at a time: a --sample of the same probes (half INPUT, half FORWARD), each its own
  expectation: FORWARD with `netprobe.expect` (at router:eth0 / nowhere, a known
  accepted probe as barrier), INPUT as the filter check's policy lines do it (a raw
  socket in fw, the same barrier behind it); the time is extrapolated to all probes.

Every verdict, positive and negative, is checked against the ruleset's truth (p % 3);
PACKET_STATISTICS drops of the captures and the raw sockets' drops must be 0. The last
line of output is one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import netprobe  # noqa: E402
from netprobe.expect import ROUTED, Barrier, at, expect, nowhere  # noqa: E402
from netprobe.library.filter import observe  # noqa: E402
from netprobe.library.filter.batch import Barrier as Mark  # noqa: E402
from netprobe.library.filter.batch import Point, Probe, run_batch  # noqa: E402
from netprobe.topology import Topology  # noqa: E402
from netprobe.traffic import ethernet, ports, tcp  # noqa: E402

MAX_PORT = 60000


def ruleset(top: int) -> str:
    accepted = ", ".join(str(p) for p in range(3, top + 1, 3))
    return (
        "flush ruleset\ntable inet m {\n"
        f" chain input {{ type filter hook input priority 0; policy drop;\n"
        f"  tcp dport {{ {accepted} }} accept\n }}\n"
        f" chain forward {{ type filter hook forward priority 0; policy drop;\n"
        f"  tcp dport {{ {accepted} }} accept\n }}\n}}\n"
    )


def matrix(topo: Topology, count: int) -> list[tuple[str, int, bytes, bytes]]:
    """(chain, port, frame, nonce) for each probe."""
    macs = (topo.mac("client", "eth0"), topo.mac("fw", "eth0"))
    out = []
    for i in range(count):
        chain, dport = ("input", "forward")[i % 2], i // 2 % MAX_PORT + 1
        dst = "10.0.0.1" if chain == "input" else "198.51.100.10"
        frame, nonce = tcp(*macs, "10.0.0.10", dst, sport=1024 + i % 60000 + i // 60000,
                           dport=dport).probe()
        out.append((chain, dport, frame, nonce))
    return out


def batch(topo: Topology, probes: list[tuple[str, int, bytes, bytes]]) -> dict[str, object]:
    points = {"input": Point("stack", "fw", 4, "tcp"), "forward": Point("out", "fw:eth1")}
    items = [Probe("client:eth0", n, points[c], "client:eth0", f) for c, _, f, n in probes]
    data, nonce = ethernet(topo.mac("client", "eth0"), topo.mac("fw", "eth0")).probe()
    mark = Mark("client:eth0", data, nonce, Point("in", "fw:eth0"))
    start = time.perf_counter()
    found = run_batch(topo, items, {"client:eth0": mark}, timeout=2.0)
    took = time.perf_counter() - start
    wrong = sum(o.arrived is not (p % 3 == 0) for (_, p, _, _), o in zip(probes, found,
                                                                         strict=True))
    undecided = sum(o.arrived is None for o in found)
    lost = sum("lost" in o.how for o in found)
    return {"s": took, "wrong": wrong, "undecided": undecided, "drops": lost}


def one_at_a_time(topo: Topology, probes: list[tuple[str, int, bytes, bytes]],
                  sample: int) -> dict[str, object]:
    macs = (topo.mac("client", "eth0"), topo.mac("fw", "eth0"))
    known = tcp(*macs, "10.0.0.10", "198.51.100.10", sport=999, dport=3)  # accepted
    stack = observe.Stack(topo, "fw")
    sender = ports(topo).sender("client:eth0")
    picked = probes[:: max(1, len(probes) // sample)][:sample]
    wrong, times = 0, []
    try:
        for chain, dport, _, _ in picked:
            frame = tcp(*macs, "10.0.0.10", "10.0.0.1" if chain == "input" else
                        "198.51.100.10", sport=2000 + len(times), dport=dport)
            start = time.perf_counter()
            if chain == "forward":
                where = at("router:eth0") if dport % 3 == 0 else nowhere(among=["router:eth0"])
                outcome = expect(topo, frame, "client:eth0", where, match=ROUTED,
                                 barrier=Barrier(known))
                seen = outcome.passed == (dport % 3 == 0)
                ok = outcome.verdict.value != "INCONCLUSIVE" and seen
            else:
                ok = _input(stack, sender, frame, known, dport)
            times.append(time.perf_counter() - start)
            wrong += not ok
    finally:
        stack.close()
    per = statistics.mean(times)
    return {"sample": len(picked), "per_probe_s": per, "extrapolated_s": per * len(probes),
            "wrong": wrong}


def _input(stack: observe.Stack, sender: object, frame: object, known: object,
           dport: int) -> bool:
    source = stack.source(4, "tcp")
    source.drain()
    data, nonce = frame.probe()  # type: ignore[attr-defined]
    barrier, barrier_nonce = known.probe()  # type: ignore[attr-defined]
    sender.send(data)  # type: ignore[attr-defined]
    sender.send(barrier)  # type: ignore[attr-defined]
    # the barrier is forwarded: watch for it where it arrives, as well as the stack
    capture = ports(stack.topo).capture("router:eth0")
    seen, _how = observe.watch([source, capture], lambda f: nonce in f, barrier_nonce,
                               observe.TIMEOUT)
    return seen is (dport % 3 == 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=10000)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root: it builds network namespaces")
    spec = netprobe.load(ROOT / "examples" / "filter.yaml")
    with netprobe.build(spec) as topo:
        topo.run("fw", ["nft", "-f", "-"], check=True,
                 input=ruleset(min(MAX_PORT, args.probes // 2 + 1)))
        probes = matrix(topo, args.probes)
        runs = [batch(topo, probes) for _ in range(args.reps)]
        seq = one_at_a_time(topo, probes, args.sample)
    best = min(runs, key=lambda r: float(r["s"]))  # type: ignore[arg-type]
    ok = all(r["wrong"] == 0 and r["undecided"] == 0 and r["drops"] == 0 for r in runs)
    median = statistics.median(float(r["s"]) for r in runs)  # type: ignore[arg-type]
    print(f"batch: {args.probes} probes, median {median:.3f}"
          f" s over {args.reps} runs (best {best['s']:.3f} s), wrong {best['wrong']}, "
          f"drops {best['drops']}")
    print(f"one at a time: {seq['sample']} sampled, {seq['per_probe_s'] * 1000:.1f} ms each, "
          f"{seq['extrapolated_s']:.1f} s for all (extrapolated), wrong {seq['wrong']}")
    print(json.dumps({"bench": "filter_matrix", "probes": args.probes, "batch_s": median,
                      "batch_runs": runs, "one_at_a_time": seq,
                      "ratio": float(seq["extrapolated_s"]) / median,  # type: ignore[arg-type]
                      "bar_1s": median < 1.0, "sound": ok}))
    return 0 if ok and median < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
