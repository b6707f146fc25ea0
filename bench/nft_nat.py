"""The kernel's NAT selftest against netprobe's re-expression of it, side by side.

`--selftest DIR` is a kernel tree's tools/testing/selftests/net/netfilter (it holds
nft_nat.sh and lib.sh, which sources ../lib.sh); the script is not part of netprobe.
Each repetition runs, in alternating order, `bash nft_nat.sh` in DIR and a fresh pytest
process on tests/peer restricted to the `lab` network (the script builds one network;
so does that run) and to the scenarios (`-m "not sabotage"`: the suite's sabotage tests
have no counterpart in the script): interpreter start, collection, build and teardown
all count. Before timing, one untimed run of each must pass. Medians of wall time, their
ratio, and the median of the per-repetition ratios; the last line of output is one line
of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BAR = 0.5
# The peer suite on one network. hypothesis's pytest plugin (for the unit tests) is not
# loaded: the suite does not use it, and importing it costs about 1 s here.
PYTEST = ("-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
          "tests/peer", "-k", "lab", "-m", "not sabotage")  # fmt: skip


def _python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def run_script(selftest: Path) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    done = subprocess.run(
        ["bash", "nft_nat.sh"], cwd=selftest, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    lines = (done.stdout + done.stderr).splitlines()
    passes = sum(line.startswith("PASS:") for line in lines)
    errors = sum(line.startswith(("ERROR", "FAIL")) for line in lines)
    skips = sum(line.startswith("SKIP") for line in lines)
    return wall, {"rc": done.returncode, "passes": passes, "errors": errors, "skips": skips}


# pytest rewrites the asserts of every module of a plugin's package (all of netprobe)
# and caches the result as bytecode; where PYTHONDONTWRITEBYTECODE is set, every run
# rewrites and compiles it all again (about 1 s here). Python writes bytecode by default.
_SUITE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_suite() -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    done = subprocess.run(
        [_python(), *PYTEST], cwd=ROOT, capture_output=True, text=True, check=False,
        env=_SUITE_ENV,
    )  # fmt: skip
    wall = time.perf_counter() - start
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|error|skipped)", tail)}
    return wall, {"rc": done.returncode, **counts, "tail": tail}


def _verified(name: str, result: dict[str, Any]) -> None:
    if result["rc"] != 0 or result.get("errors") or result.get("failed"):
        sys.exit(f"nft_nat bench: the {name} does not pass: {result}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--selftest", type=Path, required=True,
                        help="a kernel tree's tools/testing/selftests/net/netfilter")  # fmt: skip
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    selftest = args.selftest.resolve()
    if not (selftest / "nft_nat.sh").is_file() or not (selftest / "lib.sh").is_file():
        sys.exit(f"nft_nat bench: {selftest} holds no nft_nat.sh and lib.sh")
    if os.geteuid() != 0:
        sys.exit("nft_nat bench: needs root (both build network namespaces)")
    _, script = run_script(selftest)  # untimed: each must pass before it is timed
    _verified("selftest", script)
    _, suite = run_suite()
    _verified("netprobe suite", suite)
    times: dict[str, list[float]] = {"script": [], "netprobe": []}
    for rep in range(args.reps):
        order = ("script", "netprobe") if rep % 2 == 0 else ("netprobe", "script")
        for who in order:
            wall, result = run_script(selftest) if who == "script" else run_suite()
            _verified(who, result)
            times[who].append(wall)
        print(f"rep {rep + 1}: script {times['script'][-1]:6.2f} s   "
              f"netprobe {times['netprobe'][-1]:6.2f} s")  # fmt: skip
    return _report(times, script, suite)


def _report(times: dict[str, list[float]], script: dict[str, Any], suite: dict[str, Any]) -> int:
    med = {who: statistics.median(ts) for who, ts in times.items()}
    ratio = med["netprobe"] / med["script"]
    pairs = zip(times["netprobe"], times["script"], strict=True)
    paired = statistics.median(n / s for n, s in pairs)
    print(f"selftest  median {med['script']:6.2f} s  ({script['passes']} PASS lines)")
    print(f"netprobe  median {med['netprobe']:6.2f} s  ({suite['tail']})")
    print(f"ratio {ratio:.2f} (paired {paired:.2f}); bar <= {BAR}: "
          f"{'met' if ratio <= BAR else 'MISSED'}")  # fmt: skip
    out = {
        "bench": "nft_nat", "reps": len(times["script"]),
        "script_s": round(med["script"], 3), "netprobe_s": round(med["netprobe"], 3),
        "ratio": round(ratio, 3), "ratio_paired": round(paired, 3),
        "script_passes": script["passes"], "netprobe_passed": suite.get("passed", 0),
        "pytest": " ".join(PYTEST), "bar": BAR, "bar_met": ratio <= BAR,
        "loadavg_1min": os.getloadavg()[0],
    }  # fmt: skip
    print(json.dumps(out))
    return 0 if ratio <= BAR else 1


if __name__ == "__main__":
    sys.exit(main())
