"""Every Python snippet of the README runs as written, on real topologies, from a
directory that holds `examples/` (as a checkout of netprobe does); test functions run
under pytest with the plugin. Nothing a snippet builds outlives it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from support.paths import ROOT

from netprobe.topology._kernel import owner

pytestmark = pytest.mark.root

SNIPPETS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def mine() -> list[str]:
    """Runs this process owns: a snippet that left one up did not clean up."""
    return [r.runid for r in owner.read_records() if r.pid == os.getpid()]


@pytest.mark.parametrize(
    "code", [pytest.param(c, id=c.strip().splitlines()[0][:40]) for c in SNIPPETS]
)
def test_readme_snippet_runs(
    code: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if re.search(r"^def test_", code, re.M):  # tests for the plugin's fixtures
        # pytester only here: it drops the modules a test imported when it ends, which
        # the names `netprobe` has already handed out (netprobe.run_check …) still use
        pytester: pytest.Pytester = request.getfixturevalue("pytester")
        here = pytester.path
        (here / "examples").symlink_to(ROOT / "examples")
        pytester.makepyfile(test_readme=code)
        result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=len(re.findall(r"^def test_", code, re.M)))
    else:
        here = tmp_path
        (here / "examples").symlink_to(ROOT / "examples")
        monkeypatch.chdir(here)
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert mine() == []
    assert not (here / "netprobe-reports").exists()  # nothing failed
