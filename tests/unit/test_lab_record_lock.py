"""A lab's record changed by several captures at once (each noting itself as it starts
and forgetting itself as it ends): every change lands, none overwrites another's."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from netprobe.topology._kernel import labs, owner


def test_changes_made_at_once_all_land(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(owner, "RUN_DIR", str(tmp_path))
    owner.register(owner.RunRecord(runid="lk", pid=1, start_time=0, name="lk", persistent=True))
    start = threading.Barrier(8)

    def note(worker: int) -> None:
        start.wait()
        for i in range(25):
            entry = {"name": "capture", "pid": worker * 100 + i, "start_time": 0}
            labs._change("lk", lambda ps, e=entry: [*ps, e])  # type: ignore[misc]

    threads = [threading.Thread(target=note, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (record,) = owner.read_records()
    assert sorted(p["pid"] for p in record.processes) == sorted(
        w * 100 + i for w in range(8) for i in range(25))  # fmt: skip


def test_a_record_removed_meanwhile_is_not_written_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(owner, "RUN_DIR", str(tmp_path))
    owner.register(owner.RunRecord(runid="lk", pid=1, start_time=0, name="lk", persistent=True))
    with owner.locked("lk") as there:
        assert there
    owner.unregister("lk")
    with owner.locked("lk") as there:
        assert not there
    labs._change("lk", lambda ps: [*ps, {"pid": 1}])
    assert owner.read_records() == []
