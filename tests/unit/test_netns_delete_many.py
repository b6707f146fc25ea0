"""Deleting many namespaces: one that fails does not stop the others, and comes back as a
problem by its name; removing a run then keeps its record for a later `netprobe clean`."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from netprobe.errors import TopologyError
from netprobe.topology._kernel import cleanup, netns, owner


class FakeDelete:
    """Deletes (remembers) every name but those in `failing`, which raise OSError."""

    def __init__(self, failing: set[str]) -> None:
        self.failing, self.deleted = failing, set()
        self.lock = threading.Lock()

    def __call__(self, name: str) -> None:
        if name in self.failing:
            raise OSError(16, "Device or resource busy")
        with self.lock:
            self.deleted.add(name)


@pytest.mark.parametrize("count", [3, 40])  # one by one, and from threads
def test_every_failure_is_a_problem_by_name_and_the_rest_are_deleted(count: int) -> None:
    names = [f"np-x-h{i}" for i in range(count)]
    fake = FakeDelete({names[0], names[-1]})
    failed = netns.delete_many(names, fake)
    assert failed == {n: f"deleting namespace {n}: [Errno 16] Device or resource busy"
                      for n in (names[0], names[-1])}  # fmt: skip
    assert fake.deleted == set(names[1:-1])


def test_none_failing_is_no_problem() -> None:
    assert netns.delete_many([f"n{i}" for i in range(10)], FakeDelete(set())) == {}


def test_remove_run_keeps_the_record_when_a_namespace_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(owner, "RUN_DIR", str(tmp_path))
    runid = f"t{owner.new_runid()}"
    owner.register(owner.RunRecord(runid=runid, pid=1, start_time=0, name="x"))
    names = [owner.ns_name(runid, h) for h in ("a", "b")]
    fake = FakeDelete({names[0]})
    real = netns.delete_many
    monkeypatch.setattr(netns, "delete_many", lambda ns: real(ns, fake))
    report = cleanup.CleanReport()
    with pytest.raises(TopologyError, match=f"cleaning run {runid}: deleting namespace "
                                            f"{names[0]}: "):  # fmt: skip
        cleanup.remove_run(owner.read_records()[0], names, report)
    assert report.removed_namespaces == [names[1]] and fake.deleted == {names[1]}
    assert [r.runid for r in owner.read_records()] == [runid]  # kept: `clean` finds it
