"""The command line: topo up/show/list/down, doctor, clean, and bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.paths import EXAMPLES

from netprobe.cli import cli
from netprobe.topology._kernel import netns, owner

pytestmark = pytest.mark.root



@pytest.fixture
def made_runids(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run ids this test's (in-process) commands give out: what they made is judged by
    these, not by every np-* namespace and record on the machine, which others' runs share."""
    made: list[str] = []
    for name in ("new_runid", "persistent_runid"):
        real = getattr(owner, name)

        def spy(*args: str, real: Callable[..., str] = real) -> str:
            made.append(real(*args))
            return made[-1]

        monkeypatch.setattr(owner, name, spy)
    return made


def _left_of(runids: list[str]) -> tuple[list[str], list[str]]:
    """Namespaces and records of these runs still on the machine."""
    prefixes = tuple(owner.ns_prefix(r) for r in runids)
    return (
        [n for n in netns.list_names() if prefixes and n.startswith(prefixes)],
        [r.runid for r in owner.read_records() if r.runid in runids],
    )


def test_topo_up_show_list_down(tmp_path: Path) -> None:
    spec = tmp_path / "clitopo.yaml"
    spec.write_text((EXAMPLES / "router.yaml").read_text().replace("name: router", "name: clitopo"))
    runner = CliRunner()
    up = runner.invoke(cli, ["topo", "up", str(spec)])
    try:
        assert up.exit_code == 0, up.output
        assert "ip netns exec np-clitopo-router bash" in up.output
        ping = subprocess.run(
            ["ip", "netns", "exec", "np-clitopo-left", "ping", "-c1", "-W2", "10.2.0.10"],
            capture_output=True,
            check=False,
        )
        assert ping.returncode == 0  # it stayed up after the command returned
        show = runner.invoke(cli, ["topo", "show", "clitopo"])
        assert show.exit_code == 0
        assert "10.1.0.1/24" in show.output and "default via 10.1.0.1" in show.output
        listing = runner.invoke(cli, ["topo", "list"])
        assert "clitopo" in listing.output and "persistent" in listing.output
        again = runner.invoke(cli, ["topo", "up", str(spec)])
        assert again.exit_code == 2 and "already up" in again.stderr
    finally:
        down = runner.invoke(cli, ["topo", "down", "clitopo"])
    assert down.exit_code == 0, down.output
    assert not [n for n in netns.list_names() if n.startswith("np-clitopo-")]
    gone = runner.invoke(cli, ["topo", "down", "clitopo"])
    assert gone.exit_code == 2 and "no topology named 'clitopo'" in gone.stderr


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("hosts:\n  a:\n    interfacez: {}\n", ":3:", "unknown key 'interfacez'"),
        (
            "hosts:\n  a:\n    interfaces:\n      eth0: {veth: nowhere:eth0}\n",
            ":4:",
            "unknown host 'nowhere'",
        ),
        (
            "hosts:\n  a:\n    interfaces:\n      eth0: {addresses: [10.0.0.300/24]}\n",
            ":4:",
            "bad address",
        ),
        ("hosts:\n  a:\n    firewall: {nft: missing.nft}\n", ":3:", "cannot read ruleset"),
    ],
)
def test_bad_input_is_one_message_with_file_and_line_exit_2_and_nothing_made(
    tmp_path: Path, text: str, where: str, message: str, made_runids: list[str]
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    result = CliRunner().invoke(cli, ["topo", "up", str(spec)])
    assert result.exit_code == 2
    assert f"{spec}{where}" in result.stderr and message in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert _left_of(made_runids) == ([], [])


def test_missing_file_and_unknown_topology_are_exit_2() -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["topo", "up", "/nonexistent/topo.yaml"])
    assert missing.exit_code == 2 and "cannot read topology file" in missing.stderr
    show = runner.invoke(cli, ["topo", "show", "no-such-topology"])
    assert show.exit_code == 2 and "no topology named" in show.stderr


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_without_cap_net_admin_or_cap_sys_admin_one_clear_message() -> None:
    code = "from netprobe.cli import main; main()"
    for cap in ("net_admin", "sys_admin"):  # a container often has only CAP_NET_ADMIN
        drop = ["setpriv", f"--inh-caps=-{cap}", f"--bounding-set=-{cap}"]
        for argv in (
            ["topo", "up", str(EXAMPLES / "redblue.yaml")],
            ["clean"],
            ["topo", "show", "anything"],
        ):
            proc = subprocess.run(
                [*drop, sys.executable, "-c", code, *argv],
                capture_output=True,
                text=True,
                check=False,
            )
            assert proc.returncode == 2, proc.stderr
            assert "needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)" in proc.stderr
            assert "Traceback" not in proc.stderr


def test_doctor_reports_every_feature_and_tool() -> None:
    from netprobe._capabilities import KERNEL_FEATURES, TOOLS

    result = CliRunner().invoke(cli, ["doctor"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in (*KERNEL_FEATURES, *TOOLS):
        assert name in result.output
    assert "present" in result.output


def test_clean_says_what_it_did() -> None:
    result = CliRunner().invoke(cli, ["clean"])
    assert result.exit_code == 0
    assert "nothing to clean" in result.output or "removed" in result.output


def test_check_on_a_topology_file_parses_and_validates_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib

    load = importlib.import_module("netprobe.topology._model.load")  # modules, not functions
    validate = importlib.import_module("netprobe.topology._model.validate")
    parsed: list[str | None] = []
    checked: list[str] = []
    real_loads, real_check = load.loads, validate._check_spec

    def counting_loads(text: str, *, source: str | None = None) -> object:
        parsed.append(source)
        return real_loads(text, source=source)

    def counting_check(spec: object) -> None:
        checked.append(getattr(spec, "name", "?"))
        real_check(spec)  # type: ignore[arg-type]

    monkeypatch.setattr(load, "loads", counting_loads)
    monkeypatch.setattr(validate, "_check_spec", counting_check)
    topology = str(EXAMPLES / "redblue.yaml")
    done = CliRunner().invoke(cli, ["check", "veth", "--topology", topology, "--no-bundle", "-q"])
    assert done.exit_code == 0, done.output
    assert parsed == [topology] and checked == ["redblue"]
