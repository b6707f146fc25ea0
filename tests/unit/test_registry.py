"""The check registry reads a real entry-point group, as a third-party package fills it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from netprobe import SpecError
from netprobe.check import GROUP, load_check, registered


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution (dist-info on sys.path) that declares one check."""
    (tmp_path / "npextra.py").write_text("def check():\n    return 'ran'\n")
    info = tmp_path / "npextra-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: npextra\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\nvlan-trunk = npextra:check\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("npextra", None)


def test_a_third_party_check_is_listed_without_import_and_loads(third_party: Path) -> None:
    reg = registered()["vlan-trunk"]
    assert (reg.target, reg.package) == ("npextra:check", "npextra")
    assert "npextra" not in sys.modules
    check = load_check("vlan-trunk")
    assert callable(check) and check() == "ran"


def test_unknown_check_suggests_the_nearest_names(third_party: Path) -> None:
    with pytest.raises(SpecError, match=r"unknown check 'vlan-trunc'; did you mean vlan-trunk"):
        load_check("vlan-trunc")
