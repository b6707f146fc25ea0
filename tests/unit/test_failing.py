"""Failure hooks: shown a failed outcome before its CheckFailed, never in its place; what
explaining needs rides on the outcome, never serialised nor pickled."""

from __future__ import annotations

import pickle

import pytest

from netprobe import _failing
from netprobe.errors import CheckFailed
from netprobe.expect import Match, Outcome, Verdict, at


def _outcome(verdict: Verdict) -> Outcome:
    return Outcome(verdict, "probe 1 never reached b:eth0", "udp", "a:eth0", at("b:eth0"),
                   Match(), [], {}, "deadline", 0.1, topo=lambda: None)  # fmt: skip


def test_hooks_see_a_failure_first_and_their_errors_never_replace_it() -> None:
    seen: list[object] = []

    def broken(result: object) -> None:
        raise RuntimeError("a hook's own fault")

    removers = [_failing.register(broken), _failing.register(seen.append)]
    try:
        outcome = _outcome(Verdict.FAIL)
        outcome.pcaps["b:eth0"] = "/dev/null"  # no pcaps written
        with pytest.raises(CheckFailed) as failed:
            outcome.assert_passed()
        assert failed.value.result is outcome and seen == [outcome]
        _outcome(Verdict.PASS).assert_passed()
        assert seen == [outcome]  # a pass is shown to nobody
    finally:
        for remove in removers:
            remove()
    assert broken not in _failing._hooks


def test_what_explaining_needs_is_not_serialised() -> None:
    outcome = _outcome(Verdict.FAIL)
    outcome.explanation = "explained"
    again = pickle.loads(pickle.dumps(outcome))  # a check suite's worker sends results so
    assert again.topo is None and again.explanation == "explained"
    assert not {"topo", "frames", "explanation"} & set(outcome.to_dict())
