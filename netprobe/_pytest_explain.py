"""A failing expectation explains itself in pytest's failure report.

When a test asserts an expectation (`expect(...)`, `expect_from_host(...)`) and it FAILs,
the probe is explained (`netprobe.explain`) the moment `assert_passed` raises, before the
test's own `with` blocks undo a sabotage and before fixtures tear the topology down; the
ranked causes, likeliest first, are added to the test's failure report as the section
"netprobe explanation". At most `MAX_EXPLAINED` failures a test are explained; a passing
expectation costs nothing. An error while explaining is one line of the section, never
in place of the failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ._failing import register
from .errors import CheckFailed

MAX_EXPLAINED = 3  # a test: explaining re-sends the probe and reads every host on its way
SECTION = "netprobe explanation"
LIMIT = 5  # causes shown


class Explainer:
    """The plugin object: a failure hook while the session runs, and the report's section."""

    def __init__(self) -> None:
        self.left = MAX_EXPLAINED
        self.busy = False
        self._remove: Callable[[], None] | None = register(self.failed)

    def close(self) -> None:
        """Stop seeing failures."""
        if self._remove is not None:
            self._remove()
            self._remove = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        """Each test has its own allowance of explanations."""
        self.left = MAX_EXPLAINED
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Iterator[None]:
        """Add the explanation of the CheckFailed the test failed with to its report."""
        report: Any = yield
        text = explanation_of(call.excinfo.value) if call.excinfo is not None else None
        if text is not None and report.failed:
            longrepr = report.longrepr
            if hasattr(longrepr, "addsection"):  # shown after the traceback, in every mode
                longrepr.addsection(SECTION, text)
            else:
                report.sections.append((SECTION, text))
        return report  # type: ignore[no-any-return]

    def failed(self, result: object) -> None:
        """The failure hook: explain a failed expectation while its network still stands."""
        from .expect import HostOutcome, Outcome, Verdict

        if not isinstance(result, (Outcome, HostOutcome)) or result.verdict is not Verdict.FAIL:
            return
        if self.busy:  # explaining asserted something of its own
            return
        if self.left <= 0:
            result.explanation = (
                f"not explained: only the first {MAX_EXPLAINED} failures of a test are"
            )
            return
        self.left -= 1
        self.busy = True
        try:
            result.explanation = _explain(result)
        except Exception as exc:  # the failure itself must still be seen
            result.explanation = f"explaining failed: {type(exc).__name__}: {exc}"
        finally:
            self.busy = False


def _explain(result: Any) -> object:
    """The Explanation of a failed Outcome or HostOutcome, or why there is none."""
    from .expect import Outcome
    from .explain import explain, explain_probe

    if result.topo is None:
        return "not explained: the outcome does not hold its topology"
    if isinstance(result, Outcome):
        if not result.frames:
            return "not explained: the outcome does not hold its frame"
        if result.frames_per_probe > 1:
            return "not explained: a probe of several frames (fragments)"
        return explain(result.topo, result.frames[0], result.port, result)
    matches = list(result.matches.values())
    match = matches[0] if matches else None  # explain_probe reasons with one shape
    return explain_probe(result.topo, result.result, where=result.where, match=match)


def explanation_of(exc: BaseException | None) -> str | None:
    """The rendered explanation `exc` (or an exception it was raised from) carries."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, CheckFailed):
            found = getattr(exc.result, "explanation", None)
            if found is not None:
                return found.render(LIMIT) if hasattr(found, "render") else f"note: {found}"
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None
