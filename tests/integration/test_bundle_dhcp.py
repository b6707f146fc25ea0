"""The bundle of a failing dhcp check reproduces it: its repro.sh starts each dnsmasq and
udhcpc of the topology in its namespaces (and leaves none behind), replays the client's
frames and judges the server's answers by xid and chaddr; netprobe replay rebuilds the
servers from the spec."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.paths import ROOT

import netprobe
from netprobe import Spec
from netprobe.bundle import replay, run_check, write_bundle
from netprobe.check import Check, Result, Status, reference_path
from netprobe.check import run_check as run_plain
from netprobe.topology import Host, Interface, Topology, Veth
from netprobe.topology._kernel import netns

pytestmark = pytest.mark.root

DROP_DHCP = (ROOT / "tests" / "integration" / "test_check_dhcp.py").read_text()
DROP_DHCP = DROP_DHCP.split('DROP_DHCP = """', 1)[1].split('"""', 1)[0]


def _reference() -> Spec:
    return netprobe.load(reference_path("proxmox-bridged.yaml"))


def _exhausted() -> Spec:
    """A pool of one address, taken by a real client (udhcpc) on the same bridge."""
    spec = _reference()
    lan = spec.host("lan")
    servers = tuple(
        dataclasses.replace(s, range=("192.168.10.100", "192.168.10.100")) for s in lan.dhcp_servers
    )
    pve = spec.host("pve")
    port = Interface("veth102i0", Veth("ct102:eth0"), master="vmbr0")
    ct = Host("ct102", (Interface("eth0", mac="02:00:00:00:01:02", dhcp=True),))
    hosts = [
        dataclasses.replace(pve, interfaces=(*pve.interfaces, port))
        if h.name == "pve"
        else dataclasses.replace(lan, dhcp_servers=servers)
        if h.name == "lan"
        else h
        for h in spec.hosts
    ]
    return dataclasses.replace(spec, hosts=(*hosts, ct))


def _dnsmasq_pids() -> set[int]:
    out = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{entry}/comm").read_text().strip() in ("dnsmasq", "busybox"):
                out.add(int(entry))
        except OSError:
            continue
    return out


def _ours(pids: set[int], directory: str) -> list[int]:
    """Those of `pids` whose command line names a repro.sh private directory."""
    found = []
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if directory in argv:
            found.append(pid)
    return found


def _repro(
    bundle: Path, tmp_path: Path, text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the bundle's repro.sh (or `text` in its stead) with `sh`, a private TMPDIR so
    that what it leaves is told apart from others' processes; check it left nothing."""
    script = tmp_path / "repro.sh"
    script.write_text(text if text is not None else (bundle / "repro.sh").read_text())
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp)}
    with subprocess.Popen(["sh", str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, cwd=tmp_path) as proc:  # fmt: skip
        out, err = proc.communicate(timeout=180)
    assert not [n for n in netns.list_names() if n.startswith(f"repro{proc.pid}-")]
    assert list(tmp.iterdir()) == []  # its private directory is gone
    assert not _ours(_dnsmasq_pids(), str(tmp))  # so are its dnsmasq and udhcpc
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def dropped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bridge nft rule dropping DHCP, added by hand: the DISCOVER never reaches lan."""
    out = tmp_path_factory.mktemp("reports")
    rules = out / "drop.nft"
    rules.write_text(DROP_DHCP)
    with netprobe.build(_reference()) as topo:
        topo.run("pve", ["nft", "-f", str(rules)], check=True)
        result = run_check("dhcp", topo, bundle_dir=out / "bundles")
    assert result.status is Status.FAIL and result.bundle
    return Path(result.bundle)


@pytest.fixture(scope="module")
def exhausted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    result = run_check("dhcp", _exhausted(), bundle_dir=out, others="pve:tap101i0@vm")
    assert result.status is Status.FAIL and result.bundle
    assert result.steps[1].status is Status.FAIL  # the OFFER
    return Path(result.bundle)


def test_repro_sh_starts_dnsmasq_with_its_configuration(dropped: Path) -> None:
    text = (dropped / "repro.sh").read_text()
    assert "dhcp-range=192.168.10.100,192.168.10.199,3600" in text
    assert "dhcp-leasefile=$D/lan/dnsmasq-eth0.leases" in text
    assert "--keep-in-foreground" in text and "/proc/net/udp" in text
    assert "busybox udhcpc" not in text  # the TAP's client is the replay
    assert "/run/netprobe" not in text


def test_repro_sh_reproduces_the_dropped_discover(dropped: Path, tmp_path: Path) -> None:
    done = _repro(dropped, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "lan:eth0: nothing" in done.stdout
    assert "→ FAIL (netprobe recorded FAIL)" in done.stdout
    assert "0 differ from what netprobe recorded" in done.stdout


def test_repro_sh_passes_where_the_drop_is_mended(dropped: Path, tmp_path: Path) -> None:
    """Without the drop rule the same frames get the server's OFFER, judged by its xid."""
    text = (dropped / "repro.sh").read_text().replace("udp dport { 67, 68 } drop", "")
    done = _repro(dropped, tmp_path, text)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 step(s) failed; 1 differ" in done.stdout


def test_replay_rebuilds_the_drop(dropped: Path) -> None:
    again = replay(dropped)
    assert again.matches, again.text()
    assert again.result.status is Status.FAIL


def test_repro_sh_reproduces_the_exhausted_pool(exhausted: Path, tmp_path: Path) -> None:
    """ct102's udhcpc takes the one address again; the replayed DISCOVER gets no OFFER."""
    text = (exhausted / "repro.sh").read_text()
    assert "busybox udhcpc -f -i eth0" in text and "NETPROBE_UDHCPC" in text
    done = _repro(exhausted, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "step 2: OFFER from lan:eth0 back to pve:tap100i0@vm only" in out
    assert "the server's OFFER to xid" in out and "pve:tap100i0@vm: nothing" in out
    assert "1 step(s) failed; 0 differ from what netprobe recorded" in out


def test_replay_rebuilds_the_exhausted_pool(exhausted: Path) -> None:
    again = replay(exhausted)
    assert again.matches, again.text()
    assert again.result.diagnosis is not None and "is full" in again.result.diagnosis


class _Always:
    """A recorder that writes the bundle of a passing run too."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def before(self, topo: Topology, *, given: bool) -> None:
        del topo, given

    def after(self, check: Check, result: Result, topo: Topology, params: dict[str, Any]) -> None:
        del check
        write_bundle(result, topo, self.directory, params={k: str(v) for k, v in params.items()})


def test_the_whole_exchange_replays_to_pass(tmp_path: Path) -> None:
    """On the healthy network every step the replay can judge passes, the renewal's ACK
    too (the script answers the server's ARP for the leased address, as the VM would);
    the options steps are said not judged, not given a verdict."""
    result = run_plain("dhcp", recorder=_Always(tmp_path / "out"))
    assert result.status is Status.PASS, result.evidence()
    (bundle,) = (tmp_path / "out").iterdir()
    done = _repro(bundle, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.count("→ PASS (netprobe recorded PASS)") == 6, out
    assert out.count("not judged here") == 3, out  # two options steps, and the summary
    assert "0 step(s) failed; 0 differ from what netprobe recorded; 2 not judged here" in out
