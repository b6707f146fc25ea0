"""`netprobe check`, `report` and `replay` as a real process: exit codes, the --json
document and its schema, bundles by default, plain output when not on a terminal."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from support.paths import EXAMPLES, ROOT

from netprobe.topology import load
from netprobe.topology._model.dump import dump

pytestmark = pytest.mark.root

SCHEMA = json.loads((ROOT / "docs" / "netprobe-json.schema.json").read_text())
NETPROBE = [sys.executable, "-m", "netprobe.cli"]


def netprobe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NETPROBE, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stdout + done.stderr


@pytest.fixture
def broken_nat(tmp_path: Path) -> Path:
    """nat-gateway with forwarding off on the gateway, as a topology file."""
    spec = load(EXAMPLES / "nat-gateway.yaml")
    hosts = tuple(
        dataclasses.replace(h, sysctls=(("net.ipv4.ip_forward", "0"),)) if h.name == "pve" else h
        for h in spec.hosts
    )
    path = tmp_path / "broken-nat.yaml"
    path.write_text(dump(dataclasses.replace(spec, hosts=hosts)))
    return path


def test_passing_checks_exit_0_with_a_json_document_that_follows_the_schema(
    tmp_path: Path,
) -> None:
    done = netprobe("check", "veth", "routing", "--json", "out.json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads((tmp_path / "out.json").read_text())
    jsonschema.validate(document, SCHEMA)
    assert document["format"] == "netprobe-results" and document["version"] == 1
    assert [r["status"] for r in document["results"]] == ["PASS", "PASS"]
    assert "\x1b[" not in done.stdout  # no colours when the output is not a terminal
    assert "veth" in done.stdout and "PASS" in done.stdout
    assert not (tmp_path / "netprobe-reports").exists()


def test_a_failing_check_exits_1_and_leaves_a_bundle_by_default(
    tmp_path: Path, broken_nat: Path
) -> None:
    done = netprobe(
        "check", "nat", "--topology", str(broken_nat), "--json", "out.json", cwd=tmp_path
    )
    assert done.returncode == 1, done.stdout + done.stderr
    no_traceback(done)
    bundles = list((tmp_path / "netprobe-reports").glob("nat-*"))
    assert len(bundles) == 1 and (bundles[0] / "repro.sh").is_file()
    assert f"bug-report bundle: {bundles[0]}" in done.stdout.replace("\n", "")
    document = json.loads((tmp_path / "out.json").read_text())
    jsonschema.validate(document, SCHEMA)
    assert document["results"][0]["bundle"] == str(bundles[0])

    shown = netprobe("report", str(bundles[0]), cwd=tmp_path)
    assert shown.returncode == 0 and shown.stdout.startswith("nat: FAIL")
    assert "ip_forward is 0 on pve" in shown.stdout

    again = netprobe("replay", str(bundles[0]), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "recorded FAIL, now FAIL: reproduced" in again.stdout


def test_no_bundle_and_a_bundle_directory_of_ones_choice(tmp_path: Path, broken_nat: Path) -> None:
    done = netprobe(
        "check", "nat", "--topology", str(broken_nat), "--no-bundle", "-q", cwd=tmp_path
    )
    assert done.returncode == 1 and done.stdout == ""
    assert not (tmp_path / "netprobe-reports").exists()
    done = netprobe(
        "check",
        "nat",
        "--topology",
        str(broken_nat),
        "--bundle",
        "mine",
        "--archive",
        "-q",
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert len(list((tmp_path / "mine").glob("nat-*.tar.gz"))) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("check", "nta"), "did you mean nat"),
        (("check", "veth", "--policy", "{policy}"), "check veth takes parameters"),
        (("check", "veth", "--topology", "{bad}"), "bad.yaml:2"),
        (("check", "veth", "--topology", "missing.yaml"), "does not exist"),
        (("report", "."), "is not a netprobe bundle"),
        (("replay", "{bad}"), "is not a netprobe bundle"),
    ],
)
def test_bad_input_is_one_message_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "bad.yaml").write_text("hosts:\n  red: [1, 2]\n")
    (tmp_path / "policy.yml").write_text("input:\n")
    fill = {"bad": str(tmp_path / "bad.yaml"), "policy": str(tmp_path / "policy.yml")}
    done = netprobe(*(a.format(**fill) for a in args), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    no_traceback(done)
    assert message in done.stdout + done.stderr


def test_list_shows_a_checks_parameters(tmp_path: Path) -> None:
    done = netprobe("list", "nat", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("nat: masquerade")
    assert "public_ip" in done.stdout and "parameters (--KEY VALUE or -p KEY=VALUE)" in done.stdout
    table = netprobe("list", cwd=tmp_path)
    assert table.returncode == 0 and "docker-bridge" in table.stdout


def test_clean_removes_the_trace_instance_of_a_killed_run(tmp_path: Path) -> None:
    """explain's private tracefs instance, left by a run killed mid-explanation."""
    from netprobe.errors import SetupError
    from netprobe.traffic._tracefs import TRACEFS, mount_tracefs

    try:
        mount_tracefs()
    except SetupError as exc:
        pytest.skip(str(exc))
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid names no process now
    killed = Path(TRACEFS, "instances", f"netprobe-dead00-{gone.pid}-0")
    killed.mkdir()
    done = netprobe("clean", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"tracefs instance {killed.name}" in done.stdout
    assert not killed.exists()


def test_a_checks_own_parameters_are_options(tmp_path: Path) -> None:
    done = netprobe(
        "check", "veth", "--a", "switch:red", "--b=red:eth0", "--json", "o.json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "o.json").read_text())["results"][0]["status"] == "PASS"
    wrong = netprobe("check", "veth", "--nope", "x", cwd=tmp_path)
    assert wrong.returncode == 2 and "check veth takes parameters a, b, not nope" in wrong.stderr
    no_value = netprobe("check", "veth", "--a", cwd=tmp_path)
    assert no_value.returncode == 2 and "--a needs a value" in no_value.stderr
    no_traceback(wrong)
