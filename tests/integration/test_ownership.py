"""Ownership and cleanup: nothing left behind, nothing foreign touched, whatever happens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import netprobe
from netprobe import Host, Interface, Route, Spec, Veth
from netprobe.topology._kernel import netns, owner

pytestmark = pytest.mark.root

_CHILD = """
import sys, time, netprobe
topo = netprobe.build(netprobe.load(sys.argv[1]))
print("ready", topo.runid, flush=True)
time.sleep(120)
"""


def _left_of_run(runid: str) -> dict[str, list[str]]:
    """What of run `runid` is on the machine: its namespaces, record, root links and the
    root routes and firewall lines that name them (others' runs, which come and go
    meanwhile, are not looked at)."""

    def sh(*argv: str) -> list[str]:
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        return out.splitlines()

    tag = owner.root_ifname(runid, "")  # every root link of the run's is named so

    def mine(line: str) -> bool:
        return tag in line or f"netprobe:{runid}" in line

    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True,
                                      text=True, check=True).stdout)  # fmt: skip
    return {
        "namespaces": [n for n in netns.list_names() if n.startswith(owner.ns_prefix(runid))],
        "records": [r for r in _record_files() if r.split(".")[0] == runid],
        "root links": sorted(
            link["ifname"] for link in links if mine(f"{link['ifname']} {link.get('ifalias')}")
        ),
        "root routes": [line for line in sh("ip", "route") if mine(line)],
        "root firewall": [line for line in sh("nft", "list", "ruleset") if mine(line)],
    }


def _root_links() -> list[str]:
    out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
    return [link["ifname"] for link in json.loads(out)]


def _record_files() -> list[str]:
    return sorted(os.listdir(owner.RUN_DIR)) if os.path.isdir(owner.RUN_DIR) else []


def _star_yaml(path: Path, hosts: int, extra_hosts: str = "") -> Path:
    lines = ["name: star", "hosts:", "  sw:", "    interfaces:", "      br0: {bridge: {}}"]
    lines += [f"      p{i}: {{master: br0}}" for i in range(hosts)]
    for i in range(hosts):
        lines += [
            f"  h{i}:",
            "    interfaces:",
            f"      eth0: {{veth: sw:p{i}, addresses: [10.50.{i // 250}.{i % 250 + 1}/16]}}",
        ]
    path.write_text("\n".join(lines) + "\n" + extra_hosts)
    return path


def _record_of(pid: int) -> owner.RunRecord | None:
    return next((r for r in owner.read_records() if r.pid == pid), None)


@pytest.fixture
def foreign_ns() -> Iterator[str]:
    """A namespace netprobe did not make (as Docker or a person would)."""
    name = f"foreign-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_sigkill_in_the_middle_of_building_then_clean_restores_the_machine(tmp_path: Path) -> None:
    spec = _star_yaml(tmp_path / "star.yaml", 150)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(spec)], stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    made: list[str] = []
    runid = ""
    while time.monotonic() < deadline and len(made) < 10:
        record = _record_of(child.pid)
        if record is not None:
            runid = record.runid
            made = [n for n in netns.list_names() if n.startswith(owner.ns_prefix(runid))]
    child.kill()
    child.wait()
    assert len(made) >= 10, "the run was not caught in the middle of building"
    left = _left_of_run(runid)
    assert left["records"] and len(left["namespaces"]) >= 10  # it really left things behind
    report = netprobe.clean()
    assert runid in report.removed_runs and len(report.removed_namespaces) >= 10
    assert not any(_left_of_run(runid).values()), _left_of_run(runid)


def test_sigterm_and_ctrl_c_tear_down(tmp_path: Path) -> None:
    spec = tmp_path / "pair.yaml"
    spec.write_text("hosts:\n  sig-a:\n    interfaces:\n      eth0: {veth: sig-b:eth0}\n  sig-b:\n")
    for sig, code in ((signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, None)):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(spec)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Ctrl-C as a terminal gives it, whoever started this run: a shell's background
            # job (`cmd &`) runs with SIGINT ignored, and a child would inherit that.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        assert child.stdout is not None
        ready = child.stdout.readline().split()
        assert ready[0] == "ready"
        assert any(n.startswith(owner.ns_prefix(ready[1])) for n in netns.list_names())
        child.send_signal(sig)
        returncode = child.wait(timeout=30)
        assert code is None or returncode == code
        assert not any(n.startswith(owner.ns_prefix(ready[1])) for n in netns.list_names())
        assert ready[1] not in {r.runid for r in owner.read_records()}


def test_adopted_namespace_gets_only_additions_and_keeps_living(foreign_ns: str) -> None:
    sysctl = "net.ipv4.conf.all.forwarding"
    old = subprocess.run(
        ["ip", "netns", "exec", foreign_ns, "sysctl", "-n", sysctl],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    spec = Spec(
        "adopt",
        hosts=[
            Host(
                "ext",
                adopt=foreign_ns,
                interfaces=[Interface("np9", Veth("mine:eth0"), addresses=["10.66.0.1/24"])],
                routes=[Route("10.67.0.0/16", via="10.66.0.2")],
                sysctls={sysctl: 1},
            ),
            Host("mine", interfaces=[Interface("eth0", addresses=["10.66.0.2/24"])]),
        ],
    )
    with netprobe.build(spec) as topo:
        assert topo.namespace("ext") == foreign_ns
        link = json.loads(topo.run("ext", ["ip", "-j", "-d", "link", "show", "np9"]).stdout)[0]
        assert link["ifalias"] == f"netprobe:{topo.runid}"
        assert topo.run("ext", ["ping", "-c1", "-W2", "10.66.0.2"]).ok
        assert "10.67.0.0/16 via 10.66.0.2" in topo.run("ext", ["ip", "route"]).stdout
    assert foreign_ns in netns.list_names()
    after = subprocess.run(
        ["ip", "netns", "exec", foreign_ns, "ip", "-j", "link"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [link["ifname"] for link in json.loads(after)] == ["lo"]
    now = subprocess.run(
        ["ip", "netns", "exec", foreign_ns, "sysctl", "-n", sysctl],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert now == old


def test_clean_after_a_killed_run_removes_tagged_links_in_adopted_and_root(
    tmp_path: Path, foreign_ns: str
) -> None:
    spec = tmp_path / "attach.yaml"
    spec.write_text(f"""
