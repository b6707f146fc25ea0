"""Explain: what explaining adds to a failing expectation.

On examples/router.yaml with ip_forward 0 on the router, a UDP probe left→right must fail.
Measured, each the median of --runs runs, all on the same live topology:

  expect           the failing expectation alone (what a check pays without explain);
  explain          explain() of that failure: the topology's trace instance (made on the
                   first run, reused after), nft trace when a host has a ruleset,
                   counters before and after, state, ranking;
  explain_nft      the same with an nft ruleset on the router (adds a trace table and
                   a trace subscription per ruleset host, both over netlink in-process);
  explain_notrace  explain(trace=False): counters and state only.

Measured side by side (alternating, same machine), before and after the nf_tables trace
and the route lookups went in-process: quiet, explain 34-36 -> 22-27 ms, explain_nft
76-77 -> 35-40 ms; with two busy loops on the 2 cores, explain 90 -> 45 ms, explain_nft
247 -> 63 ms (bench/README.md).

A passing expectation pays nothing: explain runs only on failure. The last line of
output is one line of JSON.

`--checks` measures the check library instead: the wall time of the sabotage tests
(tests/integration/test_check_<name>.py of the library's checks) run by pytest with
explanations and again without (MAX_EXPLAINED set to 0 in the run by this file, loaded
as a pytest plugin when NETPROBE_BENCH_NO_EXPLAIN=1; the tests' assertions on the top
cause then fail, as they must, and are counted, not hidden).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import netprobe  # noqa: E402
from netprobe.expect import at, expect  # noqa: E402
from netprobe.explain import explain  # noqa: E402
from netprobe.traffic import _craft as craft  # noqa: E402

RULES = (
    "table inet fw {\n chain other {\n  type filter hook forward priority filter;"
    " policy accept;\n  tcp dport 22 counter accept\n }\n}\n"
)


LIBRARY = ("isolation", "veth", "bridge", "mac_learning", "routing", "nat", "filter",
           "exposure", "docker_bridge")  # fmt: skip


def pytest_configure(config: Any) -> None:
    """As a pytest plugin (`-p explain` with bench/ on the path): no explanations."""
    if os.environ.get("NETPROBE_BENCH_NO_EXPLAIN") == "1":
        import netprobe.check._base

        netprobe.check._base.MAX_EXPLAINED = 0


def _pytest_wall(explained: bool) -> tuple[float, str]:
    files = [str(ROOT / "tests" / "integration" / f"test_check_{n}.py") for n in LIBRARY]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "bench"),
           "NETPROBE_BENCH_NO_EXPLAIN": "0" if explained else "1"}  # fmt: skip
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "explain"]
    start = time.perf_counter()
    done = subprocess.run(argv + files, cwd=ROOT, env=env, capture_output=True, text=True)
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-200:]
    return round(time.perf_counter() - start, 1), tail


def checks() -> int:
    out = {}
    for explained in (True, False):
        wall, tail = _pytest_wall(explained)
        key = "with_explain" if explained else "without_explain"
        out[key] = wall
        print(f"{key:16} {wall:7.1f} s   ({tail})")
    out["added"] = round(out["with_explain"] - out["without_explain"], 1)
    print(f"{'added':16} {out['added']:7.1f} s")
    print(json.dumps({"sabotage_tests_wall_s": out}))
    return 0


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
    parser.add_argument("--checks", action="store_true", help="time the sabotage tests")
    args = parser.parse_args()
    if args.checks:
        return checks()
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
