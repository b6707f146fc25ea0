"""`netprobe check all`: wall-clock time of every built-in check on its reference topology.

Runs the command as a user would (a fresh process each time, so imports count), with one
check at a time and with two at once, alternating, and reports medians. The bar: under
20 s in all, every check PASS or SKIP.

    .venv/bin/python bench/check_all.py [--reps 3]   (netprobe installed, checks registered)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BAR_S = 20.0


def run_once(jobs: int) -> tuple[float, dict[str, str]]:
    """(seconds, {check: status}) for one `netprobe check all -j JOBS`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "results.json")
        code = "from netprobe.cli import main; main()"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code, "check", "all", "-j", str(jobs),
                               "--json", out], cwd=ROOT, capture_output=True, text=True,
                              check=False)
        elapsed = time.perf_counter() - start
        if not os.path.exists(out):
            sys.exit(f"netprobe check all failed (run with the venv's python):\n{proc.stderr}")
        with open(out) as src:
            results = json.load(src)["results"]
    return elapsed, {r["check"]: r["status"] for r in results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    times: dict[int, list[float]] = {1: [], 2: []}
    statuses: dict[str, str] = {}
    for _ in range(args.reps):
        for jobs in (1, 2):  # alternate, so load from others falls on both
            elapsed, statuses = run_once(jobs)
            times[jobs].append(elapsed)
    medians = {jobs: statistics.median(values) for jobs, values in times.items()}
    for jobs, values in times.items():
        print(f"check all -j {jobs}: median {medians[jobs]:.2f} s "
              f"(min {min(values):.2f}, max {max(values):.2f}, {len(values)} runs)")
    print("statuses:", ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    ok = all(v in ("PASS", "SKIP") for v in statuses.values())
    print(json.dumps({"bench": "check_all", "netprobe_s": {"jobs1": round(medians[1], 3),
                      "jobs2": round(medians[2], 3)}, "baseline": {"bar_s": BAR_S},
                      "ratio": {"jobs2_vs_bar": round(medians[2] / BAR_S, 3)},
                      "all_pass_or_skip": ok}))
    return 0 if ok and medians[2] < BAR_S else 1


if __name__ == "__main__":
    sys.exit(main())
