"""The README's examples stay true: its topology file loads, its Python spec validates,
its filter policy reads."""

from __future__ import annotations

import re
from pathlib import Path

from support.paths import ROOT

import netprobe

README = (ROOT / "README.md").read_text()


def test_readme_topology_file_loads(tmp_path: Path) -> None:
    (yaml_text,) = [b for b in re.findall(r"```yaml\n(.*?)```", README, re.S) if "hosts:" in b]
    for ruleset in ("rules.nft", "rules.v4"):
        (tmp_path / ruleset).write_text("")
    path = tmp_path / "example.yaml"
    path.write_text(yaml_text)
    spec = netprobe.load(path)
    assert [h.name for h in spec.hosts] == ["vm", "hv", "wan", "docker", "machine"]
    assert spec.host("docker").adopt == "some-netns" and spec.host("machine").root


def test_readme_python_spec_validates() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    (code,) = [b for b in blocks if 'Spec("pair"' in b]
    scope: dict[str, object] = {}
    exec(code, scope)
    spec = scope["spec"]
    assert isinstance(spec, netprobe.Spec)
    assert netprobe.validate(spec) is spec


def test_readme_filter_policy_reads(tmp_path: Path) -> None:
    from netprobe.library.filter.policy import load_policy

    (text,) = [b for b in re.findall(r"```yaml\n(.*?)```", README, re.S) if "expect:" in b]
    (tmp_path / "policy.yml").write_text(text)
    lines = load_policy(tmp_path / "policy.yml")
    assert [str(line) for line in lines][-1] == "INPUT any in eth1: drop"
