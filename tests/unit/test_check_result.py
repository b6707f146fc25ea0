"""How step statuses combine into a check's verdict, and how results render."""

from __future__ import annotations

import pytest

from netprobe import CheckFailed
from netprobe.check import Result, Status, Step
from netprobe.check._result import overall

P, F, INC, S, E = Status.PASS, Status.FAIL, Status.INCONCLUSIVE, Status.SKIP, Status.ERROR


@pytest.mark.parametrize(("statuses", "expected"), [
    ([P, P], P), ([P, F, INC], F), ([P, INC], INC), ([S, S], S), ([S, P], P), ([P, E, F], E),
    ([], E),  # a check that established nothing has not passed
])
def test_the_worst_step_decides(statuses: list[Status], expected: Status) -> None:
    assert overall([Step(f"s{i}", s) for i, s in enumerate(statuses)]) is expected


def test_a_failed_result_raises_with_its_diagnosis_and_steps() -> None:
    result = Result("nat", F, "masquerade: probe 1 arrived altered",
                    [Step("masquerade", F, "probe 1 arrived altered"), Step("reply", P)],
                    diagnosis="no masquerade rule for 10.10.10.0/24 out of uplink")
    with pytest.raises(CheckFailed) as failed:
        result.assert_passed()
    text = str(failed.value)
    assert text.startswith("nat: FAIL")
    assert "diagnosis: no masquerade rule" in text and "[PASS] reply" in text
    assert result.to_dict()["steps"][0]["status"] == "FAIL"
