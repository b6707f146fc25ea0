"""The path MTU bisection, on a fake path: one lost probe at a size that fits does not
lower the answer, a size is lost only when lost twice with its barrier arrived, and a
missing barrier is said as such."""

from __future__ import annotations

from collections.abc import Iterable

from netprobe.library._mtu_bisect import bisect


class Path:
    """Sizes up to `mtu` cross, except the probes listed in `drops` (the Nth probe sent,
    counting from 0); probes of the sizes in `silent` get no barrier (None)."""

    def __init__(self, mtu: int, drops: Iterable[int] = (), silent: Iterable[int] = ()):
        self.mtu, self.drops, self.silent = mtu, set(drops), set(silent)
        self.sent: list[int] = []

    def __call__(self, size: int) -> bool | None:
        n = len(self.sent)
        self.sent.append(size)
        if size in self.silent:
            return None
        return size <= self.mtu and n not in self.drops


def test_a_clean_path_gives_its_mtu_and_the_size_above_is_lost_each_time_asked() -> None:
    path = Path(1450)
    assert bisect(path, 44, 1500).largest == 1450
    assert path.sent.count(1451) == 4  # lost twice in the search, twice again at the end
    assert bisect(Path(1500), 44, 1500).largest == 1500


def test_one_lost_probe_at_a_size_that_fits_does_not_lower_the_answer() -> None:
    for n in range(40):  # whichever probe is the one lost
        assert bisect(Path(1450, drops={n}), 44, 1500).largest == 1450, n


def test_a_size_lost_twice_by_chance_is_caught_when_the_answer_is_confirmed() -> None:
    first = Path(1450)
    bisect(first, 44, 1500)
    for i, size in enumerate(first.sent):  # each size that fits: lose both its probes
        if 44 < size <= 1450:
            path = Path(1450, drops={i, i + 1})
            assert bisect(path, 44, 1500).largest == 1450, size
            assert path.sent.count(size) == 3  # lost twice, then crossed when asked again


def test_no_barrier_is_inconclusive_and_says_so() -> None:
    found = bisect(Path(1450, silent={44}), 44, 1500)
    assert found.largest is None
    assert found.why == "no barrier arrived behind a 44-byte probe: no path to measure"
    found = bisect(Path(1450, silent={772}), 44, 1500)
    assert (found.largest, found.why) == (None, "no barrier arrived behind a 772-byte probe")


def test_nothing_crossing_with_barriers_arriving_is_said_so() -> None:
    found = bisect(Path(10), 44, 1500)
    assert (found.largest, found.why) == (
        None, "not even a 44-byte packet crosses: no path to measure")


def test_a_path_that_loses_at_random_is_not_given_an_mtu() -> None:
    class Flaky:  # every size: lost, lost, then crosses
        def __init__(self) -> None:
            self.seen: dict[int, int] = {}

        def __call__(self, size: int) -> bool:
            self.seen[size] = self.seen.get(size, 0) + 1
            return size <= 100 or self.seen[size] > 2

    found = bisect(Flaky(), 44, 1500)
    assert found.largest is None and "loses packets at random" in found.why
