"""Bug-report bundles: a sabotaged check's bundle replays to the same FAIL, with netprobe
and with its repro.sh alone, and carries nothing of the machine it was made on."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from support.paths import EXAMPLES, ROOT

from netprobe.bundle import bundle_summary, replay, run_check
from netprobe.check import Status
from netprobe.topology import Spec, load
from netprobe.topology._kernel import netns
from netprobe.traffic._pcap import read_pcap

pytestmark = pytest.mark.root

SCHEMA = json.loads((ROOT / "docs" / "netprobe-json.schema.json").read_text())
FILES = {
    "README.md",
    "result.json",
    "topology.yaml",
    "topology.mmd",
    "topology.dot",
    "injected.pcapng",
    "environment.json",
    "repro.sh",
}


def forwarding_off() -> Spec:
    """The NAT gateway with ip_forward off on the gateway, in the spec itself."""
    spec = load(EXAMPLES / "nat-gateway.yaml")
    hosts = tuple(
        dataclasses.replace(h, sysctls=(("net.ipv4.ip_forward", "0"),)) if h.name == "pve" else h
        for h in spec.hosts
    )
    return dataclasses.replace(spec, hosts=hosts)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    result = run_check("nat", forwarding_off(), bundle_dir=out, archive=True)
    assert result.status is Status.FAIL
    assert result.bundle is not None and f"bug-report bundle: {result.bundle}" in str(result)
    return Path(result.bundle)


def test_a_bundle_has_every_part(bundle: Path) -> None:
    assert {p.name for p in bundle.iterdir()} >= FILES
    assert {p.name for p in (bundle / "state").iterdir()} == {
        "vm1.json",
        "pve.json",
        "internet.json",
    }
    pve = json.loads((bundle / "state" / "pve.json").read_text())
    assert pve["sysctls"]["net.ipv4.ip_forward"] == "0"
    assert {
        "links",
        "addresses",
        "routes",
        "neighbours",
        "fdb",
        "nft_ruleset",
        "iptables_save",
        "conntrack",
    } <= set(pve)
    assert any(link["ifname"] == "vmbr1" for link in pve["links"])
    env = json.loads((bundle / "environment.json").read_text())
    assert env["kernel"]["release"] == os.uname().release
    assert any(c["name"] == "veth" and c["present"] for c in env["capabilities"])
    assert (bundle / "repro.sh").stat().st_mode & 0o111
    with tarfile.open(f"{bundle}.tar.gz") as tar:
        assert f"{bundle.name}/repro.sh" in tar.getnames()


def test_result_json_is_versioned_and_follows_its_schema(bundle: Path) -> None:
    document = json.loads((bundle / "result.json").read_text())
    jsonschema.validate(document, SCHEMA)
    assert (document["format"], document["version"]) == ("netprobe-bundle", 1)
    step = document["result"]["steps"][0]
    assert step["status"] == "FAIL" and step["expectation"]["verdict"] == "FAIL"
    assert step["expectation"]["pcaps"] == {"internet:eth0": "pcaps/step-01/internet-eth0.pcapng"}
    assert (bundle / step["expectation"]["pcaps"]["internet:eth0"]).is_file()


def without_ruleset_paths(spec: Spec) -> Spec:
    return dataclasses.replace(
        spec,
        hosts=tuple(
            dataclasses.replace(
                h, firewall=tuple(dataclasses.replace(f, path="") for f in h.firewall)
            )
            for h in spec.hosts
        ),
    )


def test_topology_yaml_is_the_exact_spec_used(bundle: Path) -> None:
    loaded = load(bundle / "topology.yaml")
    assert without_ruleset_paths(loaded) == without_ruleset_paths(forwarding_off())
    assert loaded.hosts[1].firewall[0].path == str(bundle / "rulesets" / "pve-1.nft")
    text = (bundle / "topology.yaml").read_text()
    assert "nft: rulesets/pve-1.nft" in text
    assert (bundle / "rulesets" / "pve-1.nft").read_text() == (
        EXAMPLES / "nat-gateway.nft"
    ).read_text()


def test_injected_frames_are_all_in_the_pcap(bundle: Path) -> None:
    document = json.loads((bundle / "result.json").read_text())
    sent = [
        bytes.fromhex(f["frame"])
        for s in document["result"]["steps"]
        if s["expectation"]
        for f in s["expectation"]["injected"]
    ]
    assert [data for _, data in read_pcap(bundle / "injected.pcapng")] == sent


def test_nothing_of_the_machine_it_was_made_on(bundle: Path) -> None:
    machine = [str(ROOT), str(bundle.parent), os.path.expanduser("~"), os.getcwd()]
    for path in bundle.rglob("*"):
        if path.is_file() and path.suffix not in (".pcapng", ".svg"):
            text = path.read_text()
            for prefix in machine:
                assert prefix + "/" not in text, f"{path.name} names {prefix}"


def test_the_archive_reads_back_like_the_directory(bundle: Path) -> None:
    assert bundle_summary(f"{bundle}.tar.gz") == bundle_summary(bundle)


def test_report_prints_the_summary(bundle: Path) -> None:
    text = bundle_summary(bundle)
    assert text.startswith("nat: FAIL")
    assert "diagnosis: ip_forward is 0 on pve" in text
    assert "probe 1 never reached internet:eth0" in text


def test_replay_gives_the_same_fail_step_by_step(bundle: Path) -> None:
    again = replay(bundle)
    assert again.matches, again.text()
    assert again.result.status is Status.FAIL
    assert again.result.diagnosis is not None and "ip_forward is 0 on pve" in again.result.diagnosis
    assert [s.now for s in again.steps] == [s.recorded for s in again.steps]
    assert "reproduced" in again.text()


def _repro(
    argv: list[str], timeout: float, **kwargs: Any
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run a repro.sh; its namespaces are named repro<its pid>-<host> (P="repro$$"), so
    what it left is judged by that prefix, not by every repro* namespace on the machine."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          **kwargs) as proc:  # fmt: skip
        out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), f"repro{proc.pid}-"


def test_repro_sh_alone_shows_the_same_failure(bundle: Path, tmp_path: Path) -> None:
    """Copied anywhere, without netprobe on the path: iproute2, nft, python3 with scapy."""
    script = tmp_path / "repro.sh"
    shutil.copy(bundle / "repro.sh", script)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path)}
    done, prefix = _repro(["sh", str(script)], cwd=tmp_path, env=env, timeout=120)
    assert not [n for n in netns.list_names() if n.startswith(prefix)]  # gone
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "step 1: vm1:eth0 → 203.0.113.1" in out
    assert "internet:eth0: nothing" in out
    assert "→ FAIL (netprobe recorded FAIL)" in out
    assert "0 differ from what netprobe recorded" in out


def _shim(directory: Path, body: str) -> Path:
    directory.mkdir(exist_ok=True)
    shim = directory / "python3"
    shim.write_text(f"#!/bin/sh\n{body}\n")
    shim.chmod(0o755)
    return directory


def test_repro_sh_skips_a_python3_without_scapy(bundle: Path, tmp_path: Path) -> None:
    """The first python3 on PATH is a real one without scapy (a pyenv Python, say): the
    script finds one that has it instead of dying in the replay with exit 1."""
    shims = _shim(tmp_path / "bin", 'exec /usr/bin/python3 -S "$@"')  # -S: no dist-packages
    env = {"PATH": f"{shims}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        ["sh", str(bundle / "repro.sh")], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "0 differ from what netprobe recorded" in done.stdout


def test_repro_sh_without_any_scapy_says_so_and_exits_2(bundle: Path, tmp_path: Path) -> None:
    """No candidate imports scapy (in a private mount namespace, Debian's python3 is
    hidden behind a shim): one line, exit 2, no namespace made."""
    shims = _shim(tmp_path / "bin", "exit 1")
    mounts = f"mount --bind {shims}/python3 /usr/bin/python3 && "
    done, prefix = _repro(  # unshare and sh -c exec: the script keeps the first pid
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         f"{mounts}PATH={shims}:/usr/sbin:/usr/bin:/sbin:/bin exec sh {bundle}/repro.sh"],
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "no python3 that can import scapy" in line and "PYTHON=" in line
    assert done.stdout == ""
    assert not [n for n in netns.list_names() if n.startswith(prefix)]


def test_repro_sh_passes_where_the_fault_is_mended(bundle: Path, tmp_path: Path) -> None:
    """The script tests the data path, not its own recording: with forwarding back on the
    same frames come out, rewritten by the gateway's masquerade and DNAT."""
    script = tmp_path / "repro.sh"
    script.write_text(
        (bundle / "repro.sh").read_text().replace("net.ipv4.ip_forward=0", "net.ipv4.ip_forward=1")
    )
    done = subprocess.run(
        ["sh", str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "IP / UDP 203.0.113.10:40000 > 203.0.113.1" in done.stdout  # masqueraded
    assert "0 step(s) failed; 3 differ" in done.stdout


def test_a_passing_check_writes_no_bundle(tmp_path: Path) -> None:
    result = run_check("veth", bundle_dir=tmp_path)
    assert result.passed and result.bundle is None
    assert list(tmp_path.iterdir()) == []


def test_files_named_by_parameters_travel_in_the_bundle(tmp_path: Path) -> None:
    rules = tmp_path / "secret-dir" / "open.nft"
    rules.parent.mkdir()
    rules.write_text(
        (EXAMPLES / "filter-secure-host.nft")
        .read_text()
        .replace(  # a shadowed accept: derived mode (no policy) FAILs on it
            "        ip saddr 10.0.0.0/8 tcp dport 22 accept",
            "        tcp dport 22 drop\n        ip saddr 10.0.0.0/8 tcp dport 22 accept",
        )
    )
    result = run_check("filter", ruleset=rules, bundle_dir=tmp_path / "out")  # a Path
    assert result.status is Status.FAIL and result.bundle
    bundle = Path(result.bundle)
    document = json.loads((bundle / "result.json").read_text())
    assert document["params"] == {"ruleset": "inputs/1-open.nft"}
    assert (bundle / "inputs" / "1-open.nft").read_text() == rules.read_text()
    assert "secret-dir" not in (bundle / "result.json").read_text()
    again = replay(bundle)
    assert again.matches, again.text()


def test_a_topology_changed_by_hand_is_bundled_as_found(tmp_path: Path) -> None:
    """A test's live sabotage is not in the spec the topology was built from: the bundle
    rebuilds what the check found (the sysctl, the ruleset), and says what changed."""
    import netprobe

    with netprobe.build(netprobe.load(EXAMPLES / "nat-gateway.yaml")) as topo:
        topo.run("pve", ["sysctl", "-qw", "net.ipv4.ip_forward=0"], check=True)
        topo.run("pve", ["nft", "flush", "table", "ip", "nat"], check=True)
        result = run_check("nat", topo, bundle_dir=tmp_path)
    assert result.status is Status.FAIL and result.bundle
    bundle = Path(result.bundle)
    found = load(bundle / "topology.yaml")
    assert ("net.ipv4.ip_forward", "0") in found.host("pve").sysctls
    (firewall,) = found.host("pve").firewall
    assert "masquerade" not in Path(firewall.path).read_text()  # the flushed nat table
    assert (bundle / "topology-given.yaml").is_file()
    readme = (bundle / "README.md").read_text()
    assert "pve net.ipv4.ip_forward: 1 in the spec, 0 found" in readme
    again = replay(bundle)
    assert again.matches, again.text()
    done = subprocess.run(
        ["sh", str(bundle / "repro.sh")], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1 and "0 differ from what netprobe recorded" in done.stdout
