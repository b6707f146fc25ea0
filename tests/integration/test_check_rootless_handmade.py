"""The rootless check on a rootless container's network made by hand, as a user (or
rootlesskit) makes one: an empty namespace with a process in it, slirp4netns started for
that process by hand (`slirp4netns --configure --mtu=65520 --api-socket SOCK PID tap0`),
the port published by hand through its API socket, a neighbour namespace beside it; then
adopted (the check is given the API socket). Healthy it passes; without the port forward
it fails, the fault named."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from support.handmade_net import HandMade
from support.results import failed_steps

import netprobe
from netprobe.check import Result, Status, run_check

pytestmark = pytest.mark.root


@dataclass
class Rootless:
    net: HandMade
    api: str


def _api(path: str, request: dict[str, object]) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode())
        sock.shutdown(socket.SHUT_WR)
        answer: dict[str, object] = json.loads(sock.makefile("rb").read() or b"{}")
    return answer


def _start(argv: list[str], pids: list[int]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    pids.append(proc.pid)
    return proc


def _configured(net: HandMade, timeout: float = 10.0) -> bool:
    """slirp4netns --configure has given tap0 its address (it is ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "10.0.2.100/24" in net.ip("container", "-4", "addr", "show"):  # tap0 comes later
            return True
        time.sleep(0.05)
    return False


def _made(net: HandMade, pids: list[int], *, forward: bool) -> Rootless:
    for host in ("host", "container", "neighbour", "sibling"):
        net.ns(host)
    net.veth("neighbour", "eth0", "sibling", "eth0")
    net.addr("neighbour", "eth0", "10.89.0.2/24")
    net.addr("sibling", "eth0", "10.89.0.1/24")
    # the container's process, and slirp4netns started for its pid from the host side
    sleeper = net.process("container", ["sleep", "600"])  # in there before its pid is given
    pids.append(sleeper.pid)
    api = os.path.join(net.dir, "slirp.sock")
    _start(["ip", "netns", "exec", net.hosts["host"], "slirp4netns", "--configure",
            "--mtu=65520", "--api-socket", api, str(sleeper.pid), "tap0"], pids)  # fmt: skip
    assert _configured(net), net.ip("container", "addr")
    if forward:
        forward_8080 = {"proto": "tcp", "host_addr": "127.0.0.1", "host_port": 8080,
                        "guest_port": 80}  # fmt: skip
        answer = _api(api, {"execute": "add_hostfwd", "arguments": forward_8080})
        assert "return" in answer, answer
    return Rootless(net, api)


@pytest.fixture
def made(request: pytest.FixtureRequest) -> Iterator[Rootless]:
    if subprocess.run(["which", "slirp4netns"], capture_output=True).returncode != 0:
        pytest.skip("needs slirp4netns")
    pids: list[int] = []
    with HandMade() as net:
        try:
            yield _made(net, pids, forward=getattr(request, "param", True))
        finally:
            for pid in reversed(pids):  # by pid, before HandMade removes the namespaces
                try:
                    os.kill(pid, signal.SIGTERM)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass


def _run(made: Rootless) -> Result:
    with netprobe.build(made.net.spec("rootless-by-hand")) as topo:
        return run_check("rootless", topo, engines="slirp4netns", slirp_api=made.api)


def test_rootless_passes_on_a_slirp4netns_started_by_hand(made: Rootless) -> None:
    result = _run(made)
    assert result.status is Status.PASS, result.evidence()
    up = result.steps[1]
    assert up.name == "slirp4netns: the container's network comes up", result.evidence()
    assert "started by hand: adopted through" in up.detail and "10.0.2.100" in up.detail
    names = [s.name for s in result.steps]
    assert "slirp4netns: host 127.0.0.1:8080 (published) → container:80" in names
    assert "slirp4netns: container ✗ neighbour 10.89.0.2:80 (another namespace)" in names


@pytest.mark.sabotage
@pytest.mark.parametrize("made", [False], indirect=True, ids=["no port forward"])
def test_no_port_forward_by_hand_is_named(made: Rootless) -> None:
    result = _run(made)
    assert result.status is Status.FAIL, result.evidence()
    assert failed_steps(result) == ["slirp4netns: host 127.0.0.1:8080 (published) → container:80"]
    assert "port forward missing: slirp4netns publishes no host port 8080 (list_hostfwd: none" \
        in (result.diagnosis or ""), result.diagnosis  # fmt: skip
