"""probe(): a delivered probe and a dropped one across five namespaces, in milliseconds.

h1 ── r1 ── r2 ── r3 ── h2, routed (the chain of tests/integration/test_probe.py). After
start-up (the capture sockets opened by the first probe), each probe is timed from the
call to its result: the median of N, for an ICMP echo and a TCP SYN that are answered, and
a TCP SYN dropped by an nft rule on r2 (decided by the barrier echo). The last line of
output is one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # so `python3 bench/probe.py` runs from a checkout
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from test_probe import CHAIN  # noqa: E402

import netprobe  # noqa: E402
from netprobe.expect import Ending, prepare, probe  # noqa: E402
from netprobe.topology import Topology  # noqa: E402

DROP = """table inet bench {
 chain f {
  type filter hook forward priority 0;
  tcp dport 81 drop
 }
}
"""


def timed(topo: Topology, n: int, want: Ending, *args: object) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        result = probe(topo, "h1", *args)  # type: ignore[arg-type]
        times.append((time.perf_counter() - start) * 1000)
        assert result.ending is want, result.render()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=50, help="probes per measurement")
    n = parser.parse_args().n
    with netprobe.build(netprobe.loads(CHAIN)) as topo:
        start = time.perf_counter()
        prepare(topo)
        startup = (time.perf_counter() - start) * 1000
        topo.run("r2", ["nft", "-f", "-"], input=DROP, check=True)
        figures = {
            "startup_ms": round(startup, 2),
            "delivered_icmp_ms": round(timed(topo, n, Ending.DELIVERED_ANSWERED, "10.0.4.2"), 3),
            "refused_tcp_ms": round(timed(topo, n, Ending.REFUSED, "10.0.4.2", "tcp", 80), 3),
            "dropped_tcp_ms": round(timed(topo, n, Ending.DROPPED, "10.0.4.2", "tcp", 81), 3),
        }
    for name, value in figures.items():
        print(f"{name:>20}: {value} ms")
    print(json.dumps({"n": n, **figures}))


if __name__ == "__main__":
    main()
