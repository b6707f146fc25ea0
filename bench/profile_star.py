"""Where netprobe's time goes: build the star under cProfile, or time its phases.

cProfile sees Python only; time spent in the kernel shows up under the system calls that
wait for it (`socket.send` for netlink requests, `unshare`/`mount` for namespaces).
`--phases` instead times the build's steps by wall clock, unprofiled (each wrapped in a
timer: namespace creation, links, configuration, addresses, routes, self-check), then
the teardown, so the shares are those of a real run.

    python3 bench/profile_star.py [--hosts 200] [--top 30] [--sort cumulative] [--phases]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from topology_build import star_spec  # same directory: Python puts it on sys.path

import netprobe
from netprobe.topology._kernel import build as _build
from netprobe.topology._kernel import selfcheck

PHASES = (
    "_open_hosts",
    "_create_links",
    "_configure_links",
    "_learn_indexes",
    "_addresses",
    "_routes",
)


def _timed(fn: Callable[..., Any], name: str, spent: dict[str, float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - t0

    return wrapper


def phases(hosts: int) -> int:
    spent: dict[str, float] = defaultdict(float)
    for name in PHASES:
        if hasattr(_build._Builder, name):
            setattr(_build._Builder, name, _timed(getattr(_build._Builder, name), name, spent))
    _build.verify = _timed(selfcheck.verify, "verify (self-check)", spent)  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    topo = netprobe.build(star_spec(hosts))
    t1 = time.perf_counter()
    topo.teardown()
    t2 = time.perf_counter()
    print(f"star{hosts}: build {t1 - t0:.3f} s, teardown {t2 - t1:.3f} s")
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<22} {seconds:8.3f} s")
    print(f"  {'(the rest of build)':<22} {t1 - t0 - sum(spent.values()):8.3f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="cumulative", help="a pstats sort key")
    parser.add_argument("--phases", action="store_true", help="wall clock per build step")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root: it builds network namespaces")
    if args.phases:
        return phases(args.hosts)
    spec = star_spec(args.hosts)
    profile = cProfile.Profile()
    topo = None
    t0 = time.perf_counter()
    try:
        topo = profile.runcall(netprobe.build, spec)
        built = time.perf_counter() - t0
    finally:
        if topo is not None:
            torn = time.perf_counter()
            profile.runcall(topo.teardown)
            torn = time.perf_counter() - torn
    print(
        f"star{args.hosts}: build took {built:.3f} s, teardown {torn:.3f} s under cProfile "
        f"(profiling inflates Python-heavy code)\n"
    )
    pstats.Stats(profile, stream=sys.stdout).sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
