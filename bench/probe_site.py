"""`netprobe probe` on a five-namespace site made by hand, against ping side by side.

a ── r1 ── r2 ── sw(br0) ── b, made with plain `ip` (tests/support/site.py). Each round
times, in one run and alternating: `netprobe.probe` in-process from a's namespace name
(discovery and adoption included) for a delivered tcp/22 and icmp; the same for a tcp/22
dropped by an nft rule on r2, with its explanation; the `netprobe probe` command
(process start included); and `ip netns exec A ping -c1 -W1` as the baseline. Medians in
milliseconds; the last line of output is one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.site import Site, build_site  # noqa: E402

from netprobe.diagnose import probe  # noqa: E402

DROP = "table inet bench { chain f { type filter hook forward priority 0; tcp dport 22 drop; }; }"


def _ms(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def _expect(ok: bool, site: Site, service: str) -> Callable[[], object]:
    def run() -> object:
        found = probe(site.ns["a"], "10.70.3.2", service)
        assert found.ok is ok, found.render()
        assert ok or found.explanation is not None
        return found
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    site = build_site("npbench")
    try:
        cli = [sys.executable, "-c", "from netprobe.cli import main; main()", "probe", "-q",
               site.ns["a"], "10.70.3.2", "tcp/22"]
        ping = ["ip", "netns", "exec", site.ns["a"], "ping", "-n", "-c1", "-W1", "10.70.3.2"]
        cases: dict[str, Callable[[], object]] = {
            "delivered_tcp_ms": _expect(True, site, "tcp/22"),
            "delivered_icmp_ms": _expect(True, site, "icmp"),
            "cli_delivered_tcp_ms": lambda: subprocess.run(cli, check=True),
            "ping_baseline_ms": lambda: subprocess.run(ping, check=True, capture_output=True),
        }
        times: dict[str, list[float]] = {k: [] for k in [*cases, "dropped_explained_ms"]}
        _expect(True, site, "icmp")()  # warm: imports, first sockets
        for _ in range(rounds):
            for name, action in cases.items():
                times[name].append(_ms(action))
        site.nft("r2", DROP)
        for _ in range(max(3, rounds // 3)):
            times["dropped_explained_ms"].append(_ms(_expect(False, site, "tcp/22")))
    finally:
        site.remove()
    figures = {k: round(statistics.median(v), 1) for k, v in times.items()}
    for name, value in figures.items():
        print(f"{name:24} {value:8.1f} ms")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
