"""What discovery costs: `netprobe.topology.discover` (in-process) and `netprobe topo
discover` (the CLI, process start included) on N hand-made namespaces, each a veth to a
shared bridge namespace with an address and a route, against reading the same with
`ip -j -n NS addr/link/route` per namespace; alternating rounds in one run, medians.

    .venv/bin/python bench/discover.py [--hosts 100] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from netprobe.topology import discover


def make(prefix: str, hosts: int) -> list[str]:
    """The bridge namespace PREFIXsw and PREFIX0..N-1, made by one `ip -batch` each."""
    names = [f"{prefix}sw", *(f"{prefix}{i}" for i in range(hosts))]
    root = [f"netns add {n}" for n in names]
    root += [f"link add p{i} netns {prefix}sw type veth peer name eth0 netns {prefix}{i}"
             for i in range(hosts)]
    _batch(None, root)
    _batch(f"{prefix}sw", ["link add br0 type bridge", "link set br0 up",
                           *(f"link set p{i} master br0 up" for i in range(hosts))])
    for i in range(hosts):
        _batch(f"{prefix}{i}", [
            "link set eth0 up", f"addr add 10.{80 + i // 250}.{i % 250}.1/16 dev eth0",
            f"route add 10.99.{i % 250}.0/24 via 10.{80 + i // 250}.0.254",
        ])
    return names


def _batch(ns: str | None, lines: list[str]) -> None:
    argv = ["ip", *(["-n", ns] if ns else []), "-batch", "-"]
    subprocess.run(argv, input="\n".join(lines) + "\n", text=True, check=True)


def remove(names: list[str]) -> None:
    _batch(None, [f"netns del {n}" for n in names])


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    names = make(f"bd{os.getpid() % 100000}-", args.hosts)
    cli = [sys.executable, "-m", "netprobe.cli", "topo", "discover", *names]
    contenders: dict[str, Callable[[], object]] = {
        "discover (in-process)": lambda: discover(names),
        "netprobe topo discover": lambda: subprocess.run(cli, capture_output=True, check=True),
        "ip -j -n NS addr/link/route": lambda: [
            subprocess.run(["ip", "-j", "-n", n, what], capture_output=True, check=True)
            for n in names for what in ("addr", "link", "route")
        ],
    }
    try:
        spec = discover(names)  # verify once, untimed
        assert len(spec.hosts) == len(names)
        assert all(h.interface("eth0").observed.peer for h in spec.hosts[1:])  # type: ignore[union-attr]
        times: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(args.rounds):
            for key, fn in contenders.items():
                times[key].append(timed(fn))
    finally:
        remove(names)
    print(f"{len(names)} namespaces ({args.hosts} hosts + their bridge), "
          f"median of {args.rounds}:")
    for key, values in times.items():
        print(f"  {key:30s} {statistics.median(values) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
