"""Where netprobe's time goes: build the star once under cProfile, print the top entries.

cProfile sees Python only; time spent in the kernel shows up under the system calls that
wait for it (`socket.recv` for netlink acks, `unshare`/`mount` for namespaces, `sleep`
in the self-check while linkwatch reports carrier).

    python3 bench/profile_star.py [--hosts 200] [--top 30] [--sort cumulative]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

from topology_build import star_spec  # same directory: Python puts it on sys.path

import netprobe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="cumulative", help="a pstats sort key")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root: it builds network namespaces")
    spec = star_spec(args.hosts)
    profile = cProfile.Profile()
    topo = None
    t0 = time.perf_counter()
    try:
        topo = profile.runcall(netprobe.build, spec)
        built = time.perf_counter() - t0
    finally:
        if topo is not None:
            topo.teardown()  # outside the profile: teardown is a few unmounts
    print(
        f"star{args.hosts}: build took {built:.3f} s under cProfile "
        f"(profiling inflates Python-heavy code)\n"
    )
    pstats.Stats(profile, stream=sys.stdout).sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
