"""``python -m netprobe.vm CASES.json OUT.json``: the runner inside a guest."""

from __future__ import annotations

import sys

from ._guest import guest_main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(guest_main(sys.argv[1:]))
