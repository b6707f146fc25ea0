"""Impairments on a lab's link, measured: a TCP flow through a tbf rate limit (from the
spec, or `topo impair` on a running lab) runs at the rate, within tolerance, decided over
megabytes; cleared, the same flow runs far faster. Bad input is one line and exit 2; a
kernel without netem says so with the remedy."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import netprobe
from netprobe.errors import SetupError
from netprobe.topology import Topology
from netprobe.topology._kernel import netns, owner

pytestmark = pytest.mark.root

SPEC = """
name: {name}
hosts:
  a:
    interfaces:
      eth0:
        veth: {{peer: "b:eth0"}}
        addresses: [10.77.0.1/24]
        {impair}
  b:
    interfaces:
      eth0: {{addresses: [10.77.0.2/24]}}
"""
BYTES = 4 * 2**20  # over 3 s at 10 Mbit/s: the 32 kB burst is under 1 % of it
RECEIVE = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.2", 5001)); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); n = 0; first = None
while chunk := c.recv(65536):
    first = first or time.monotonic(); n += len(chunk)
print(n, time.monotonic() - (first or time.monotonic()), flush=True)
"""
SEND = """
import socket, sys
s = socket.create_connection(("10.77.0.2", 5001)); s.sendall(b"x" * int(sys.argv[1])); s.close()
"""


def _spec(tmp_path: Path, name: str, impair: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, impair=f"impair: {impair}" if impair else ""))
    return path


def throughput(a_ns: str, b_ns: str, size: int = BYTES) -> float:
    """Bits per second of one TCP flow a → b, timed at the receiver from its first byte
    to the last."""
    recv = subprocess.Popen(netns.exec_argv(b_ns, [sys.executable, "-c", RECEIVE]),
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert recv.stdout is not None and recv.stdout.readline().strip() == "ready"
        subprocess.run(netns.exec_argv(a_ns, [sys.executable, "-c", SEND, str(size)]),
                       check=True, timeout=120)  # fmt: skip
        got, seconds = recv.stdout.readline().split()
        assert int(got) == size
        print(f"{size} bytes in {float(seconds):.2f} s: {size * 8 / float(seconds) / 1e6:.2f} Mb/s")
        return size * 8 / float(seconds)
    finally:
        recv.kill()
        recv.wait()


def _netprobe(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netprobe.cli", *argv], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Topology]:
    spec = netprobe.load(_spec(tmp_path, "imp-spec", "{rate: 10mbit, burst: 32kb}"))
    with netprobe.build(spec) as topo:
        yield topo


def test_a_rate_limit_from_the_spec_holds_a_tcp_flow_to_its_rate(limited: Topology) -> None:
    rate = throughput(limited.namespace("a"), limited.namespace("b"))
    assert 0.5 * 10e6 <= rate <= 1.2 * 10e6, f"{rate / 1e6:.2f} Mbit/s under a 10mbit limit"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    name = f"imp-lab-{tmp_path.name[-6:].replace('_', '')}"
    done = _netprobe("topo", "up", str(_spec(tmp_path, name)))
    assert done.returncode == 0, done.stderr
    try:
        yield name
    finally:
        _netprobe("topo", "down", name)


def test_topo_impair_limits_a_running_lab_and_clear_removes_it(lab: str) -> None:
    a, b = (owner.ns_name(owner.persistent_runid(lab), h) for h in ("a", "b"))
    done = _netprobe("topo", "impair", lab, "a:eth0", "--rate", "20mbit")
    assert (done.returncode, done.stdout) == (0, "a:eth0: rate 20mbit\n"), done.stderr
    rate = throughput(a, b)
    assert 0.5 * 20e6 <= rate <= 1.2 * 20e6, f"{rate / 1e6:.2f} Mbit/s under a 20mbit limit"
    assert _shown_qdisc(lab, "a", "eth0").startswith("tbf 1: root rate 20Mbit")  # live
    assert _shown_qdisc(lab, "b", "eth0") is None  # its default (noqueue): nothing to show
    done = _netprobe("topo", "impair", lab, "a:eth0", "--clear")
    assert (done.returncode, done.stdout) == (0, "a:eth0: impairments removed\n")
    assert throughput(a, b) > 3 * 20e6  # the limit was what held it: gone, it runs free
    assert _shown_qdisc(lab, "a", "eth0") is None
    text = _netprobe("topo", "show", lab).stdout
    assert "qdisc" not in text, text


def _shown_qdisc(lab: str, host: str, link: str) -> str | None:
    """`topo show --json`'s qdisc of HOST's LINK (read from the kernel); the text view
    shows the same words."""
    done = _netprobe("topo", "show", lab, "--json")
    assert done.returncode == 0, done.stderr
    (view,) = [h for h in json.loads(done.stdout)["hosts"] if h["host"] == host]
    (found,) = [k for k in view["links"] if k["name"] == link]
    if found["qdisc"] is not None:
        assert f"qdisc {found['qdisc']}" in _netprobe("topo", "show", lab).stdout
    shown: str | None = found["qdisc"]
    return shown


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("a:eth9", "host 'a' of lab '{lab}' has no interface 'eth9' (it has: eth0)"),
        ("c:eth0", "lab '{lab}' has no host 'c' (its hosts: a, b)"),
        ("eth0", "say which interface as HOST:IF, not 'eth0'"),
    ],
)
def test_topo_impair_on_what_is_not_there_is_one_line(lab: str, target: str, words: str) -> None:
    done = _netprobe("topo", "impair", lab, target, "--rate", "1mbit")
    assert done.returncode == 2
    assert done.stderr == f"netprobe: error: {words.format(lab=lab)}\n"


