"""The public API: private modules (a leading underscore) behind public packages whose
`__all__` is the API, `netprobe` re-exporting the essentials, and light imports."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
from support.paths import ROOT

import netprobe


def all_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(netprobe.__path__, "netprobe."))


def is_private(name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in name.split("."))


def public_modules() -> list[str]:
    return [m for m in all_modules() if not is_private(m) and not m.endswith(".__main__")]


LOADED = """
    import sys

    def loaded(*roots):
        return sorted(r for r in roots
                      if any(m == r or m.startswith(r + ".") for m in sys.modules))
"""


def run_python(script: str) -> dict[str, object]:
    """Run `script` in a fresh interpreter from the repository root; it prints JSON.

    The script can call `loaded(*roots)`: which of those top-level packages are imported.
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LOADED) + textwrap.dedent(script)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- netprobe.__all__ ---------------------------------------------------------------------


def test_all_and_dir_agree() -> None:
    assert sorted(netprobe.__all__) == dir(netprobe)
    assert len(set(netprobe.__all__)) == len(netprobe.__all__)


@pytest.mark.parametrize("name", netprobe.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(netprobe, name) is not None


def test_lazy_names_come_from_the_topology_package() -> None:
    from netprobe import topology, traffic

    for name in netprobe.__all__:
        if name == "clean":  # the topology layer's, and the trace instances above it
            assert netprobe.clean is traffic.clean
        elif hasattr(topology, name) and name in topology.__all__:
            assert getattr(netprobe, name) is getattr(topology, name)


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nonexistent'"):
        netprobe.Nonexistent  # noqa: B018


def test_errors_form_the_documented_tree() -> None:
    for name in ("SetupError", "SpecError", "TopologyError", "TrafficError", "CheckFailed"):
        assert issubclass(getattr(netprobe, name), netprobe.NetprobeError)
    assert issubclass(netprobe.CheckFailed, AssertionError)


# -- every module's __all__ ---------------------------------------------------------------


def test_the_walk_finds_the_modules() -> None:
    modules = all_modules()
    for expected in ("netprobe.cli", "netprobe.errors", "netprobe.topology._model.load",
                     "netprobe.topology._kernel.owner", "netprobe.topology._model.spec"):
        assert expected in modules


@pytest.mark.parametrize("name", public_modules())
def test_public_module_declares_all_and_every_name_exists(name: str) -> None:
    module: ModuleType = importlib.import_module(name)
    declared = getattr(module, "__all__", None)
    assert isinstance(declared, (list, tuple)), f"{name} has no __all__"
    assert len(set(declared)) == len(declared), f"{name}.__all__ repeats a name"
    missing = [n for n in declared if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"


@pytest.mark.parametrize("name", [m for m in all_modules() if is_private(m)])
def test_private_modules_declare_no_api(name: str) -> None:
    """What is public is said once, in a public package's __all__."""
    assert not hasattr(importlib.import_module(name), "__all__"), f"{name} declares __all__"


def test_the_version_has_one_source() -> None:
    from importlib.metadata import version

    from netprobe._version import __version__

    assert netprobe.__version__ is __version__ == version("netprobe")
    assert not re.search(r'^version *= *"', (ROOT / "pyproject.toml").read_text(), re.M)


# -- light imports ------------------------------------------------------------------------


def test_import_netprobe_imports_neither_pyroute2_nor_scapy() -> None:
    result = run_python("""
        import json, sys
        import netprobe
        print(json.dumps({"file": netprobe.__file__, "heavy": loaded("pyroute2", "scapy")}))
    """)
    assert Path(str(result["file"])).is_relative_to(ROOT)
    assert result["heavy"] == []


def test_using_the_spec_api_does_not_import_scapy() -> None:
    result = run_python("""
        import json, sys
        import netprobe
        netprobe.load("examples/redblue.yaml")
        print(json.dumps({"heavy": loaded("scapy")}))
    """)
    assert result["heavy"] == []


@pytest.mark.parametrize("argv", [["--help"], ["topo", "--help"], ["doctor", "--help"]])
def test_cli_help_imports_no_scapy(argv: list[str]) -> None:
    result = run_python(f"""
        import json, runpy, sys
        sys.argv = ["netprobe", *{argv!r}]
        try:
            runpy.run_module("netprobe.cli", run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            code = exc.code
        else:
            code = None
        print(json.dumps({{"code": code, "heavy": loaded("scapy")}}))
    """)
    assert result["code"] in (0, None)
    assert result["heavy"] == []


def test_cli_group_help_imports_no_scapy() -> None:
    result = run_python("""
        import contextlib, io, json, sys
        from netprobe.cli import cli
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                cli.main(["--help"], prog_name="netprobe")
            except SystemExit:
                pass
        print(json.dumps({"help": out.getvalue(), "heavy": loaded("scapy")}))
    """)
    assert "Usage: netprobe" in str(result["help"])
    assert result["heavy"] == []


def test_pytest_plugin_import_imports_no_scapy() -> None:
    result = run_python("""
        import json, sys
        import netprobe.pytest_plugin
        print(json.dumps({"heavy": loaded("scapy")}))
    """)
    assert result["heavy"] == []


def test_the_import_check_sees_an_imported_package() -> None:
    """The checks above are not vacuous: `loaded` does see a package once it is imported."""
    result = run_python("""
        import json
        import netprobe.topology._kernel.netlink
        print(json.dumps({"heavy": loaded("pyroute2", "scapy")}))
    """)
    assert result["heavy"] == ["pyroute2"]
