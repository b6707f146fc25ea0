"""replay pairs a recorded step with the same step of the new run, by identity, and names
steps missing from the new run and steps new in it."""

from __future__ import annotations

from typing import Any

from netprobe.bundle._replay import Replay, _align
from netprobe.check import Result, Status, Step


def _recorded(*steps: tuple[str, str, str | None]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, status, key in steps:
        out.append({"name": name, "status": status} | ({"id": key} if key else {}))
    return out


def _now(*steps: Step) -> Result:
    return Result("nat", Status.FAIL, "x", list(steps))


def test_a_step_is_compared_with_the_same_step_not_the_one_in_its_place() -> None:
    recorded = _recorded(("vm1 out", "FAIL", None), ("tap out", "FAIL", None),
                         ("published", "FAIL", None))
    now = _now(Step("tap out", Status.PASS), Step("published", Status.FAIL))
    pairs = _align(recorded, now)
    assert [(p.name, p.recorded, p.now, p.mark) for p in pairs] == [
        ("vm1 out", "FAIL", None, "MISSING"),
        ("tap out", "FAIL", "PASS", "DIFFERS"),
        ("published", "FAIL", "FAIL", "same"),
    ]


def test_a_step_new_in_this_run_is_named() -> None:
    pairs = _align(_recorded(("a", "PASS", None)), _now(Step("a", Status.PASS),
                                                         Step("b", Status.FAIL)))
    assert [(p.name, p.mark) for p in pairs] == [("a", "same"), ("b", "NEW")]


def test_steps_pair_by_key_when_their_names_carry_values_that_vary() -> None:
    recorded = _recorded(("reply → 203.0.113.10:40000", "PASS", "vm1:eth0: reply back"))
    now = _now(Step("reply → 203.0.113.10:40007", Status.PASS, key="vm1:eth0: reply back"))
    (pair,) = _align(recorded, now)
    assert pair.same and pair.name == (
        "reply → 203.0.113.10:40000 (now: reply → 203.0.113.10:40007)"
    )


def test_a_bundle_without_ids_pairs_by_name() -> None:
    recorded = _recorded(("x", "FAIL", None), ("x", "PASS", None))
    now = _now(Step("x", Status.FAIL, key="k1"), Step("x", Status.PASS, key="k2"))
    assert [p.mark for p in _align(recorded, now)] == ["same", "same"]


def test_the_text_says_missing_and_new_and_does_not_match() -> None:
    document = {"result": {"status": "FAIL"}}
    now = _now(Step("b", Status.FAIL))
    replayed = Replay(document, now, _align(_recorded(("a", "FAIL", None)), now))
    text = replayed.text()
    assert not replayed.matches
    assert "MISSING FAIL         → -            a" in text
    assert "NEW     -            → FAIL         b" in text