def test_topo_impair_on_an_unknown_lab_is_one_line() -> None:
    done = _netprobe("topo", "impair", "no-such-lab-x", "a:eth0", "--rate", "1mbit")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "no topology named 'no-such-lab-x' is up" in done.stderr


def test_without_netem_building_says_so_with_the_remedy(tmp_path: Path) -> None:
    spec = netprobe.load(_spec(tmp_path, "imp-netem", "{rate: 10mbit, delay: 20ms}"))
    try:
        netprobe.build(spec).teardown()
    except SetupError as exc:
        caught = exc
    else:
        pytest.skip("this kernel has netem (the VM tier proves it works)")
    message = str(caught)
    assert "\n" not in message
    assert "impairing a:eth0 with rate 10mbit, delay 20ms: this kernel has no netem" in message
    assert "modprobe sch_netem" in message and "VM tier" in message
    assert not [n for n in netns.list_names() if n.endswith("-a") and "imp-netem" in n]


ADOPTING = """
name: {name}
hosts:
  a:
    adopt: {ns}
    interfaces:
      eth0: {{}}
      np1:
        veth: {{peer: "b:eth0"}}
        addresses: [10.77.1.1/24]
  b:
    interfaces:
      eth0: {{addresses: [10.77.1.2/24]}}
"""


def _qdiscs(ns: str) -> str:
    return subprocess.run(["tc", "-n", ns, "-j", "qdisc", "show", "dev", "eth0"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


def test_topo_impair_leaves_an_adopted_namespaces_own_links_alone(tmp_path: Path) -> None:
    """A link the lab found in an adopted namespace keeps its owner's qdisc: neither
    impairing nor --clear touches it (one line, exit 2); the link the lab made there can."""
    tag = uuid.uuid4().hex[:6]
    ns, name = f"imx-{tag}-a", f"imp-adopt-{tag}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "add", "eth0", "up", "type", "veth", "peer",
                        "eth1"], check=True)  # fmt: skip
        subprocess.run(["tc", "-n", ns, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate",
                        "1mbit", "burst", "32kb", "latency", "50ms"], check=True)  # fmt: skip
        before = _qdiscs(ns)
        path = tmp_path / f"{name}.yaml"
        path.write_text(ADOPTING.format(name=name, ns=ns))
        done = _netprobe("topo", "up", str(path))
        assert done.returncode == 0, done.stderr
        try:
            for extra in (["--rate", "5mbit"], ["--clear"]):
                done = _netprobe("topo", "impair", name, "a:eth0", *extra)
                assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
                assert f"a:eth0 of lab {name!r} is not a link netprobe made" in done.stderr
                assert _qdiscs(ns) == before  # the owner's tbf, as it was
            done = _netprobe("topo", "impair", name, "a:np1", "--rate", "5mbit")
            assert (done.returncode, done.stdout) == (0, "a:np1: rate 5mbit\n"), done.stderr
        finally:
            _netprobe("topo", "down", name)
        assert _qdiscs(ns) == before
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
