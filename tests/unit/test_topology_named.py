"""named: a topology is found by exactly its recorded name; near names are suggestions."""

from __future__ import annotations

import pytest

from netprobe.errors import TopologyError
from netprobe.topology._kernel import owner
from netprobe.topology._kernel.named import find_persistent, find_shown
from netprobe.topology._kernel.owner import RunRecord

PID, START = owner.current_owner()


def up(name: str) -> RunRecord:
    return RunRecord(owner.persistent_runid(name), PID, START, name, persistent=True)


def run(runid: str, name: str) -> RunRecord:
    return RunRecord(runid, PID, START, name)


RECORDS = [up("relcol-a"), up("router"), up("redblue"), run("abc123", "router")]


@pytest.mark.parametrize("find", [find_persistent, find_shown])
def test_the_exact_name_finds_its_own_record(find: object) -> None:
    assert find("router", RECORDS) is RECORDS[1]  # type: ignore[operator]
    assert find("relcol-a", RECORDS) is RECORDS[0]  # type: ignore[operator]


@pytest.mark.parametrize("find", [find_persistent, find_shown])
@pytest.mark.parametrize(
    ("typed", "hint"),
    [("relcol.a", "'relcol-a'"), ("relcol_a", "'relcol-a'"), ("routr", "'router'")],
)
def test_a_look_alike_or_a_typo_is_an_error_naming_the_near_name(
    find: object, typed: str, hint: str
) -> None:
    message = f"no topology named '{typed}' is up; did you mean {hint}"
    with pytest.raises(TopologyError, match=message):
        find(typed, RECORDS)  # type: ignore[operator]


def test_nothing_near_means_no_suggestion() -> None:
    with pytest.raises(TopologyError) as caught:
        find_persistent("zzzzzz", RECORDS)
    assert "did you mean" not in str(caught.value)


def test_show_finds_a_run_in_progress_by_its_run_id_only() -> None:
    assert find_shown("abc123", RECORDS) is RECORDS[3]
    with pytest.raises(TopologyError):
        find_persistent("abc123", RECORDS)


def test_down_finds_a_topo_up_killed_while_building() -> None:
    dead = RunRecord("lab", 2**22 + 1, 1, "lab")  # no such pid: its owner is gone
    assert find_persistent("lab", [dead]) is dead
    live = RunRecord("lab", PID, START, "lab")  # still building: not to be removed
    with pytest.raises(TopologyError):
        find_persistent("lab", [live])
