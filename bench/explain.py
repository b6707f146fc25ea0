"""Explain: what explaining adds to a failing expectation.

On examples/router.yaml with ip_forward 0 on the router, a UDP probe left→right must fail.
Measured, each the median of --runs runs, all on the same live topology:

  expect           the failing expectation alone (what a check pays without explain);
  explain          explain() of that failure: trace instance, nft trace when a host has
                   a ruleset, counters before and after, state, ranking;
  explain_nft      the same with an nft ruleset on the router (adds trace tables and an
                   `nft monitor trace` per ruleset host);
  explain_notrace  explain(trace=False): counters and state only.

A passing expectation pays nothing: explain runs only on failure. The last line of
output is one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import netprobe  # noqa: E402
from netprobe.expect import at, expect  # noqa: E402
from netprobe.explain import explain  # noqa: E402
from netprobe.traffic import craft  # noqa: E402

RULES = (
    "table inet fw {\n chain other {\n  type filter hook forward priority filter;"
    " policy accept;\n  tcp dport 22 counter accept\n }\n}\n"
)


def _median_ms(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with netprobe.build(netprobe.load(ROOT / "examples" / "router.yaml")) as topo:
        topo.run("router", ["sysctl", "-qw", "net.ipv4.ip_forward=0"], check=True)
        frame = craft.udp(
            topo.mac("left", "eth0"), topo.mac("router", "eth0"), "10.1.0.10", "10.2.0.10"
        )
        outcome = expect(topo, frame, "left:eth0", at("right:eth0"))
        assert not outcome.passed
        out = {
            "expect": _median_ms(
                lambda: expect(topo, frame, "left:eth0", at("right:eth0")), args.runs
            ),
            "explain": _median_ms(lambda: explain(topo, frame, "left:eth0", outcome), args.runs),
            "explain_notrace": _median_ms(
                lambda: explain(topo, frame, "left:eth0", outcome, trace=False), args.runs
            ),
        }
        topo.run("router", ["nft", "-f", "-"], input=RULES, check=True)
        out["explain_nft"] = _median_ms(
            lambda: explain(topo, frame, "left:eth0", outcome), args.runs
        )
        top = explain(topo, frame, "left:eth0", outcome).top
    for key, value in out.items():
        print(f"{key:16} {value:8.1f} ms (median of {args.runs})")
    print(f"top cause: {top.text if top else None}")
    print(json.dumps({"runs": args.runs, "median_ms": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
