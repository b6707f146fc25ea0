"""Without root, every command that needs it exits 2 with one line (README: a missing
privilege is an error, not a skip); `list` and `doctor` still work. Run as `nobody`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import EXAMPLES

from netprobe import SetupError

pytestmark = pytest.mark.root  # root, to become nobody

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NOBODY, sys.executable, "-m", "netprobe.cli", *args],
        cwd="/", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def nobody_can_run_netprobe() -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux)")
    done = subprocess.run(
        [*NOBODY, sys.executable, "-c", "import netprobe.cli"],
        cwd="/", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"user nobody cannot read this checkout or its venv: {done.stderr[-200:]}")


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "veth"],
        ["check", "all", "--no-bundle"],
        ["check", "nat", "--topology", str(EXAMPLES / "nat-gateway.yaml")],
        ["topo", "up", str(EXAMPLES / "redblue.yaml")],
        ["topo", "down", "redblue"],
        ["topo", "show", "redblue"],
        ["clean"],
        ["probe", "some-namespace", "10.70.3.2", "tcp/22"],
        ["topo", "discover", "--all"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_what_needs_root_is_one_line_and_exit_2(argv: list[str]) -> None:
    done = as_nobody(*argv)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("netprobe: error: netprobe needs root")
    assert "SKIP" not in done.stdout and "Traceback" not in done.stderr


def test_bad_input_is_still_said_first(tmp_path: Path) -> None:
    done = as_nobody("check", "nosuchcheck")
    assert done.returncode == 2 and "needs root" not in done.stderr


def test_list_and_doctor_work_without_root() -> None:
    listed = as_nobody("list")
    assert listed.returncode == 0, listed.stderr
    assert "veth" in listed.stdout
    doctor = as_nobody("doctor")
    assert doctor.returncode == 0, doctor.stderr
    assert "not root" in doctor.stdout


def test_check_run_raises_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """The library says so too, rather than returning a SKIP."""
    from netprobe import _privilege as privilege
    from netprobe.check import load_check

    monkeypatch.setattr(privilege, "is_root", lambda: False)
    check = load_check("veth")
    with pytest.raises(SetupError, match="needs root") as caught:
        check.run()
    assert "\n" not in str(caught.value) and caught.value.remedy