hosts:
  machine:
    root: true
    interfaces:
      rv0: {{veth: inner:eth0}}
  ext:
    adopt: {foreign_ns}
    interfaces:
      ev0: {{veth: inner:eth1}}
  inner:
""")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(spec)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    runid = child.stdout.readline().split()[1]
    root_name = owner.root_ifname(runid, "rv0")
    assert root_name in _root_links()
    child.kill()
    child.wait()
    report = netprobe.clean()
    assert runid in report.removed_runs
    assert f"root:{root_name}" in report.removed_links
    assert f"{foreign_ns}:ev0" in report.removed_links
    assert foreign_ns in netns.list_names()  # adopted: never deleted
    assert not any(_left_of_run(runid).values()), _left_of_run(runid)


def test_clean_spares_live_runs_foreign_namespaces_and_persistent_topologies(
    foreign_ns: str,
) -> None:
    lookalike = f"np-{uuid.uuid4().hex[:6]}-someone"  # our naming, but no record of ours
    subprocess.run(["ip", "netns", "add", lookalike], check=True)
    try:
        spec = Spec("keepme", hosts=[Host("keep-a")])
        with netprobe.build(spec) as live:
            persistent = netprobe.build(
                Spec("np_persist_test", hosts=[Host("keep-p")]), persistent=True
            )
            persistent.keep()
            report = netprobe.clean()
            assert live.runid in report.kept_live
            assert "np_persist_test" in report.kept_persistent
            assert lookalike in report.unknown_namespaces
            names = netns.list_names()
            assert {
                live.namespace("keep-a"),
                "np-np_persist_test-keep-p",
                lookalike,
                foreign_ns,
            } <= set(names)
            report = netprobe.topology.down("np_persist_test")
            assert report.removed_namespaces == ["np-np_persist_test-keep-p"]
            assert live.namespace("keep-a") in netns.list_names()
    finally:
        subprocess.run(["ip", "netns", "del", lookalike], check=False)


_ALL = """
import netprobe
from netprobe import Host, Spec
netprobe.build(Spec("np_all_test", hosts=[Host("x")]), persistent=True).keep()
with netprobe.build(Spec("np_live_test", hosts=[Host("y")])) as live:
    report = netprobe.clean(all=True)
    assert report.removed_runs == ["np_all_test"], report
    assert report.kept_live == [live.runid], report
