"""`netprobe drift` on a box made by hand in a namespace: Proxmox's bridged configuration
(tests/data/interfaces/bridged, names as they are) matched by `ip` commands exits 0; then
drift is added the way a user adds it (ip addr add, an extra bridge port (a VXLAN), a runtime route,
ip_forward=1 not persisted) and each is listed with its file:line, exit 1; the namespace's
state is the same before and after every reading."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from support.handmade_net import HandMade
from support.paths import ROOT

from netprobe.diagnose import read_drift

pytestmark = pytest.mark.root

CONFIG = (ROOT / "tests/data/interfaces/bridged").read_text()
SCHEMA = json.loads((ROOT / "docs" / "netprobe-json.schema.json").read_text())
_TIMERS = re.compile(r"\b\w+_timer\s+\S+")  # a bridge's timers run on by themselves


@pytest.fixture
def box() -> Iterator[HandMade]:
    """The bridged box made by hand: vmbr0 (192.168.10.2/24, eno1 its port, default via
    192.168.10.1) in `box`, eno1's peer in `lan` holding the gateway's address."""
    with HandMade() as net:
        net.ns("box")
        net.ns("lan")
        net.veth("box", "eno1", "lan", "lan0")
        net.bridge("box", "vmbr0", "eno1")
        net.ip("box", "link", "set", "vmbr0", "type", "bridge", "forward_delay", "0")
        net.addr("box", "vmbr0", "192.168.10.2/24")
        net.addr("lan", "lan0", "192.168.10.1/24")
        net.route("box", "default", "via", "192.168.10.1")
        yield net


def _netprobe(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netprobe.cli", *argv], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def _snapshot(net: HandMade) -> list[str]:
    """Everything drift could touch, as `ip` and /proc/sys show it."""
    shown = [_TIMERS.sub("", net.ip("box", "-d", "link", "show")), net.ip("box", "addr", "show"),
             net.ip("box", "route", "show", "table", "all"),
             net.ip("box", "-6", "route", "show", "table", "all"),
             net.exec("box", "sh", "-c", "grep -r . /proc/sys/net/ipv4/conf/*/forwarding "
                      "/proc/sys/net/ipv6/conf/*/forwarding /proc/sys/net/ipv4/ip_forward")]
    return shown  # fmt: skip


def test_a_box_that_matches_its_configuration_has_no_drift(box: HandMade) -> None:
    path = box.file("interfaces", CONFIG)
    before = _snapshot(box)
    done = _netprobe("drift", "--netns", box.hosts["box"], path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no drift" in done.stdout
    assert _snapshot(box) == before


def test_each_runtime_change_is_listed_with_its_line_and_exit_1(box: HandMade) -> None:
    path = box.file("interfaces", CONFIG)
    box.addr("box", "vmbr0", "10.99.0.5/24")  # ip addr add
    box.ip("box", "link", "add", "vxlan100", "type", "vxlan", "id", "100", "dstport", "4789",
           "local", "192.168.10.2")
    box.ip("box", "link", "set", "vxlan100", "master", "vmbr0", "up")  # not in bridge-ports
    box.route("box", "10.50.0.0/16", "via", "192.168.10.1")
    box.sysctl("box", "net.ipv4.ip_forward", "1")
    before = _snapshot(box)
    done = _netprobe("drift", "--netns", box.hosts["box"], path)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    expected = [
        f"{path}:11: address 10.99.0.5/24 on vmbr0: in no configuration",
        f"{path}:11: vxlan100: a port of vmbr0 now; bridge-ports does not name it",
        "route 10.50.0.0/16 via 192.168.10.1 dev vmbr0: set at runtime, in no configuration",
        "sysctl net.ipv4.ip_forward = 1 now; nothing persists it: the kernel default 0",
    ]
    for want in expected:
        assert sum(line.strip().startswith(want) for line in lines) == 1, (want, done.stdout)
    assert len(lines) == 1 + len(expected), done.stdout  # nothing else: no per-port forwarding
    assert _snapshot(box) == before


def test_json_and_pid_read_the_same_namespace(box: HandMade, tmp_path: Path) -> None:
    path = box.file("interfaces", CONFIG)
    box.ip("box", "link", "set", "eno1", "down")  # a port the bridge's auto brings up
    sleeper = box.process("box", ["sleep", "60"])  # in there before its pid is given
    try:
        out = tmp_path / "drift.json"
        done = _netprobe("drift", "--pid", str(sleeper.pid), path, "--json", str(out))
        assert done.returncode == 1, done.stdout + done.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
    document = json.loads(out.read_text())
    jsonschema.validate(document, SCHEMA)
    assert (document["format"], document["version"], document["drift"]) == (
        "netprobe-drift", 1, True)
    assert [(i["kind"], i["subject"], i["where"]) for i in document["items"]] == [
        ("link", "eno1", f"{path}:8")]
    assert "down now; the configuration brings it up at boot" in document["items"][0]["message"]


def test_configured_but_absent_and_made_at_runtime(box: HandMade) -> None:
    path = box.file("interfaces", CONFIG + "\nauto vmbr1\niface vmbr1 inet static\n"
                    "        address 10.10.10.1/24\n        bridge-ports none\n")
    box.ip("box", "tuntap", "add", "dev", "tap100i0", "mode", "tap")  # a VM's NIC
    box.ip("box", "link", "set", "tap100i0", "master", "vmbr0")
    report = read_drift([path], netns=box.hosts["box"])
    assert [(d.kind, d.subject, d.where) for d in report.items] == [
        ("link", "vmbr1", f"{path}:{CONFIG.count(chr(10)) + 3}")]
    assert [d.subject for d in report.runtime] == ["tap100i0"]
    assert "tap100i0 (tap, a port of vmbr0): in no configuration, made at runtime" in (
        report.render())


def test_a_bad_file_is_one_line_naming_file_and_line_exit_2(box: HandMade) -> None:
    path = box.file("interfaces", "auto vmbr0\niface vmbr0 inet static\n  address 10.1.2\n")
    before = _snapshot(box)
    done = _netprobe("drift", "--netns", box.hosts["box"], path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"netprobe: error: {path}:3: address '10.1.2': not an IP address with an optional "
        "/prefix"]
    assert _snapshot(box) == before


def test_what_hook_lines_and_sysctl_files_persist_is_no_drift(box: HandMade) -> None:
    path = box.file("interfaces", CONFIG + "        post-up ip route add 10.50.0.0/16 via "
                    "192.168.10.1\n")
    sysctl = box.file("sysctl.conf", "net.ipv4.ip_forward = 1\n")
    box.route("box", "10.50.0.0/16", "via", "192.168.10.1")
    box.sysctl("box", "net.ipv4.ip_forward", "1")
    assert not read_drift([path, sysctl], netns=box.hosts["box"]).drifted
    box.sysctl("box", "net.ipv4.ip_forward", "0")
    box.ip("box", "route", "del", "10.50.0.0/16")
    report = read_drift([path, sysctl], netns=box.hosts["box"])
    assert [(d.kind, d.where) for d in report.items] == [
        ("route", f"{path}:17"), ("sysctl", f"{sysctl}:1")], report.render()
    assert "sysctl net.ipv4.ip_forward = 0 now; the configuration sets 1" in report.render()
