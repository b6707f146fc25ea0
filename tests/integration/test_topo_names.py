"""`topo down|show NAME` act on exactly the topology named NAME, from any directory.

Each test brings up labs of its own under random names and always takes them down.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.paths import EXAMPLES

from netprobe.topology._kernel import netns, owner

pytestmark = pytest.mark.root



def netprobe(*argv: str, cwd: Path | str | None = None) -> subprocess.CompletedProcess[str]:
    """The command line as a user runs it, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-c", "from netprobe.cli import main; main()", *argv],
        capture_output=True, text=True, check=False, cwd=cwd,
    )


def namespaces(name: str) -> list[str]:
    prefix = owner.ns_prefix(owner.persistent_runid(name))
    return [n for n in netns.list_names() if n.startswith(prefix)]


@contextmanager
def up(directory: Path, name: str, example: str = "router.yaml") -> Iterator[Path]:
    """`topo up` a copy of an example renamed `name`; `topo down` it whatever happens."""
    text = (EXAMPLES / example).read_text()
    spec = directory / f"{secrets.token_hex(4)}.yaml"
    spec.write_text(text.replace(f"name: {example.removesuffix('.yaml')}", f"name: {name}", 1))
    made = netprobe("topo", "up", spec.name, cwd=directory)  # a relative path, as users type
    assert made.returncode == 0, made.stderr
    try:
        yield spec
    finally:
        if any(r.name == name and r.persistent for r in owner.read_records()):
            netprobe("topo", "down", name)


def test_down_of_a_look_alike_name_removes_nothing(tmp_path: Path) -> None:
    name = f"nm{secrets.token_hex(3)}-a"
    look_alike = name.replace("-", ".")  # both would be run id nm…_a
    with up(tmp_path, name):
        before = namespaces(name)
        assert len(before) == 3
        wrong = netprobe("topo", "down", look_alike)
        assert wrong.returncode == 2
        assert f"no topology named {look_alike!r} is up; did you mean {name!r}?" in wrong.stderr
        assert namespaces(name) == before
        again = netprobe("topo", "show", look_alike)
        assert again.returncode == 2 and f"did you mean {name!r}?" in again.stderr
        by_runid = netprobe("topo", "show", owner.persistent_runid(name))
        assert by_runid.returncode == 2, by_runid.stdout  # a run id is not its name
        down = netprobe("topo", "down", name)
        assert down.returncode == 0, down.stderr
    assert namespaces(name) == []


def test_names_that_share_a_run_id_never_both_come_up(tmp_path: Path) -> None:
    name = f"nm{secrets.token_hex(3)}-b"
    look_alike = name.replace("-", ".")
    with up(tmp_path, name):
        spec = tmp_path / "look-alike.yaml"
        spec.write_text((EXAMPLES / "redblue.yaml").read_text().replace(
            "name: redblue", f"name: {look_alike}"))
        refused = netprobe("topo", "up", str(spec))
        assert refused.returncode == 2
        assert f"which {name!r} already holds" in refused.stderr
        assert "Traceback" not in refused.stderr
        (record,) = [r for r in owner.read_records() if r.runid == owner.persistent_runid(name)]
        assert record.name == name and set(record.namespaces) == {"left", "router", "right"}


def test_show_prints_the_topology_named_and_a_typo_is_an_error(tmp_path: Path) -> None:
    suffix = secrets.token_hex(3)
    redblue, router = f"rb{suffix}", f"router{suffix}"
    with up(tmp_path, redblue, "redblue.yaml"), up(tmp_path, router):
        shown = netprobe("topo", "show", router)
        assert shown.returncode == 0, shown.stderr
        assert f"np-{router}-left" in shown.stdout and f"np-{redblue}-" not in shown.stdout
        typo = router.replace("router", "routr")
        wrong = netprobe("topo", "show", typo)
        assert wrong.returncode == 2 and wrong.stdout == ""
        assert f"no topology named {typo!r} is up; did you mean {router!r}" in wrong.stderr
        down = netprobe("topo", "down", typo)
        assert down.returncode == 2 and len(namespaces(router)) == 3


NO_DOT = pytest.mark.skipif(shutil.which("dot") is None, reason="svg needs Graphviz's dot")


@pytest.mark.parametrize("fmt", ["dot", "mermaid", pytest.param("svg", marks=NO_DOT)])
def test_show_draws_a_topology_from_any_directory(tmp_path: Path, fmt: str) -> None:
    name = f"pic{secrets.token_hex(3)}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with up(tmp_path, name) as spec:
        (record,) = [r for r in owner.read_records() if r.name == name]
        assert record.spec_path == str(spec)  # absolute, though `topo up` was given spec.name
        drawn = netprobe("topo", "show", name, "--format", fmt, cwd=elsewhere)
        assert drawn.returncode == 0, drawn.stderr
        assert "router" in drawn.stdout
        spec.unlink()  # the spec is kept with the lab: drawn all the same
        kept = netprobe("topo", "show", name, "--format", fmt, cwd=elsewhere)
        assert kept.returncode == 0 and kept.stdout == drawn.stdout, kept.stderr
