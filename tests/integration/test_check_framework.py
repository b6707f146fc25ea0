"""The check framework end to end: the worked example, SKIP, ERROR, and the CLI."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.paths import EXAMPLES

import netprobe
from netprobe.check import Check, Context, Status
from netprobe.cli import cli

pytestmark = pytest.mark.root



def _example_check() -> Check:
    spec = importlib.util.spec_from_file_location("echo_check", EXAMPLES / "echo_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    check: Check = module.CHECK
    return check


def test_the_worked_example_is_short_passes_and_can_fail() -> None:
    assert len((EXAMPLES / "echo_check.py").read_text().splitlines()) <= 80
    check = _example_check()
    assert check.run().status is Status.PASS
    with netprobe.build(netprobe.load(EXAMPLES / "redblue.yaml")) as topo:
        topo.run("blue", ["sysctl", "-w", "net.ipv4.icmp_echo_ignore_all=1"], check=True)
        result = check.run(topo)
    assert result.status is Status.FAIL
    assert result.diagnosis == "blue ignores echo requests (net.ipv4.icmp_echo_ignore_all = 1)"


def test_a_check_needing_what_the_machine_lacks_is_skipped_with_the_remedy() -> None:
    from netprobe._capabilities import probe

    if probe(["bond"])[0].present:
        pytest.skip("this kernel has bonding")
    ran = []
    check = Check(
        "needs-bond", "x", lambda ctx: ran.append(ctx), "redblue.yaml", requires=("bond",)
    )
    result = check.run()
    assert result.status is Status.SKIP and not ran
    assert "bond" in result.summary and result.diagnosis


def test_a_check_whose_topology_cannot_be_built_is_an_error(tmp_path: Path) -> None:
    def body(ctx: Context) -> None:
        ctx.record("never", True)

    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts:\n  a:\n    sysctls: {net.ipv4.nonexistent: 1}\n")
    result = Check("broken", "x", body, "redblue.yaml").run(bad)
    assert result.status is Status.ERROR and "nonexistent" in result.summary


def test_cli_runs_checks_with_exit_codes_json_and_suggestions(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "results.json"
    ok = runner.invoke(cli, ["check", "veth", "--json", str(out)])
    assert ok.exit_code == 0, ok.output
    assert json.loads(out.read_text())["results"][0]["status"] == "PASS"
    unknown = runner.invoke(cli, ["check", "vet"])
    assert unknown.exit_code == 2 and "did you mean veth" in unknown.stderr
    bad = runner.invoke(cli, ["check", "veth", "-p", "nope=1"])
    assert bad.exit_code == 2 and "takes parameters a, b" in bad.stderr
    sabotaged = tmp_path / "pair.yaml"
    sabotaged.write_text(
        "hosts:\n  x:\n    interfaces:\n      eth0: {veth: y:eth0}\n"
        "  y:\n    interfaces:\n      eth0: {mtu: 1280}\n"
    )
    failed = runner.invoke(
        cli,
        ["check", "veth", "--topology", str(sabotaged), "-p", "a=x:eth0", "-p", "b=y:eth0",
         "--bundle", str(tmp_path / "reports")],
        terminal_width=200,
    )
    assert failed.exit_code == 1
    assert "MTU mismatch" in failed.output
    assert len(list((tmp_path / "reports").glob("veth-*/result.json"))) == 1


def test_cli_writes_junit_and_can_be_quiet(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    sabotaged = tmp_path / "pair.yaml"
    sabotaged.write_text(
        "hosts:\n  x:\n    interfaces:\n      eth0: {veth: y:eth0}\n"
        "  y:\n    interfaces:\n      eth0: {mtu: 1280}\n"
    )
    junit = tmp_path / "junit.xml"
    result = CliRunner().invoke(
        cli,
        [
            "check",
            "veth",
            "-q",
            "--no-bundle",
            "--junit",
            str(junit),
            "--topology",
            str(sabotaged),
            "-p",
            "a=x:eth0",
            "-p",
            "b=y:eth0",
        ],
    )
    assert result.exit_code == 1 and result.output == ""
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("1", "1")
    failure = suite.find("testcase/failure")
    assert failure is not None and "MTU mismatch" in (failure.text or "")
