"""What the process marks cost: `topo.run` (behind setpriv --pdeathsig, tagged
NETPROBE_RUN) against a bare `ip netns exec`, alternating rounds in one run.

    .venv/bin/python bench/process_marks.py [--rounds 15] [--per-round 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

import netprobe

REDBLUE = Path(__file__).resolve().parents[1] / "examples" / "redblue.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=20)
    args = parser.parse_args()
    marked, bare = [], []
    with netprobe.build(netprobe.load(REDBLUE)) as topo:
        ns = topo.namespace("red")
        assert ns is not None
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(args.per_round):
                topo.run("red", ["true"])
            marked.append((time.perf_counter() - start) / args.per_round)
            start = time.perf_counter()
            for _ in range(args.per_round):
                subprocess.run(["ip", "netns", "exec", ns, "true"], capture_output=True, check=True)
            bare.append((time.perf_counter() - start) / args.per_round)
    m, b = statistics.median(marked), statistics.median(bare)
    print(f"topo.run {m * 1e3:.2f} ms, bare ip netns exec {b * 1e3:.2f} ms, ratio {m / b:.2f}")


if __name__ == "__main__":
    main()
