"""Checks from outside netprobe, as real processes: a check in a file (`netprobe check
./mycheck.py`), a third-party package's check with its reference topology in the
package, and a broken check among `check all` (ERROR with its traceback, the rest kept)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from support.paths import ROOT

from netprobe.check import GROUP

pytestmark = pytest.mark.root

SCHEMA = json.loads((ROOT / "docs" / "netprobe-json.schema.json").read_text())
PAIR = "hosts:\n  x:\n    interfaces:\n      eth0: {veth: y:eth0}\n  y: {}\n"

MYCHECK = '''
from netprobe.check import Check

def body(ctx, *, ttl: int = 64):
    ctx.record(f"ttl {ttl!r} is an int", isinstance(ttl, int))
    ctx.record("the pair is up", ctx.link("x", "eth0") is not None)

CHECK = Check("mine", "a check in a file", body, "pair.yaml", requires=("veth",))
'''

BROKEN = '''
import json, os
from netprobe.check import Check

def body(ctx):
    ctx.record("built", True)
    with open(os.environ["NPBROKEN_RECORD"], "w") as out:
        json.dump(sorted(ns for ns in ctx.topo.record.namespaces.values() if ns), out)
    1 / 0

CHECK = Check("broken", "a check with a bug", body, "broken.yaml", requires=("veth",))
'''


def netprobe(*args: str, cwd: Path, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="300")  # rich's tables unwrapped
    if path is not None:  # an installed third-party package: its dist-info on the path
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
        env["NPBROKEN_RECORD"] = str(path / "namespaces.json")
    return subprocess.run([sys.executable, "-m", "netprobe.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def package(site: Path, name: str, source: str, entry_points: dict[str, str],
            files: dict[str, str]) -> Path:
    """Install package `name` (module `checks`) into `site` as pip would: the package and
    a dist-info declaring its entry points; returns the package's directory."""
    directory = site / name
    directory.mkdir(parents=True)
    (directory / "__init__.py").write_text("")
    (directory / "checks.py").write_text(source)
    for file, text in files.items():
        (directory / file).write_text(text)
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}")
    return directory


def test_a_check_in_a_file_runs_with_its_reference_beside_it_and_typed_params(
    tmp_path: Path,
) -> None:
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "mycheck.py").write_text(MYCHECK)
    (lab / "pair.yaml").write_text(PAIR)
    done = netprobe("check", "./lab/mycheck.py", "--ttl", "10", "--json", "o.json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = json.loads((tmp_path / "o.json").read_text())["results"]
    assert (result["check"], result["status"]) == ("mine", "PASS")
    assert result["steps"][0]["name"] == "ttl 10 is an int"
    bad = netprobe("check", "lab/mycheck.py", "--ttl", "ten", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "netprobe: error: check mine: parameter ttl takes an integer, not 'ten'"
    )
    assert not (tmp_path / "netprobe-reports").exists()


def test_a_failing_check_from_a_file_replays_from_its_bundle(tmp_path: Path) -> None:
    """The bundle carries the check's file: replay runs it there, whatever became of the
    original (here: removed)."""
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "mycheck.py").write_text(MYCHECK)
    (lab / "pair.yaml").write_text(PAIR)
    done = netprobe("check", "./lab/mycheck.py", "--ttl", "-1", "--bundle", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr  # a PASS: nothing bundled
    failing = MYCHECK.replace('isinstance(ttl, int))', 'ttl > 0)')
    (lab / "mycheck.py").write_text(failing)
    done = netprobe("check", "./lab/mycheck.py", "--ttl", "-1", "--bundle", "out", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    (bundle,) = (tmp_path / "out").iterdir()
    document = json.loads((bundle / "result.json").read_text())
    assert document["check_file"] == "check/mycheck.py"
    jsonschema.validate(document, SCHEMA)
    assert (bundle / "check" / "mycheck.py").read_text() == failing
    (lab / "mycheck.py").unlink()
    again = netprobe("replay", str(bundle), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr  # the same FAIL: reproduced
    assert "reproduced" in again.stdout


def test_a_packaged_check_finds_its_reference_in_its_package(tmp_path: Path) -> None:
    site = tmp_path / "site"
    source = MYCHECK + 'LOST = Check("lost", "x", body, "lost.yaml", requires=("veth",))\n'
    package(site, "npmine", source, {"mine": "npmine.checks:CHECK", "mine-lost":
            "npmine.checks:LOST"}, {"pair.yaml": PAIR})
    done = netprobe("check", "mine", "--no-bundle", cwd=tmp_path, path=site)
    assert done.returncode == 0, done.stdout + done.stderr
    lost = netprobe("check", "mine-lost", "--json", "o.json", cwd=tmp_path, path=site)
    assert lost.returncode == 2, lost.stdout + lost.stderr
    (result,) = json.loads((tmp_path / "o.json").read_text())["results"]
    assert result["status"] == "ERROR"
    assert "reference topology lost.yaml not found" in result["summary"]
    listed = netprobe("list", cwd=tmp_path, path=site)
    row = next(line for line in listed.stdout.splitlines() if "mine-lost" in line)
    assert "no: reference topology lost.yaml" in row


def test_a_broken_check_is_an_error_and_check_all_reports_the_rest(tmp_path: Path) -> None:
    site = tmp_path / "site"
    package(site, "npbroken", BROKEN, {"broken": "npbroken.checks:CHECK"},
            {"broken.yaml": PAIR})
    done = netprobe("check", "all", "--no-bundle", "--json", "all.json", "--junit", "all.xml",
                    cwd=tmp_path, path=site)
    assert done.returncode == 2, done.stdout + done.stderr  # an ERROR among the results
    assert "Traceback" not in done.stderr
    assert "netprobe check results" in done.stdout
    document = json.loads((tmp_path / "all.json").read_text())
    jsonschema.validate(document, SCHEMA)
    results = {r["check"]: r for r in document["results"]}
    broken = results.pop("broken")
    assert broken["status"] == "ERROR" and "ZeroDivisionError" in broken["summary"]
    assert "1 / 0" in broken["traceback"] and broken["steps"][0]["name"] == "built"
    assert "ZeroDivisionError: division by zero" in done.stdout  # its evidence
    assert {"nat", "veth", "exposure"} <= set(results)
    assert all(r["status"] != "ERROR" for r in results.values()), results
    assert 'name="broken"' in (tmp_path / "all.xml").read_text()
    left = json.loads((site / "namespaces.json").read_text())
    present = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert left and not [ns for ns in left if ns in present]  # its topology was torn down
