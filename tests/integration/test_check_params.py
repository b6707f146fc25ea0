"""A check's parameters are parsed before anything runs or is built; a check that stops
early says which of its planned steps it did not run."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netprobe import SpecError
from netprobe.check import Status, reference_path, run_check
from netprobe.topology import load
from netprobe.topology._model.dump import dump

pytestmark = pytest.mark.root


def netprobe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netprobe.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nat", "--forward", "garbage"),
         "check nat: parameter forward takes [tcp/|udp/]PORT->HOST:IFNAME:PORT, ports 1 to "
         "65535, or '' for none, not 'garbage'"),
        (("exposure", "--listen", "tcp/99999"),
         "check exposure: parameter listen takes services like tcp/22,udp/53, ports 1 to "
         "65535, not 'tcp/99999'"),
        (("nat", "-p", "public_ip=203.0.113"),
         "check nat: parameter public_ip takes an IPv4 address, not '203.0.113'"),
    ],
)
def test_a_bad_parameter_is_one_line_exit_2_before_anything_is_built(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    start = time.monotonic()
    done = netprobe("check", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == f"netprobe: error: {message}"
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "netprobe-reports").exists()  # no bundle: no step was taken
    assert time.monotonic() - start < 10  # no topology, no 10 s wait for listeners


def test_a_malformed_forward_raises_before_the_topology_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def build(*args: object, **kwargs: object) -> None:
        raise AssertionError("a topology was built")

    monkeypatch.setattr("netprobe.check._base.build", build)
    with pytest.raises(SpecError, match="parameter forward takes"):
        run_check("nat", forward="8080:c1")


def test_a_failing_nat_lists_the_steps_it_did_not_run(tmp_path: Path) -> None:
    spec = load(reference_path("nat-gateway.yaml"))
    hosts = tuple(
        dataclasses.replace(h, sysctls=(("net.ipv4.ip_forward", "0"),)) if h.name == "pve" else h
        for h in spec.hosts
    )
    path = tmp_path / "no-forwarding.yaml"
    path.write_text(dump(dataclasses.replace(spec, hosts=hosts)))
    result = run_check("nat", path)
    assert result.status is Status.FAIL
    assert len(result.steps) == 3  # each new flow out, and the published port
    assert result.not_run == [
        "vm1:eth0: reply back", "vm1:eth0: established flow",
        "pve:tap100i0@vm: reply back", "pve:tap100i0@vm: established flow",
    ]
    assert result.summary.endswith("; 4 not run")
    assert "4 not run: vm1:eth0: reply back, vm1:eth0: established flow" in result.evidence()
    assert result.to_dict()["not_run"] == result.not_run
