"""The check registry reads a real entry-point group, as a third-party package fills it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from netprobe import SpecError
from netprobe.check import GROUP, Check, load_check, registered


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution (dist-info on sys.path) that declares one check."""
    (tmp_path / "npextra.py").write_text(
        "from netprobe.check import Check\n\n"
        "def body(ctx):\n    ctx.record('ran', True)\n\n"
        "def helper():\n    return 'not a check'\n\n"
        "check = Check('vlan-trunk', 'a third-party check', body, 'trunk.yaml')\n"
    )
    info = tmp_path / "npextra-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: npextra\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{GROUP}]\nvlan-trunk = npextra:check\nhelper = npextra:helper\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("npextra", None)


def test_a_third_party_check_is_listed_without_import_and_loads(third_party: Path) -> None:
    reg = registered()["vlan-trunk"]
    assert (reg.target, reg.package) == ("npextra:check", "npextra")
    assert "npextra" not in sys.modules
    check = load_check("vlan-trunk")
    assert isinstance(check, Check) and check.summary == "a third-party check"


def test_an_entry_point_that_is_not_a_check_is_refused_by_name(third_party: Path) -> None:
    with pytest.raises(SpecError, match=r"the entry point for check 'helper' is not a netprobe"):
        load_check("helper")


def test_list_shows_an_entry_point_that_is_not_a_check_as_broken(third_party: Path) -> None:
    from rich.console import Console

    from netprobe.report._text import checks_table

    console = Console(width=300, record=True)
    console.print(checks_table({"helper": registered()["helper"]}))
    text = console.export_text()
    assert "cannot load npextra:helper" in text and "broken" in text


def test_unknown_check_suggests_the_nearest_names(third_party: Path) -> None:
    with pytest.raises(SpecError, match=r"unknown check 'vlan-trunc'; did you mean vlan-trunk"):
        load_check("vlan-trunc")
