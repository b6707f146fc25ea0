"""Labs for the tests of `topo exec|shell|capture`: up under a unique name, always down."""

from __future__ import annotations

import os
import secrets
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner

from netprobe.cli import cli

# Two hosts on a veth; b loads a ruleset named relative to the file (it accepts all).
SPEC = """\
# a lab of two hosts
name: {name}
hosts:
  a:
    interfaces:
      eth0: {{veth: b:eth0, addresses: [10.77.0.1/24]}}
  b:
    interfaces:
      eth0: {{addresses: [10.77.0.2/24]}}
    firewall:
      nft: rules/accept.nft
"""
RULES = (
    "table inet lxaccept {\n"
    "  chain input { type filter hook input priority 0; policy accept; }\n}\n"
)
CLI = [sys.executable, "-c", "from netprobe.cli import main; main()"]


def unique_name() -> str:
    return f"lx{secrets.token_hex(3)}"


def write_lab(directory: Path, name: str) -> Path:
    """The lab's file and its ruleset in `directory`; the file's path."""
    (directory / "rules").mkdir(parents=True, exist_ok=True)
    (directory / "rules" / "accept.nft").write_text(RULES)
    path = directory / f"{name}.yaml"
    path.write_text(SPEC.format(name=name))
    return path


@contextmanager
def lab(directory: Path) -> Iterator[str]:
    """A lab `topo up` made from a file in `directory`; its name. Taken down at the end."""
    name = unique_name()
    spec = write_lab(directory, name)
    runner = CliRunner()
    made = runner.invoke(cli, ["topo", "up", str(spec)])
    try:
        assert made.exit_code == 0, made.output
        yield name
    finally:
        runner.invoke(cli, ["topo", "down", name])


def netprobe(*argv: str, **options: object) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, in a process of its own."""
    return subprocess.run([*CLI, *argv], capture_output=True, text=True, check=False,
                          timeout=60, **options)  # type: ignore[call-overload]


def read_until(fd: int, wanted: bytes, timeout: float = 20) -> bytes:
    """What `fd` gives until `wanted` is in it (or EOF, or the deadline)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # a pty whose other end closed
            break
        if not chunk:
            break
        seen += chunk
    return seen
