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
    step = max(2, len(probes) // sample // 2 * 2)  # even: INPUT and FORWARD alternate
    picked = probes[::step][:sample // 2] + probes[1::step][:sample - sample // 2]
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
                ok = outcome.passed  # at() met for an accept, nowhere() for a drop
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
    # the barrier is forwarded: watch for it where it arrives, as well as the stack (the
    # capture opened before anything is sent, or the first barrier passes unseen)
    capture = ports(stack.topo).capture("router:eth0")
    capture.drain()
    data, nonce = frame.probe()  # type: ignore[attr-defined]
    barrier, barrier_nonce = known.probe()  # type: ignore[attr-defined]
    sender.send(data)  # type: ignore[attr-defined]
    sender.send(barrier)  # type: ignore[attr-defined]
    seen, _how = observe.watch([source, capture], lambda f: nonce in f, barrier_nonce,
                               observe.TIMEOUT)
    return seen is (dport % 3 == 0)


def big_policy(lines: int) -> str:
    """A policy of `lines` lines over the same ruleset: INPUT and FORWARD alternate."""
    out = []
    for i in range(lines):
        port, verdict = i // 2 % MAX_PORT + 1, "accept" if (i // 2 % MAX_PORT + 1) % 3 == 0 \
            else "drop"
        chain = "" if i % 2 == 0 else ", chain: forward, to: 198.51.100.0/24"
        out.append(f"- {{proto: tcp, port: {port}, from: 10.0.0.0/8{chain}, "
                   f"expect: {verdict}}}")
    return "\n".join(out) + "\n"


def policy_check(topo: Topology, path: Path, alone: bool) -> dict[str, object]:
    """run_check("filter", topo, policy=path) in one burst, or every line alone."""
    from netprobe.check import run_check

    os.environ["NETPROBE_FILTER_ONE_AT_A_TIME"] = "1" if alone else "0"
    try:
        start = time.perf_counter()
        result = run_check("filter", topo, policy=str(path))
        took = time.perf_counter() - start
    finally:
        del os.environ["NETPROBE_FILTER_ONE_AT_A_TIME"]
    steps = result.steps
    burst = sum("one burst" in s.detail for s in steps)
    barrier = sum("decided by a barrier" in s.detail for s in steps)
    drops = sum(s.detail.startswith("observed drop") for s in steps)
    return {"s": took, "status": result.status.value, "steps": len(steps), "in_burst": burst,
            "drops_by_barrier": barrier, "drop_steps": drops,
            "not_pass": sum(s.status.value != "PASS" for s in steps)}


def policies(topo: Topology, lines: int, alone_lines: int, reps: int) -> dict[str, object]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big.yml", Path(tmp) / "small.yml"
        big.write_text(big_policy(lines))
        small.write_text(big_policy(alone_lines))
        runs = [policy_check(topo, big, alone=False) for _ in range(reps)]
        alone = policy_check(topo, small, alone=True)
    median = statistics.median(float(r["s"]) for r in runs)  # type: ignore[arg-type]
    per = float(alone["s"]) / alone_lines  # type: ignore[arg-type]
    return {"lines": lines, "batch_s": median, "batch_runs": runs, "alone": alone,
            "alone_per_line_s": per, "alone_extrapolated_s": per * lines}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=10000)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--policy", type=int, default=0, metavar="LINES",
                        help="instead: run_check('filter', policy=LINES lines) in one burst "
                        "against --alone-lines of them probed one at a time")
    parser.add_argument("--alone-lines", type=int, default=400)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root: it builds network namespaces")
    spec = netprobe.load(ROOT / "examples" / "filter.yaml")
    with netprobe.build(spec) as topo:
        topo.run("fw", ["nft", "-f", "-"], check=True,
                 input=ruleset(min(MAX_PORT, args.probes // 2 + 1)))
        if args.policy:
            found = policies(topo, args.policy, args.alone_lines, args.reps)
            print(json.dumps({"bench": "filter_matrix_policy", **found}))
            runs_ = found["batch_runs"]
            good = all(r["status"] == "PASS" and r["in_burst"] == r["steps"] - 0
                       for r in runs_)  # type: ignore[union-attr]
            return 0 if good and float(found["batch_s"]) < 1.0 else 1  # type: ignore[arg-type]
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