print("ok")
"""


def test_clean_all_also_removes_persistent_topologies() -> None:
    # In a private mount namespace with its own /run/netns and /run/netprobe, so that
    # `clean --all` sees only this test's topologies, never a user's.
    script = (
        "mkdir -p /run/netns /run/netprobe && mount -t tmpfs np /run/netns && "
        'mount -t tmpfs np /run/netprobe && exec "$0" -c "$1"'
    )
    proc = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            sys.executable,
            _ALL,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_root_attachment_is_prefixed_tagged_and_removed() -> None:
    spec = Spec(
        "rootattach",
        hosts=[
            Host("machine", root=True, interfaces=[Interface("rv1", Veth("ra:eth0"))]),
            Host("ra"),
        ],
    )
    with netprobe.build(spec) as topo:
        name = topo.ifname("machine", "rv1")
        assert name.startswith("np") and name.endswith("rv1") and len(name) == 9
        link = json.loads(topo.run("machine", ["ip", "-j", "-d", "link", "show", name]).stdout)
        assert link[0]["ifalias"] == f"netprobe:{topo.runid}"
        assert topo.run("ra", ["ip", "link", "show", "eth0"]).ok
    assert name not in _root_links()


def test_an_existing_tap_in_an_adopted_namespace_is_never_taken_over(foreign_ns: str) -> None:
    subprocess.run(["ip", "-n", foreign_ns, "tuntap", "add", "tap0", "mode", "tap"], check=True)
    spec = Spec(
        "taptake",
        hosts=[Host("ext", adopt=foreign_ns, interfaces=[Interface("tap0", netprobe.Tap())])],
    )
    with pytest.raises(netprobe.TopologyError, match="tap0 already exist"):
        netprobe.build(spec)
    links = subprocess.run(
        ["ip", "-n", foreign_ns, "-j", "link"], capture_output=True, text=True, check=True
    ).stdout
    assert "tap0" in [link["ifname"] for link in json.loads(links)]  # still the user's


def test_sigkill_while_building_in_an_adopted_namespace_then_clean(
    tmp_path: Path, foreign_ns: str
) -> None:
    lines = [
        "name: adoptkill",
        "hosts:",
        "  inner:",
        "  ext:",
        f"    adopt: {foreign_ns}",
        "    interfaces:",
    ]
    lines += [f"      v{i}: {{veth: inner:e{i}}}" for i in range(150)]
    spec = tmp_path / "adoptkill.yaml"
    spec.write_text("\n".join(lines) + "\n")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(spec)], stdout=subprocess.PIPE, text=True
    )

    def made() -> int:
        out = subprocess.run(
            ["ip", "-n", foreign_ns, "-j", "link"], capture_output=True, text=True, check=False
        ).stdout
        return len(json.loads(out or "[]")) - 1

    deadline = time.monotonic() + 30
    while made() < 20 and time.monotonic() < deadline:
        time.sleep(0.002)
    child.kill()
    child.wait()
    assert 20 <= made() < 150, "the run was not caught in the middle of building"
    netprobe.clean()
    assert made() == 0
    assert foreign_ns in netns.list_names()


def test_topo_down_and_clean_undo_changes_in_an_adopted_namespace(foreign_ns: str) -> None:
    def forwarding() -> str:
        return subprocess.run(
            ["ip", "netns", "exec", foreign_ns, "sysctl", "-n", "net.ipv4.ip_forward"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    before = forwarding()
    spec = Spec(
        "np_undo_test",
        hosts=[
            Host(
                "ext",
                adopt=foreign_ns,
                sysctls={"net.ipv4.ip_forward": 1},
                interfaces=[Interface("u0", Veth("in:eth0"), addresses=["10.68.0.1/24"])],
                routes=[Route("10.69.0.0/16", via="10.68.0.2")],
            ),
            Host("in", interfaces=[Interface("eth0", addresses=["10.68.0.2/24"])]),
        ],
    )
    netprobe.build(spec, persistent=True).keep()
    assert forwarding() == "1"
    netprobe.topology.down("np_undo_test")
    assert forwarding() == before
    routes = subprocess.run(
        ["ip", "-n", foreign_ns, "route"], capture_output=True, text=True, check=True
    ).stdout
    assert "10.69.0.0" not in routes and "u0" not in routes


_TWO = """
import time, netprobe
from netprobe import Host, Spec
a = netprobe.build(Spec("sig-one", hosts=[Host("sigone")]))
b = netprobe.build(Spec("sig-two", hosts=[Host("sigtwo")]))
a.teardown()
print("ready", b.runid, flush=True)
time.sleep(60)
"""


def test_sigterm_still_tears_down_after_another_topology_went() -> None:
    child = subprocess.Popen([sys.executable, "-c", _TWO], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    runid = child.stdout.readline().split()[1]
    child.terminate()
    assert child.wait(timeout=30) == 128 + signal.SIGTERM
    assert not [n for n in netns.list_names() if n.startswith(owner.ns_prefix(runid))]


def test_topo_down_removes_a_topo_up_killed_while_building(tmp_path: Path) -> None:
    spec = (
        _star_yaml(tmp_path / "star.yaml", 120)
        .read_text()
        .replace("name: star", "name: np_killed_up")
    )
    (tmp_path / "killed.yaml").write_text(spec)
    code = "from netprobe.cli import main; main()"
    child = subprocess.Popen(
        [sys.executable, "-c", code, "topo", "up", str(tmp_path / "killed.yaml")],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline
        and len([n for n in netns.list_names() if n.startswith("np-np_killed_up-")]) < 5
    ):
        time.sleep(0.002)
    child.kill()
    child.wait()
    with pytest.raises(netprobe.SetupError, match="killed while building"):
        netprobe.build(netprobe.load(tmp_path / "killed.yaml"), persistent=True)
    netprobe.topology.down("np_killed_up")
    assert not [n for n in netns.list_names() if n.startswith("np-np_killed_up-")]


def test_a_namespace_that_will_not_go_is_a_teardown_problem_and_keeps_the_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Teardown deletes the other namespaces, says which one stayed, and keeps the record
    so that cleaning the run later removes it."""
    from netprobe.topology._kernel import cleanup

    spec = Spec("np_delfail", hosts=[Host("a", interfaces=[Interface("eth0", Veth("b:eth0"))]),
                                     Host("b")])  # fmt: skip
    topo = netprobe.build(spec)
    stuck = topo.namespace("a")
    real = netns.delete_many

    def busy(name: str) -> None:
        if name == stuck:
            raise OSError(16, "Device or resource busy")
        netns.delete(name)

    monkeypatch.setattr(netns, "delete_many", lambda names: real(names, busy))
    try:
        with pytest.raises(netprobe.TopologyError, match=f"deleting namespace {stuck}: "):
            topo.teardown()
        assert _left_of_run(topo.runid)["namespaces"] == [stuck]
        assert stuck not in (topo.teardown_report or cleanup.CleanReport()).removed_namespaces
        assert [r.runid for r in owner.read_records() if r.runid == topo.runid] == [topo.runid]
    finally:
        monkeypatch.undo()
        for record in (r for r in owner.read_records() if r.runid == topo.runid):
            cleanup.remove_run(record, netns.list_names(), cleanup.CleanReport())
    assert _left_of_run(topo.runid) == {k: [] for k in _left_of_run(topo.runid)}
