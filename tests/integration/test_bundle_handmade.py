"""Bundles of networks netprobe did not build: the site of tests/support/site.py, made by
hand with plain `ip`/`nft`/`sysctl` and adopted, with a fault seeded by hand. The bundle
records the live state, so its repro.sh (without netprobe) and `netprobe replay` rebuild
what was really there and meet the same failure; mended in the script, it passes."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from support.paths import ROOT
from support.site import Site, build_site

from netprobe.bundle import ProbeReplay, Replay, bundle_summary, replay, run_check
from netprobe.check import Status
from netprobe.cli import cli
from netprobe.diagnose import probe
from netprobe.topology import Host, Spec, leftovers, load
from netprobe.topology._kernel.owner import SESSION_ENV

pytestmark = pytest.mark.root

SCHEMA = json.loads((ROOT / "docs" / "netprobe-json.schema.json").read_text())

DROP_FORWARD = """
table inet site_filter {
    chain forward { type filter hook forward priority 0; policy drop; }
}
"""
DROP_SSH = """
table inet site_filter {
    chain forward { type filter hook forward priority 0; tcp dport 22 drop; }
}
"""


def _ours() -> set[str]:
    """What netprobe objects this session's runs have on the machine now."""
    return set(leftovers(session=os.environ.get(SESSION_ENV)))


@pytest.fixture
def site() -> Iterator[Site]:
    before = _ours()
    made = build_site("npbund")
    try:
        yield made
    finally:
        made.remove()
    assert _ours() <= before, "netprobe left something behind"


def _repro(script: Path | str, cwd: Path) -> tuple[int, str]:
    """Run a repro.sh; its exit code and output. Afterwards none of its namespaces is left."""
    proc = subprocess.Popen(["sh", str(script)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=300)
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"repro{proc.pid}-" not in names, names
    return proc.returncode, out


def _adopted(site: Site) -> Spec:
    return Spec("site", tuple(Host(h, adopt=ns) for h, ns in site.ns.items()))


def test_a_failing_check_on_adopted_namespaces_is_rebuilt_and_reproduced(
    site: Site, tmp_path: Path
) -> None:
    site.nft("r1", DROP_FORWARD)
    result = run_check("routing", _adopted(site), left="a:e0", right="r2:e0", router="r1",
                       bundle_dir=tmp_path)  # fmt: skip
    assert result.status is Status.FAIL and result.bundle, result.summary
    bundle = Path(result.bundle)
    rebuilt = load(bundle / "topology.yaml")
    assert all(h.owned for h in rebuilt.hosts)  # nothing adopted: made afresh elsewhere
    r1, sw = rebuilt.host("r1"), rebuilt.host("sw")
    assert [str(a) for i in r1.interfaces for a in i.addresses] == ["10.70.1.1/24", "10.70.2.1/24"]
    assert ("net.ipv4.ip_forward", "1") in r1.sysctls
    assert [r.to for r in r1.routes] == ["10.70.3.0/24"]  # not the kernel's own
    assert "policy drop" in Path(r1.firewall[0].path).read_text()
    assert {i.name: i.master for i in sw.interfaces} == {"p1": "br0", "p2": "br0", "br0": None}
    assert (bundle / "topology-discovered.yaml").is_file()
    assert "adopt: " in (bundle / "topology-given.yaml").read_text()
    assert "subgraph r1" in (bundle / "topology.mmd").read_text().replace("__", " ")
    state = json.loads((bundle / "state" / "r1.json").read_text())
    assert "policy drop" in state["nft_ruleset_text"] and state["routes"]
    assert "## Rebuilt from the live state" in (bundle / "README.md").read_text()
    document = json.loads((bundle / "result.json").read_text())
    jsonschema.validate(document, SCHEMA)
    assert document["rebuild"]["hosts"] == ["a", "b", "r1", "r2", "sw"]

    code, out = _repro(bundle / "repro.sh", tmp_path)
    assert code == 1, out
    assert "2 step(s) failed; 0 differ from what netprobe recorded" in out
    mended = tmp_path / "mended.sh"
    mended.write_text((bundle / "repro.sh").read_text().replace("policy drop", "policy accept"))
    code, out = _repro(mended, tmp_path)
    assert code == 0 and "0 step(s) failed" in out, out

    again = replay(bundle)
    assert isinstance(again, Replay) and again.matches, again.text()


def test_a_failing_probe_leaves_a_bundle_that_reproduces(site: Site, tmp_path: Path) -> None:
    site.nft("r1", DROP_SSH)
    out = tmp_path / "out"
    run = CliRunner().invoke(cli, ["probe", site.ns["a"], "10.70.3.2", "tcp/22", "--bundle",
                                   str(out)])  # fmt: skip
    assert run.exit_code == 1, run.output
    said = re.search(r"^bundle: (.+)$", run.output, re.M)
    assert said is not None, run.output
    bundle = Path(said.group(1))
    assert bundle.parent == out.resolve() and bundle.name.startswith("probe-")
    assert {p.name for p in bundle.iterdir()} >= {
        "README.md", "diagnosis.json", "topology.yaml", "topology-discovered.yaml",
        "topology.mmd", "state", "environment.json", "repro.sh", "rulesets",
    }  # fmt: skip
    assert (bundle / "repro.sh").stat().st_mode & 0o111
    document = json.loads((bundle / "diagnosis.json").read_text())
    jsonschema.validate(document, SCHEMA)
    assert document["kind"] == "probe" and document["diagnosis"]["probe"]["ending"] == "DROPPED"
    assert document["listener"] == {"host": site.ns["b"], "proto": "tcp", "port": 22}
    assert str(tmp_path) not in (bundle / "diagnosis.json").read_text()
    readme = (bundle / "README.md").read_text()
    assert f"netprobe probe {site.ns['a']} 10.70.3.2 tcp/22" in readme
    assert "DROPPED" in bundle_summary(bundle)

    code, text = _repro(bundle / "repro.sh", tmp_path)
    assert code == 1, text
    assert "seen now: timed out" in text and "the same ending as recorded" in text
    mended = tmp_path / "mended.sh"
    mended.write_text((bundle / "repro.sh").read_text().replace("tcp dport 22 drop", ""))
    code, text = _repro(mended, tmp_path)
    assert code == 0 and "answered: connected to 10.70.3.2.22" in text, text  # the stand-in

    run = CliRunner().invoke(cli, ["replay", str(bundle)])
    assert run.exit_code == 0, run.output
    assert "recorded dropped at" in run.output and ": the same ending" in run.output


def test_a_too_big_ping_is_reproduced_with_ping(site: Site, tmp_path: Path) -> None:
    site.ip("r2", "link", "set", "e1", "mtu", "1400")
    found = probe(site.ns["a"], "10.70.3.2", "icmp", size=1450, bundle_dir=tmp_path)
    assert not found.ok and found.bundle, found.render()
    assert f"bundle: {found.bundle}" in found.render()
    code, text = _repro(Path(found.bundle) / "repro.sh", tmp_path)
    assert code == 1, text
    assert "ping -n -c 1" in (Path(found.bundle) / "repro.sh").read_text()
    again = replay(found.bundle)
    assert isinstance(again, ProbeReplay) and again.matches, again.text()


def test_a_probe_that_gets_through_leaves_no_bundle(site: Site, tmp_path: Path) -> None:
    found = probe(site.ns["a"], "10.70.3.2", "tcp/22", bundle_dir=tmp_path)
    assert found.ok and found.bundle is None and not list(tmp_path.iterdir())
