"""`topo exec` and `topo shell`: inside a host of a running lab, found by its name from
any directory; and the lab's spec kept with it, so it is drawn after its file moved.

Each test uses labs of its own, under unique names, always taken down.
"""

from __future__ import annotations

import fcntl
import os
import pty
import shutil
import subprocess
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.lab import CLI, RULES, lab, netprobe, read_until, unique_name, write_lab

from netprobe.cli import cli
from netprobe.topology._kernel import owner
from netprobe.topology._kernel.stored import spec_dir, stored_spec

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def name(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with lab(tmp_path_factory.mktemp("labexec")) as made:
        yield made


def on_terminal(argv: list[str], env: dict[str, str] | None = None) -> tuple[
    subprocess.Popen[bytes], int
]:
    """`argv` on a pty of its own (its controlling terminal); the pty's master end."""
    master, slave = pty.openpty()

    def controlling() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=env,
        preexec_fn=controlling, cwd="/",
    )
    os.close(slave)
    return proc, master


def test_exec_runs_inside_the_host_from_any_directory(name: str, tmp_path: Path) -> None:
    shown = netprobe("topo", "exec", name, "a", "--", "ip", "-br", "addr", "show", "eth0",
                     cwd=tmp_path)
    assert shown.returncode == 0 and "10.77.0.1/24" in shown.stdout, shown.stderr
    ping = netprobe("topo", "exec", name, "a", "ping", "-c1", "-W5", "10.77.0.2", cwd="/")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    where = netprobe("topo", "exec", name, "b", "--", "sh", "-c",
                     "echo $NETPROBE_LAB:$NETPROBE_HOST")
    assert where.stdout.strip() == f"{name}:b"


def test_exec_passes_exit_code_and_stdin(name: str) -> None:
    failed = netprobe("topo", "exec", name, "a", "--", "sh", "-c", "exit 7")
    assert failed.returncode == 7 and failed.stderr == ""
    echoed = netprobe("topo", "exec", name, "b", "--", "cat", input="hello from stdin\n")
    assert echoed.returncode == 0 and echoed.stdout == "hello from stdin\n"
    missing = netprobe("topo", "exec", name, "a", "--", "no-such-command-lx")
    assert missing.returncode == 127
    assert missing.stderr == "netprobe: error: no such command: no-such-command-lx\n"


def test_exec_has_a_terminal_when_there_is_one(name: str) -> None:
    proc, master = on_terminal([*CLI, "topo", "exec", name, "a", "--", "tty"])
    try:
        seen = read_until(master, b"\n")
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(master)
    assert seen.startswith(b"/dev/pts/"), seen
    without = netprobe("topo", "exec", name, "a", "--", "tty", stdin=subprocess.DEVNULL)
    assert without.returncode == 1 and "not a tty" in without.stdout


def test_shell_prompt_names_the_host_and_runs_there(name: str) -> None:
    proc, master = on_terminal([*CLI, "topo", "shell", name, "a"])
    try:
        prompt = f"({name}:a) ".encode()
        assert prompt in read_until(master, prompt), "no prompt naming the host"
        os.write(master, b"ip -br addr show eth0; exit 3\n")
        seen = read_until(master, b"\x00")  # to EOF
        assert proc.wait(timeout=30) == 3
    finally:
        os.close(master)
    assert b"10.77.0.1/24" in seen


def test_shell_without_bash_is_sh_with_the_prompt(name: str, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ip", "sh"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "TERM": "dumb"}
    proc, master = on_terminal([*CLI, "topo", "shell", name, "b"], env=env)
    try:
        prompt = f"({name}:b) # ".encode()
        assert prompt in read_until(master, prompt), "sh has no prompt naming the host"
        os.write(master, b"echo $NETPROBE_HOST; exit 4\n")
        seen = read_until(master, b"\x00")
        assert proc.wait(timeout=30) == 4
    finally:
        os.close(master)
    assert b"b\r\n" in seen


def test_bad_input_is_one_line_exit_2(name: str) -> None:
    runner = CliRunner()
    cases = {
        ("topo", "exec", "no-such-lab-lx", "a", "--", "true"): "no topology named",
        ("topo", "exec", name, "nohost", "--", "true"): "has no host 'nohost' (its hosts: a, b)",
        ("topo", "exec", name, "a", "--"): "say what to run",
        ("topo", "shell", name, "nohost"): "has no host 'nohost'",
        ("topo", "shell", "no-such-lab-lx", "a"): "no topology named",
    }
    for argv, said in cases.items():
        result = runner.invoke(cli, list(argv))
        assert result.exit_code == 2, (argv, result.output)
        assert said in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_the_spec_stays_with_the_lab_after_its_file_moved(tmp_path: Path) -> None:
    """The file and its relative ruleset move away: the lab is still drawn and its
    spec (ruleset included) read, from another directory; down removes the copy."""
    name = unique_name()
    given = tmp_path / "given"
    spec = write_lab(given, name)
    text = spec.read_text()
    runner = CliRunner()
    made = runner.invoke(cli, ["topo", "up", str(spec)])
    runid = owner.persistent_runid(name)
    try:
        assert made.exit_code == 0, made.output
        given.rename(tmp_path / "moved")
        drawn = netprobe("topo", "show", name, "--format", "mermaid", cwd="/")
        assert drawn.returncode == 0, drawn.stderr
        assert 'subgraph a__["a"]' in drawn.stdout and "10.77.0.2/24" in drawn.stdout
        kept = stored_spec(runid)
        assert kept is not None and [h.name for h in kept.hosts] == ["a", "b"]
        ruleset = kept.hosts[1].firewall[0].path
        assert ruleset.startswith(spec_dir(runid)) and Path(ruleset).read_text() == RULES
        assert (Path(spec_dir(runid)) / "given.yaml").read_text() == text
    finally:
        down = runner.invoke(cli, ["topo", "down", name])
    assert down.exit_code == 0, down.output
    assert not os.path.exists(owner.private_dir(runid))
    gone = netprobe("topo", "show", name, "--format", "mermaid")
    assert gone.returncode == 2 and "no topology named" in gone.stderr
