"""Derived mode of the filter check on a generated ruleset of --rules rules.

Topology: examples/filter.yaml (client ─ fw ─ router ─ outside). The ruleset (one inet
table, policy drop at input and forward): 60 % of the rules at input, `ip saddr
10.A.B.0/24 tcp dport P accept` or `drop` alternately (sources no host holds: the probe
comes from the router, as it would forward them), one in ten a duplicate of the rule
before it with the opposite verdict (shadowed); 40 % at forward, `iifname "eth0" ip daddr
198.51.100.10 tcp dport P accept` or `drop`. Timed: `run_check("filter", topo,
ruleset=FILE)` on a topology already built (loading the ruleset, reading it back,
building every probe, the traced batch, the steps), --reps times.

Checked: one step per rule; every rule not shadowed PASSes ("reached, it decides"),
every shadowed one names the rule before it. The last line is one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import netprobe  # noqa: E402
from netprobe.check import Status, run_check  # noqa: E402


def ruleset(count: int) -> tuple[str, int]:
    """The ruleset's text, and how many of its rules are shadowed."""
    inputs, forwards, shadowed = [], [], 0
    for k in range(count * 6 // 10):
        if k % 10 == 9:  # the rule before, with the other verdict: never reached
            inputs.append(inputs[-1].rsplit(" ", 1)[0] + (" accept" if k % 2 else " drop"))
            shadowed += 1
            continue
        verdict = "accept" if k % 2 else "drop"
        inputs.append(f"ip saddr 10.{k // 250 + 1}.{k % 250}.0/24 tcp dport {1000 + k} {verdict}")
    for k in range(count - len(inputs)):
        verdict = "accept" if k % 2 else "drop"
        forwards.append(f'iifname "eth0" ip daddr 198.51.100.10 tcp dport {20000 + k} {verdict}')
    body = "\n  ".join
    return ("flush ruleset\ntable inet gen {\n"
            " chain input {\n  type filter hook input priority 0; policy drop;\n  "
            f"{body(inputs)}\n }}\n"
            " chain forward {\n  type filter hook forward priority 0; policy drop;\n  "
            f"{body(forwards)}\n }}\n}}\n"), shadowed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root: it builds network namespaces")
    text, shadowed = ruleset(args.rules)
    times, checks = [], []
    with tempfile.TemporaryDirectory() as tmp, \
            netprobe.build(netprobe.load(ROOT / "examples" / "filter.yaml")) as topo:
        path = Path(tmp) / "generated.nft"
        path.write_text(text)
        for _ in range(args.reps):
            start = time.perf_counter()
            result = run_check("filter", topo, ruleset=str(path))
            times.append(time.perf_counter() - start)
            rows = [s for s in result.steps if " rule " in s.name]
            counts = {status.value: sum(s.status is status for s in rows) for status in Status}
            named = sum("shadowed by rule" in s.detail for s in rows)
            checks.append({"rows": len(rows), **counts, "shadowed_named": named})
    median = statistics.median(times)
    ok = all(c["rows"] == args.rules and c["shadowed_named"] == shadowed
             and c["PASS"] + c["FAIL"] == args.rules for c in checks)
    print(f"derived mode, {args.rules} rules: median {median:.2f} s over {args.reps} runs "
          f"(min {min(times):.2f}, max {max(times):.2f}); {checks[0]}")
    print(json.dumps({"bench": "filter_derive", "rules": args.rules, "median_s": median,
                      "times_s": times, "checks": checks, "shadowed": shadowed,
                      "bar_5s": median < 5.0, "sound": ok}))
    return 0 if ok and median < 5.0 else 1


if __name__ == "__main__":
    sys.exit(main())
