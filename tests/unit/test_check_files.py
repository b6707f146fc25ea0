"""Checks outside netprobe: a check in a file of its own, a third-party package's check,
each with its reference topology beside it; a missing reference is no runnable check."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from netprobe import SpecError
from netprobe.check import GROUP, Check, expand_names, load_check, registered
from netprobe.check._registry import file_checks

CHECKS = '''
from netprobe.check import Check

def body(ctx, *, ttl: int = 64):
    ctx.record(f"ttl {ttl}", True)

FIRST = Check("first", "x", body, "mine.yaml")
SECOND = Check("second", "x", body, "elsewhere.yaml")
'''


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "two.py").write_text(CHECKS)
    (tmp_path / "one.py").write_text(CHECKS + "CHECK = FIRST\n")
    (tmp_path / "mine.yaml").write_text("hosts:\n  a: {}\n")
    (tmp_path / "none.py").write_text("X = 1\n")
    (tmp_path / "bad.py").write_text("1 / 0\n")
    return tmp_path


def test_a_files_check_is_its_CHECK_or_every_check_in_it(folder: Path) -> None:
    assert [c.name for c in file_checks(folder / "one.py")] == ["first"]
    assert [c.name for c in file_checks(folder / "two.py")] == ["first", "second"]
    assert expand_names([str(folder / "two.py"), "veth"]) == [
        f"{folder / 'two.py'}:first", f"{folder / 'two.py'}:second", "veth",
    ]
    check = load_check(f"{folder / 'two.py'}:second")
    assert isinstance(check, Check) and check.name == "second"


def test_a_relative_path_names_a_file(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder)
    assert expand_names(["./one.py"]) == [f"{folder / 'one.py'}:first"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("none.py", "defines no netprobe Check"),
        ("bad.py", "cannot load .*bad.py: ZeroDivisionError"),
        ("missing.py", "no check file"),
        ("two.py", "defines more than one check: it has first, second"),
        ("two.py:third", "defines no check 'third'"),
    ],
)
def test_a_file_that_is_no_check_is_one_message(folder: Path, name: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_check(str(folder / name))


def test_a_file_checks_reference_resolves_beside_the_file(folder: Path) -> None:
    first, second = file_checks(folder / "two.py")
    assert first.reference_file() == folder / "mine.yaml"
    with pytest.raises(SpecError, match=r"reference topology elsewhere\.yaml not found"):
        second.reference_file()


def test_built_ins_keep_finding_their_own_references() -> None:
    for name in ("nat", "veth", "exposure"):
        check = load_check(name)
        assert isinstance(check, Check) and check.reference_file().is_file()


def test_a_check_may_reuse_a_topology_of_netprobes_by_name(folder: Path) -> None:
    (folder / "reuse.py").write_text(CHECKS.replace("mine.yaml", "redblue.yaml"))
    check = file_checks(folder / "reuse.py")[0]
    assert check.reference_file().name == "redblue.yaml"


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution (dist-info on sys.path) with two checks: one whose
    reference topology is in its package, one whose reference is missing."""
    package = tmp_path / "npthird"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "lab.py").write_text(
        "from netprobe.check import Check\n"
        "def body(ctx):\n    ctx.record('up', True)\n"
        "CHECK = Check('third', 'x', body, 'third.yaml')\n"
        "LOST = Check('lost', 'x', body, 'lost.yaml')\n"
    )
    (package / "third.yaml").write_text("hosts:\n  a: {}\n")
    info = tmp_path / "npthird-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: npthird\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{GROUP}]\nthird = npthird.lab:CHECK\nthird-lost = npthird.lab:LOST\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in ("npthird", "npthird.lab"):
        sys.modules.pop(name, None)


def test_a_packaged_checks_reference_resolves_beside_its_module(third_party: Path) -> None:
    check = load_check("third")
    assert isinstance(check, Check)
    assert check.reference_file() == third_party / "third.yaml"


def test_list_does_not_say_a_check_without_its_reference_can_run(third_party: Path) -> None:
    from rich.console import Console

    from netprobe.report._text import check_details, checks_table

    console = Console(width=300, record=True)
    wanted = {k: v for k, v in registered().items() if k.startswith("third")}
    console.print(checks_table(wanted))
    rows = {line.split("│")[1].strip(): line for line in console.export_text().splitlines()
            if line.count("│") > 2}
    assert "no: reference topology lost.yaml" in rows["third-lost"]
    assert "yes" in rows["third"] and "no:" not in rows["third"]
    lost = load_check("third-lost")
    assert isinstance(lost, Check)
    assert "lost.yaml (not found: the check cannot run)" in check_details(lost)
