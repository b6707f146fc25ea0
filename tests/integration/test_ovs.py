"""Open vSwitch built natively: netprobe's own daemons inside the switch host, a userspace
datapath that carries TCP, and nothing left behind (teardown, failed builds, killed runs).
Also: a VLAN-filtering bridge on a kernel without it is a SetupError that says so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support.paths import EXAMPLES

import netprobe
from netprobe._capabilities import probe
from netprobe.topology._kernel import owner

pytestmark = [pytest.mark.root, pytest.mark.netprobe_requires("ovs-vsctl")]


_CHILD = """
import sys, time, netprobe
topo = netprobe.build(netprobe.load(sys.argv[1]))
print("ready", topo.runid, flush=True)
time.sleep(120)
"""

_SERVER = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.0.0.2", 5001))
s.listen()
print("listening", flush=True)
conn, _ = s.accept()
data = b""
while len(data) < 100000:
    chunk = conn.recv(65536)
    if not chunk:
        break
    data += chunk
conn.sendall(str(len(data)).encode())
"""

_CLIENT = """
import socket
c = socket.create_connection(("10.0.0.2", 5001), timeout=5)
c.sendall(bytes(100000))
c.shutdown(socket.SHUT_WR)
print(c.recv(100).decode())
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as src:
            return src.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def _netns_inode(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def test_the_daemons_run_inside_the_switch_host_and_go_with_the_topology() -> None:
    with netprobe.build(netprobe.load(EXAMPLES / "ovs-flows.yaml")) as topo:
        daemons = {d["name"]: d for d in topo.record.daemons}
        assert sorted(daemons) == ["ovs-vswitchd", "ovsdb-server"]
        switch_ns = os.stat(f"/run/netns/{topo.namespace('switch')}").st_ino
        for entry in daemons.values():
            assert _alive(entry["pid"])
            assert _netns_inode(entry["pid"]) == switch_ns
            assert entry["dir"] == os.path.join(owner.private_dir(topo.runid), "switch")
        on_disk = {r.runid: r for r in owner.read_records()}[topo.runid]
        assert [d["pid"] for d in on_disk.daemons] == [d["pid"] for d in topo.record.daemons]
        shown = topo.ovs("switch", "ovs-vsctl", "show", check=True).stdout
        assert "datapath_type: netdev" in shown
        flows = topo.ovs("switch", "ovs-ofctl", "dump-flows", "br0", check=True).stdout
        assert "nw_src=10.0.0.66 actions=drop" in flows
        directory = owner.private_dir(topo.runid)
    assert not any(_alive(d["pid"]) for d in daemons.values())
    assert not os.path.exists(directory)


def test_tcp_crosses_the_userspace_datapath() -> None:
    """TX checksum offload is off on the OVS ports' veths, or TCP segments arrive with
    checksums nobody completed."""
    with netprobe.build(netprobe.load(EXAMPLES / "ovs-flows.yaml")) as topo:
        server = subprocess.Popen(
            ["ip", "netns", "exec", topo.namespace("h2") or "", sys.executable, "-c", _SERVER],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "listening"
            client = topo.run("h1", [sys.executable, "-c", _CLIENT], timeout=20)
        finally:
            server.kill()
            server.wait()
        assert client.ok, client.stderr
        assert client.stdout.strip() == "100000"
        features = topo.run("h1", ["ethtool", "-k", "eth0"]).stdout
        assert "tx-checksumming: off" in features


def test_a_flow_ovs_refuses_fails_the_build_and_leaves_nothing(tmp_path: Path) -> None:
    text = (EXAMPLES / "ovs-flows.yaml").read_text().replace(
        "actions=drop", "actions=frobnicate"
    )  # OVS refuses it; the loader only sees that there are actions
    path = tmp_path / "bad-flow.yaml"
    path.write_text(text)
    before = set(os.listdir(owner.RUN_DIR)) if os.path.isdir(owner.RUN_DIR) else set()
    with pytest.raises(netprobe.TopologyError, match="ovs-ofctl replace-flows br0"):
        netprobe.build(netprobe.load(path))
    after = set(os.listdir(owner.RUN_DIR))
    assert not [n for n in after - before if n.startswith("ovs-")]


def test_clean_stops_a_killed_runs_daemons_and_removes_their_directory() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(EXAMPLES / "ovs-bond.yaml")],
        stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline().split()
    assert line[:1] == ["ready"], line
    runid = line[1]
    child.send_signal(signal.SIGKILL)
    child.wait()
    record = next(r for r in owner.read_records() if r.runid == runid)
    pids = [d["pid"] for d in record.daemons]
    assert len(pids) == 2
    # They die with their owner (the kernel's parent-death signal); clean stops any
    # that linger, and removes what they leave: the directory, the record, the namespaces.
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)
    report = netprobe.clean()
    assert runid in report.removed_runs
    assert not os.path.exists(owner.private_dir(runid))
    assert not [n for n in os.listdir("/run/netns") if n.startswith(owner.ns_prefix(runid))]


FILTERING = """\
name: vlan-aware
hosts:
  vm1:
    interfaces:
      eth0: {veth: sw:vm1}
  sw:
    interfaces:
      br0: {bridge: {vlan_filtering: true}}
      vm1: {master: br0, vlans: [{id: 10, pvid: true, untagged: true}]}
"""


def test_a_vlan_filtering_bridge_on_a_kernel_without_it_names_the_feature() -> None:
    (present,) = probe(["bridge vlan_filtering"])
    if present.present:
        pytest.skip("this kernel filters VLANs on bridges: the full-kernel tests cover it")
    with pytest.raises(netprobe.SetupError) as info:
        netprobe.build(netprobe.loads(textwrap.dedent(FILTERING)))
    assert "bridge vlan_filtering" in str(info.value)
    assert "Operation not supported" in str(info.value)
    assert info.value.remedy is not None and "full-kernel VM" in info.value.remedy
