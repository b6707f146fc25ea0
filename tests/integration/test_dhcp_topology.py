"""DHCP in topologies: real dnsmasq servers and busybox udhcpc clients, read back by
dhcp_servers() and dhcp_lease(), a hand-started dnsmasq in an adopted namespace read the
same, a client with no server to answer failing the build by name, and nothing left
behind (teardown, `topo up`/`topo down`, `clean` after a SIGKILL)."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.paths import EXAMPLES

import netprobe
from netprobe.topology import ClientLease, RunningDhcpServer
from netprobe.topology._kernel import owner, process, selfcheck

pytestmark = [pytest.mark.root, pytest.mark.netprobe_requires("dnsmasq", "busybox")]

_CLI = "from netprobe.cli import main; main()"
_CHILD = """
import sys, time, netprobe
topo = netprobe.build(netprobe.load(sys.argv[1]))
print("ready", topo.runid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as src:
            return src.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def _gone(runid: str) -> None:
    """Nothing of run `runid` remains: no process, directory, namespace or record."""
    assert process.tagged(runid) == []
    assert not os.path.exists(owner.private_dir(runid))
    assert not [n for n in os.listdir("/run/netns") if n.startswith(owner.ns_prefix(runid))]
    assert runid not in {r.runid for r in owner.read_records()}


def test_clients_get_leases_on_a_veth_and_behind_a_bridge() -> None:
    with netprobe.build(netprobe.load(EXAMPLES / "dhcp.yaml")) as topo:
        c1, c2 = topo.dhcp_lease("c1", "eth0"), topo.dhcp_lease("c2", "eth0")
        assert isinstance(c1, ClientLease) and isinstance(c2, ClientLease)
        assert c1 == ClientLease(c1.ip, 24, "192.168.10.1", ("192.168.10.1",), "192.168.10.1", 600)
        assert c2 == ClientLease(c2.ip, 24, "192.168.20.1", (), "192.168.20.1", 3600)
        first, last = ipaddress.IPv4Address("192.168.10.100"), ipaddress.IPv4Address(
            "192.168.10.199"
        )
        assert first <= ipaddress.IPv4Address(c1.ip) <= last
        assert ipaddress.IPv4Address(c2.ip) in ipaddress.ip_network("192.168.20.48/28")
        for host, lease in (("c1", c1), ("c2", c2)):
            live = topo.live(host)
            eth0 = next(i for i in live.interfaces if i.name == "eth0")
            assert f"{lease.ip}/24" in [str(a) for a in eth0.addresses]
            route = topo.route_to(host, "198.51.100.7")
            assert route is not None and route.gateway == lease.router and route.dev == "eth0"
            assert topo.run(host, ["ping", "-c1", "-W2", lease.router or ""]).ok
        assert topo.dhcp_lease("lan", "eth0") is None  # no client of netprobe's there
        assert topo.dhcp_servers("c1") == []
        servers = sorted(topo.dhcp_servers("lan"), key=lambda s: s.interfaces)
        assert [(s.program, s.interfaces, s.ranges) for s in servers] == [
            ("dnsmasq", ("eth0",), (("192.168.10.100", "192.168.10.199"),)),
            ("dnsmasq", ("eth1",), (("192.168.20.50", "192.168.20.59"),)),
        ]
        directory = os.path.join(owner.private_dir(topo.runid), "lan")
        assert servers[0].lease_file == os.path.join(directory, "dnsmasq-eth0.leases")
        assert servers[0].log == os.path.join(directory, "dnsmasq-eth0.log")
        (held,) = servers[0].leases()
        assert (held.ip, held.hostname) == (c1.ip, "c1")
        assert held.mac == topo.mac("c1", "eth0") and held.expires > time.time()
        pids = [d["pid"] for d in topo.record.daemons]
        assert len(pids) == 4 and all(_alive(p) for p in pids)
        runid = topo.runid
    assert not any(_alive(p) for p in pids)
    _gone(runid)


_NO_SERVER = """\
name: dhcp-silent
hosts:
  lan:
    interfaces:
      eth0: {veth: c1:eth0, addresses: [10.66.0.1/24]}
  c1:
    interfaces:
      eth0: {dhcp: true}
"""


def test_a_client_nobody_answers_fails_the_build_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sabotage: no server on the client's link. The self-check names the interface and
    shows the client's log; nothing is left behind."""
    monkeypatch.setattr(selfcheck, "LEASE_WAIT", 3.0)
    name = f"dhcp-silent-{uuid.uuid4().hex[:4]}"
    path = tmp_path / "silent.yaml"
    path.write_text(_NO_SERVER.replace("dhcp-silent", name))
    with pytest.raises(netprobe.TopologyError) as caught:
        netprobe.build(netprobe.load(path))
    message = str(caught.value)
    assert "c1:eth0 holds no DHCP lease (none after 3 s)" in message
    assert "udhcpc log:" in message and "broadcasting discover" in message
    assert name not in {r.name for r in owner.read_records()}  # torn down, record and all


def test_a_server_blocked_by_its_firewall_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sabotage: the server's host drops DHCP requests; dnsmasq runs, yet no lease."""
    monkeypatch.setattr(selfcheck, "LEASE_WAIT", 3.0)
    (tmp_path / "drop.nft").write_text(
        "table inet f {\n chain in { type filter hook input priority 0; udp dport 67 drop; }\n}\n"
    )
    path = tmp_path / "blocked.yaml"
    path.write_text(
        _NO_SERVER.replace("name: dhcp-silent", "name: dhcp-blocked").replace(
            "  c1:\n",
            "    dhcp_servers: [{interface: eth0, range: 10.66.0.10-10.66.0.20}]\n"
            "    firewall: [{nft: drop.nft}]\n  c1:\n",
        )
    )
    with pytest.raises(netprobe.TopologyError, match="c1:eth0 holds no DHCP lease"):
        netprobe.build(netprobe.load(path))


@pytest.fixture
def handmade() -> Iterator[tuple[str, Path]]:
    """A namespace made by hand with a veth pair and a dnsmasq started by hand in it."""
    name = f"npdhcpd-{uuid.uuid4().hex[:6]}"
    work = Path(f"/tmp/{name}")
    work.mkdir()
    proc = None
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for argv in (
            ["link", "add", "lan0", "type", "veth", "peer", "lan0p"],
            ["addr", "add", "10.77.0.1/24", "dev", "lan0"],
            ["link", "set", "lan0", "up"],
            ["link", "set", "lan0p", "up"],
        ):
            subprocess.run(["ip", "-n", name, *argv], check=True)
        future = int(time.time()) + 3600
        (work / "leases").write_text(f"{future} 02:00:00:00:77:05 10.77.0.55 box1 *\n")
        (work / "conf").write_text(textwrap.dedent(f"""\
            # a hand-written configuration
            except-interface=lo
            dhcp-range=set:red,10.77.0.200,10.77.0.210,255.255.255.0,2h
            log-facility={work}/log
            """))
        proc = subprocess.Popen([
            "ip", "netns", "exec", name, "dnsmasq", "--keep-in-foreground", "--port=0",
            "-C", str(work / "conf"), "--no-hosts", "--no-resolv", "--user=root",
            "--interface", "lan0", "--dhcp-range=10.77.0.50,10.77.0.60,12h",
            f"--dhcp-leasefile={work}/leases", f"--pid-file={work}/pid",
        ])  # fmt: skip
        deadline = time.monotonic() + 10
        while not (work / "pid").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "the hand-started dnsmasq did not start"
            time.sleep(0.02)
        assert proc.poll() is None, "the hand-started dnsmasq exited"
        yield name, work
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        subprocess.run(["ip", "netns", "del", name], check=False)
        for item in work.iterdir():
            item.unlink()
        work.rmdir()


def test_a_dnsmasq_started_by_hand_is_read_in_an_adopted_host(
    handmade: tuple[str, Path],
) -> None:
    name, work = handmade
    spec = netprobe.Spec(
        f"dhcpadopt{uuid.uuid4().hex[:4]}",
        hosts=[netprobe.Host("lan", adopt=name, interfaces=[netprobe.Interface("lan0")])],
    )
    with netprobe.build(spec) as topo:
        (server,) = topo.dhcp_servers("lan")
        assert isinstance(server, RunningDhcpServer)
        assert server.program == "dnsmasq" and _alive(server.pid)
        assert server.interfaces == ("lan0",) and server.except_interfaces == ("lo",)
        assert server.ranges == (("10.77.0.50", "10.77.0.60"), ("10.77.0.200", "10.77.0.210"))
        assert (server.lease_file, server.log) == (f"{work}/leases", f"{work}/log")
        (lease,) = server.leases()
        assert (lease.mac, lease.ip, lease.hostname) == ("02:00:00:00:77:05", "10.77.0.55", "box1")
        assert topo.dhcp_lease("lan", "lan0") is None


def _spec_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    text = (EXAMPLES / "dhcp.yaml").read_text().replace("name: dhcp", f"name: {name}")
    path.write_text(text)
    return path


def test_clean_after_a_sigkill_leaves_no_dhcp_daemon(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(_spec_file(tmp_path, "dhcp-killed"))],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    line = child.stdout.readline().split()
    assert line[:1] == ["ready"], line
    runid = line[1]
    record = next(r for r in owner.read_records() if r.runid == runid)
    names = sorted(d["name"] for d in record.daemons)
    assert names == ["busybox", "busybox", "dnsmasq", "dnsmasq"]
    child.send_signal(signal.SIGKILL)
    child.wait()
    report = netprobe.clean()
    assert runid in report.removed_runs
    deadline = time.monotonic() + 10
    while any(_alive(d["pid"]) for d in record.daemons) and time.monotonic() < deadline:
        time.sleep(0.05)
    _gone(runid)


def test_topo_up_keeps_them_running_and_topo_down_stops_them(tmp_path: Path) -> None:
    name = f"dhcpup{uuid.uuid4().hex[:4]}"
    up = subprocess.run(
        [sys.executable, "-c", _CLI, "topo", "up", str(_spec_file(tmp_path, name))],
        capture_output=True, text=True,
    )  # fmt: skip
    runid = owner.persistent_runid(name)
    try:
        assert up.returncode == 0, up.stderr
        record = next(r for r in owner.read_records() if r.runid == runid)
        pids = [d["pid"] for d in record.daemons]
        assert len(pids) == 4 and all(_alive(p) for p in pids)  # they outlive `topo up`
        leases = list((Path(owner.private_dir(runid)) / "c1").glob("udhcpc-*.lease"))
        assert [p.name for p in leases] == ["udhcpc-eth0.lease"]
    finally:
        down = subprocess.run(
            [sys.executable, "-c", _CLI, "topo", "down", name], capture_output=True, text=True
        )
    assert down.returncode == 0, down.stderr
    assert not any(_alive(p) for p in pids)
    _gone(runid)
