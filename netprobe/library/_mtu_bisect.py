"""The largest packet size that crosses a path, bisected from probes that may be lost at
random: a size counts as lost only when two probes of it were, each with a barrier behind
it that arrived; the size just above the answer is probed again at the end, and if it
crosses after all the search goes on above it.

`crosses(size)` answers one probe: True (it arrived), False (lost, its barrier arrived),
None (no barrier arrived: nothing can be said)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Crosses = Callable[[int], "bool | None"]
_ROUNDS = 3  # searches resumed above a size that was lost twice, then crossed


@dataclass(frozen=True)
class Bisected:
    """The largest size that crossed, or None and why not (in words)."""

    largest: int | None
    why: str = ""


def lost(crosses: Crosses, size: int) -> bool | None:
    """Whether `size` is lost: twice lost, each time with its barrier arrived; None: a
    barrier did not arrive."""
    for _ in range(2):
        crossed = crosses(size)
        if crossed is None:
            return None
        if crossed:
            return False
    return True


def bisect(crosses: Crosses, smallest: int, limit: int) -> Bisected:
    """The largest size in smallest..limit that crosses, given that sizes up to it do."""
    first = lost(crosses, smallest)
    if first is None:
        return Bisected(None, f"no barrier arrived behind a {smallest}-byte probe: "
                        "no path to measure")  # fmt: skip
    if first:
        return Bisected(None, f"not even a {smallest}-byte packet crosses: no path to measure")
    low = smallest
    for _ in range(_ROUNDS):
        found = _search(crosses, low, limit)
        if isinstance(found, str):
            return Bisected(None, found)
        low = found
        if low >= limit:
            return Bisected(low)
        above = lost(crosses, low + 1)  # confirmed at the end: the answer rests on it
        if above is None:
            return Bisected(None, f"no barrier arrived behind a {low + 1}-byte probe")
        if above:
            return Bisected(low)
        low += 1  # crossed after all: an earlier "lost" was chance, search on above it
    return Bisected(None, f"sizes lost twice crossed later (up to {low} bytes): the path "
                    "loses packets at random, no MTU to measure")  # fmt: skip


def _search(crosses: Crosses, low: int, high: int) -> int | str:
    """Bisect low..high (low crosses): the largest that is not lost, or why not."""
    while low < high:
        size = (low + high + 1) // 2
        gone = lost(crosses, size)
        if gone is None:
            return f"no barrier arrived behind a {size}-byte probe"
        low, high = (low, size - 1) if gone else (size, high)
    return low
