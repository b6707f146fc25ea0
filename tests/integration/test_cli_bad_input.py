"""Bad input to `netprobe check` and `topo up`: one message on stderr, exit 2, no
traceback, before any check runs, nothing left behind, and results shown are never lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from netprobe.cli import cli

pytestmark = pytest.mark.root

BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"


def one_message(result: Result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netprobe: error: "), result.stderr
    for word in words:
        assert word in lines[0]


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Working in an empty directory, where running a check fails the test."""

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a check ran before its input was refused")

    monkeypatch.setattr("netprobe.check._suite.run_checks", boom)
    monkeypatch.setattr("netprobe.vm.run_named_checks", boom)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--json", "/nonexistent/dir/f"], ["--json /nonexistent/dir/f", "No such file"]),
        (["--junit", "/nonexistent/dir/f"], ["--junit /nonexistent/dir/f", "cannot write"]),
        (["--json", "/proc/x"], ["--json /proc/x", "cannot write"]),
        (["--junit", "/proc/x"], ["--junit /proc/x"]),
        (["--bundle", "/proc/x"], ["--bundle /proc/x", "cannot make directories in /proc"]),
        (["--bundle", "/proc/x/y/z"], ["--bundle /proc/x/y/z"]),
    ],
)
def test_an_unwritable_output_is_refused_before_any_check_runs(
    no_run: Path, args: list[str], words: list[str]
) -> None:
    one_message(CliRunner().invoke(cli, ["check", "veth", *args]), *words)
    assert list(no_run.iterdir()) == []  # not even the default bundle directory
    assert not os.path.lexists("/proc/x")


def test_a_bundle_path_that_is_a_file_is_refused(no_run: Path) -> None:
    (no_run / "reports").write_text("")
    result = CliRunner().invoke(cli, ["check", "veth", "--bundle", "reports/deeper"])
    one_message(result, "is not a directory")


def test_the_probe_leaves_nothing_and_keeps_what_exists(no_run: Path) -> None:
    """Writable targets pass the probe unmade (or, when they exist, untouched)."""
    from netprobe.report._output import ensure_writable_dir, ensure_writable_file

    (no_run / "old.json").write_text("keep me")
    ensure_writable_file("old.json", "--json")
    ensure_writable_file("new.json", "--json")
    ensure_writable_dir("a/b/c", "--bundle")
    assert sorted(p.name for p in no_run.iterdir()) == ["old.json"]
    assert (no_run / "old.json").read_text() == "keep me"


def test_a_late_write_failure_keeps_the_results_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The target vanished while the checks ran: the table is out, the other file is
    written, and one line says what could not be."""
    monkeypatch.setattr("netprobe.report._output.ensure_writable_file", lambda *a: None)
    junit = tmp_path / "out.xml"
    result = CliRunner().invoke(
        cli,
        ["check", "veth", "--no-bundle", "--json", "/nonexistent/dir/f", "--junit", str(junit)],
        terminal_width=200,
    )
    one_message(result, "--json /nonexistent/dir/f: cannot write it: No such file")
    assert "veth" in result.stdout and "PASS" in result.stdout
    assert "<testcase" in junit.read_text()


def test_a_missing_kernel_image_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["check", "veth", "--kernel", "/nonexistent/vmlinuz", "--bundle", "reports"]
    )
    assert result.exit_code == 2 and "kernel image /nonexistent/vmlinuz not found" in result.stderr
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_missing_kernel_image_leaves_nothing_behind_in_the_library(tmp_path: Path) -> None:
    from netprobe import SetupError
    from netprobe.vm._guest import run_named_checks

    with pytest.raises(SetupError, match="not found"):
        run_named_checks(["veth"], kernel="/nonexistent/vmlinuz", bundle_dir=tmp_path / "r")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("option", "content", "words"),
    [
        ("--policy", BINARY, ["cannot read policy: not UTF-8 text"]),
        ("--policy", None, ["cannot read policy: it is a FIFO"]),
        ("--ruleset", BINARY, ["cannot read ruleset: not UTF-8"]),
        ("--ruleset", None, ["cannot read ruleset: it is a FIFO"]),
    ],
)
def test_bad_input_files_are_refused_before_any_check_runs(
    no_run: Path, option: str, content: bytes | None, words: list[str]
) -> None:
    path = no_run / "input"
    if content is None:
        os.mkfifo(path)
    else:
        path.write_bytes(content)
    one_message(CliRunner().invoke(cli, ["check", "filter", option, str(path)]), *words)
    assert [p.name for p in no_run.iterdir()] == ["input"]


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "big"])
def test_topo_up_refuses_what_is_not_a_small_regular_file(tmp_path: Path, kind: str) -> None:
    path = kind
    if kind == "fifo":
        path = str(tmp_path / "topo.yaml")
        os.mkfifo(path)
    elif kind == "big":
        path = str(tmp_path / "topo.yaml")
        with open(path, "wb") as out:
            out.truncate(5 * 1024 * 1024)
    done = subprocess.run(
        [sys.executable, "-m", "netprobe.cli", "topo", "up", path],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    message = done.stderr.strip().splitlines()
    assert len(message) == 1
    assert ("over the limit of 4 MiB" if kind == "big" else "not a regular file") in message[0]
