"""The plugin's leak guard counts this session's runs only: a lab another process left
up never fails a session; a leak of the session's own run still does."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import pytest
from support.paths import EXAMPLES

from netprobe.topology import down
from netprobe.topology._kernel import owner

pytestmark = pytest.mark.root

NETPROBE = str(Path(sys.executable).with_name("netprobe"))


def lab_file(directory: Path) -> tuple[Path, str]:
    name = f"leak{secrets.token_hex(3)}"
    path = directory / f"{name}.yaml"
    text = (EXAMPLES / "redblue.yaml").read_text()
    path.write_text(text.replace("name: redblue", f"name: {name}"))
    return path, name


def test_another_sessions_lab_is_not_a_leak(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """Another process brings a lab up while the session runs (here, from inside a test,
    with a session id of its own): it is still up at the end, and that is not a leak."""
    path, name = lab_file(tmp_path)
    pytester.makepyfile(
        test_user=f"""
        import os, subprocess

        def test_someone_else_brings_a_lab_up(lab):
            env = {{**os.environ, "{owner.SESSION_ENV}": "someone-else"}}
            subprocess.run(["{NETPROBE}", "topo", "up", "{path}"], env=env, check=True)
            lab.build("{EXAMPLES / "redblue.yaml"}")
        """
    )
    try:
        result = pytester.runpytest_subprocess("-q", "--netprobe-leak-check")
        result.assert_outcomes(passed=1)
        assert result.ret == 0, result.stdout.str()
        assert "outlived" not in result.stdout.str()
        assert any(r.runid == name for r in owner.read_records())  # it is up
    finally:
        down(name)


def test_the_sessions_own_leak_fails_it(pytester: pytest.Pytester, tmp_path: Path) -> None:
    path, name = lab_file(tmp_path)
    pytester.makepyfile(
        test_user=f"""
        import netprobe

        def test_leaves_a_lab_up():
            netprobe.build(netprobe.load("{path}"), persistent=True).keep()
        """
    )
    try:
        result = pytester.runpytest_subprocess("-q", "--netprobe-leak-check")
        result.assert_outcomes(passed=1)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(["*netprobe objects outlived the test session*"])
        assert f"namespace np-{name}-red" in result.stdout.str()
    finally:
        down(name)


def test_a_second_session_on_the_machine_is_not_counted(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Two test sessions side by side (the second started from a test of the first, but
    as a session of its own): the second leaves a lab up and fails for it; the first
    does not."""
    path, name = lab_file(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "test_other.py").write_text(
        "import netprobe\n\n"
        "def test_leaves_a_lab_up():\n"
        f"    netprobe.build(netprobe.load({str(path)!r}), persistent=True).keep()\n"
    )
    pytester.makepyfile(
        test_user=f"""
        import os, subprocess, sys

        def test_another_session_runs_meanwhile(lab):
            env = {{k: v for k, v in os.environ.items() if k != "{owner.SESSION_ENV}"}}
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 "--netprobe-leak-check", "{other}"],
                env=env, capture_output=True, text=True,
            )
            assert done.returncode == 1, done.stdout  # its own leak
            assert "netprobe objects outlived the test session" in done.stdout
            lab.build("{EXAMPLES / "redblue.yaml"}")
        """
    )
    try:
        result = pytester.runpytest_subprocess("-q", "--netprobe-leak-check")
        result.assert_outcomes(passed=1)
        assert result.ret == 0, result.stdout.str()
        assert "outlived" not in result.stdout.str()
    finally:
        down(name)
