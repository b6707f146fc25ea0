"""owner: run ids, the names derived from them, and run records on disk (in tmp_path)."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netprobe.topology._kernel import owner
from netprobe.topology._kernel.owner import RunRecord
from netprobe.topology._model.spec import ROOT_IF_PREFIX_LEN
from netprobe.topology._model.validate import IFNAMSIZ

RUNID = re.compile(r"^[A-Za-z0-9_]+$")


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """owner.RUN_DIR redirected to a directory that does not exist yet."""
    directory = tmp_path / "run" / "netprobe"
    monkeypatch.setattr(owner, "RUN_DIR", str(directory))
    return directory


def record(runid: str = "abc123", **changes: object) -> RunRecord:
    pid, start = owner.current_owner()
    fields: dict[str, object] = {
        "runid": runid,
        "pid": pid,
        "start_time": start,
        "name": "redblue",
        "adopted": ("existing",),
        "namespaces": {"red": "np-abc123-red", "machine": ""},
        "spec_path": "/etc/netprobe/redblue.yaml",
        **changes,
    }
    return RunRecord(**fields)  # type: ignore[arg-type]


# -- names --------------------------------------------------------------------------------


def test_namespace_names() -> None:
    assert owner.ns_prefix("abc123") == "np-abc123-"
    assert owner.ns_name("abc123", "red") == "np-abc123-red"
    assert owner.ns_name("redblue", "switch").startswith(owner.ns_prefix("redblue"))


def test_link_tag() -> None:
    assert owner.link_tag("abc123") == "netprobe:abc123"


@pytest.mark.parametrize(
    ("name", "runid"),
    [("redblue", "redblue"), ("docker-bridge", "docker_bridge"), ("a.b c/d", "a_b_c_d")],
)
def test_persistent_runid_examples(name: str, runid: str) -> None:
    assert owner.persistent_runid(name) == runid


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_persistent_runid_never_contains_a_dash(name: str) -> None:
    runid = owner.persistent_runid(name)
    assert "-" not in runid
    assert len(runid) == len(name)
    assert RUNID.match(runid)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40), st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]*\Z"))
def test_namespace_name_splits_back_into_run_and_host(topology: str, host: str) -> None:
    runid = owner.persistent_runid(topology)
    assert owner.ns_name(runid, host).split("-", 2) == ["np", runid, host]


def test_new_runid_is_six_hex_digits(run_dir: Path) -> None:
    runid = owner.new_runid()
    assert re.fullmatch(r"[0-9a-f]{6}", runid)


def test_new_runid_avoids_ids_of_existing_records(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner.register(record("aaaaaa"))
    candidates = iter(["aaaaaa", "aaaaaa", "bbbbbb"])
    monkeypatch.setattr(secrets, "token_hex", lambda _n: next(candidates))
    assert owner.new_runid() == "bbbbbb"


def test_root_ifname_is_prefix_plus_name() -> None:
    name = owner.root_ifname("abc123", "uplink")
    assert len(name) == ROOT_IF_PREFIX_LEN + len("uplink") == 6 + len("uplink")
    assert re.fullmatch(r"np[0-9a-f]{4}uplink", name)


def test_root_ifname_is_stable_per_run_and_differs_between_runs() -> None:
    first = owner.root_ifname("abc123", "eth0")
    assert owner.root_ifname("abc123", "eth0") == first
    assert owner.root_ifname("abc123", "eth1")[:6] == first[:6]
    assert owner.root_ifname("abc124", "eth0") != first


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=9))
def test_root_ifname_fits_ifnamsiz_for_names_validate_allows(runid: str, name: str) -> None:
    ifname = owner.root_ifname(runid, name)
    assert len(ifname) == 6 + len(name) <= IFNAMSIZ
    assert ifname.endswith(name)


# -- records ------------------------------------------------------------------------------


def test_no_run_dir_means_no_records(run_dir: Path) -> None:
    assert not run_dir.exists()
    assert owner.read_records() == []


def test_records_round_trip(run_dir: Path) -> None:
    first, second = record("aaaaaa"), record("bbbbbb", persistent=True, root=True, adopted=())
    owner.register(first)
    owner.register(second)
    assert owner.read_records() == [first, second]
    assert sorted(p.name for p in run_dir.iterdir()) == ["aaaaaa.json", "bbbbbb.json"]
    owner.unregister("aaaaaa")
    assert owner.read_records() == [second]
    owner.unregister("bbbbbb")
    owner.unregister("bbbbbb")  # already gone: not an error
    assert owner.read_records() == []


def test_register_refuses_a_taken_run_id(run_dir: Path) -> None:
    owner.register(record("abc123", name="first"))
    with pytest.raises(FileExistsError):
        owner.register(record("abc123", name="second"))
    assert [r.name for r in owner.read_records()] == ["first"]
    assert [p.name for p in run_dir.iterdir()] == ["abc123.json"]  # no temporary file left


def test_update_replaces_a_record(run_dir: Path) -> None:
    owner.register(record("abc123"))
    owner.update(record("abc123", persistent=True))
    (only,) = owner.read_records()
    assert only.persistent


def test_scratch_run_registers_and_removes_its_record(run_dir: Path) -> None:
    with owner.scratch_run("doctor") as runid:
        (live,) = owner.read_records()
        assert (live.runid, live.name, live.pid) == (runid, "doctor", os.getpid())
        assert owner.is_alive(live)
    assert owner.read_records() == []


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("{not json", id="syntax"),
        pytest.param("", id="empty"),
        pytest.param('{"runid": "x"}', id="missing-fields"),
        pytest.param('{"unknown": 1}', id="unknown-field"),
        pytest.param('{"runid": "x", "adopted": 5}', id="adopted-not-a-list"),
        pytest.param("[1, 2]", id="list"),
        pytest.param('"text"', id="string"),
        pytest.param("null", id="null"),
    ],
)
def test_corrupt_record_is_ignored(run_dir: Path, content: str) -> None:
    good = record("abc123")
    owner.register(good)
    (run_dir / "corrupt.json").write_text(content)
    assert owner.read_records() == [good]


def test_directories_and_other_files_in_run_dir_are_ignored(run_dir: Path) -> None:
    good = record("abc123")
    owner.register(good)
    (run_dir / "dir.json").mkdir()
    (run_dir / "notes.txt").write_text(json.dumps({"runid": "zzz"}))
    assert owner.read_records() == [good]


# -- liveness -----------------------------------------------------------------------------


def test_current_process_is_alive() -> None:
    pid, start = owner.current_owner()
    assert pid == os.getpid()
    assert owner.is_alive(record(pid=pid, start_time=start))


def test_dead_pid_is_not_alive() -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead = int(child.stdout)
    assert not Path(f"/proc/{dead}").exists()
    assert not owner.is_alive(record(pid=dead, start_time=1))


def test_recycled_pid_with_another_start_time_is_not_alive() -> None:
    pid, start = owner.current_owner()
    assert not owner.is_alive(record(pid=pid, start_time=start + 1))
