"""The rootless check passes with slirp4netns and pasta, names each sabotage (no port
forward, host loopback disabled, the user-mode network program killed, the container on a
kernel bridge), and runs without root: `netprobe check rootless` as user nobody builds its
topology in a user namespace netprobe creates, where veth, bridge and nft checks pass too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.results import failed_steps

from netprobe.check import Status, reference_path, run_check
from netprobe.library import _podman as pm
from netprobe.library import _usermode as um
from netprobe.topology import Topology, build, load
from netprobe.topology._kernel import cleanup, owner

pytestmark = pytest.mark.root

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"needs {tool}")


def test_passes_with_slirp4netns_pasta_and_podman() -> None:
    _need("slirp4netns")
    _need("pasta")
    result = run_check("rootless")
    assert result.status is Status.PASS, result.evidence()
    names = [s.name for s in result.steps if not s.name.startswith("podman:")]
    assert len(names) == 12
    assert any(n.startswith("pasta: host 127.0.0.1:8080 (published)") for n in names)
    podman = [s for s in result.steps if s.name.startswith("podman:")]
    if pm.refusal() is not None:
        assert podman[0].status is Status.SKIP, result.evidence()
        return
    assert len(podman) == 6 and all(s.status is Status.PASS for s in podman), result.evidence()
    assert "runtime runc, network slirp4netns" in podman[0].detail, podman[0].detail
    assert "podman: every process it left running is stopped" in [s.name for s in podman]


def _need_podman() -> None:
    why = pm.refusal()
    if why is not None:
        pytest.skip(f"rootless Podman cannot run here: {why}")


def test_the_podman_path_is_refused_where_uid_65534_cannot_open_tun() -> None:
    """Rootless Podman's slirp4netns runs as uid 65534: the refusal follows that user's own
    attempt to open /dev/net/tun (mode 0600 where udev did not make it)."""
    _need("setpriv")
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs /usr/bin/python3, which user nobody can run")
    code = "import os; os.close(os.open('/dev/net/tun', os.O_RDWR))"
    attempt = subprocess.run([*NOBODY, "/usr/bin/python3", "-c", code], cwd="/",
                             capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    refused = um.tun_refusal("uid 65534", others=True)
    assert (refused is None) == (attempt.returncode == 0), (refused, attempt.stderr)
    if refused is not None:
        assert "chmod 0666 /dev/net/tun" in refused and "run as root" not in refused


@pytest.mark.sabotage
@pytest.mark.parametrize(
    ("params", "fault", "failed"),
    [
        ({"publish": False}, "port forward missing: the Podman container publishes no host "
         "port 8080 (podman port: none", "podman: host 127.0.0.1:8080 (published)"),
        ({"host_loopback": False}, "host loopback disabled: Podman's slirp4netns runs with "
         "--disable-host-loopback", "podman: container → 10.0.2.2:8000"),
    ],
    ids=["no -p", "allow_host_loopback=false"],
)  # fmt: skip
def test_a_sabotaged_podman_container_fails_naming_the_fault(
    params: dict[str, bool], fault: str, failed: str
) -> None:
    _need_podman()
    result = run_check("rootless", engines="podman", **params)
    assert result.status is Status.FAIL, result.evidence()
    assert fault in (result.diagnosis or ""), result.evidence()
    bad = [s.name for s in result.steps if s.status is Status.FAIL]
    assert bad and all(failed in name for name in bad), bad
    assert not pm_leftovers(), pm_leftovers()


def pm_leftovers() -> list[str]:
    """Processes of a Podman path still running (they carry its mark)."""
    mark = f"{pm.MARK}=".encode()
    left = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/environ", "rb") as src:
                variables = src.read().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(mark) and b"netprobe-podman-" in v for v in variables):
            left.append(entry)
    return left


def test_podman_missing_is_a_skip_with_the_remedy(monkeypatch: pytest.MonkeyPatch) -> None:
    which = shutil.which
    monkeypatch.setattr(pm.shutil, "which", lambda t: None if t == "podman" else which(t))
    result = run_check("rootless", engines="podman")
    assert result.status is Status.PASS, result.evidence()
    skipped = [s for s in result.steps if s.status is Status.SKIP]
    assert [s.detail for s in skipped] == [
        "podman not installed: apt-get install podman runc uidmap busybox-static"
    ], result.evidence()


@pytest.mark.sabotage
@pytest.mark.parametrize(
    ("params", "fault", "failed"),
    [
        ({"publish": False}, "port forward missing: slirp4netns publishes no host port 8080",
         "host 127.0.0.1:8080 (published)"),
        ({"host_loopback": False}, "host loopback disabled: slirp4netns runs with "
         "--disable-host-loopback", "container → 10.0.2.2:8000"),
    ],
    ids=["no port forward", "host loopback disabled"],
)  # fmt: skip
def test_a_sabotaged_slirp4netns_fails_naming_the_fault(
    params: dict[str, bool], fault: str, failed: str
) -> None:
    _need("slirp4netns")
    result = run_check("rootless", engines="slirp4netns", **params)
    assert result.status is Status.FAIL, result.evidence()
    assert fault in (result.diagnosis or ""), result.evidence()
    bad = [s.name for s in result.steps if s.status is Status.FAIL]
    assert bad and all(failed in name for name in bad), bad


@pytest.mark.sabotage
def test_slirp4netns_killed_fails_naming_it() -> None:
    """slirp4netns is killed as soon as it starts: the container's network fails, and the
    diagnosis says it is not running."""
    _need("slirp4netns")
    with build(load(reference_path("rootless.yaml"))) as topo:
        stop = threading.Event()
        threading.Thread(target=_kill_slirp_once_up, args=(topo, stop), daemon=True).start()
        try:
            result = run_check("rootless", topo, engines="slirp4netns")
        finally:
            stop.set()
    assert result.status is Status.FAIL, result.evidence()
    assert "slirp4netns is not running (killed by signal 9)" in (result.diagnosis or "")


def _kill_slirp_once_up(topo: Topology, stop: threading.Event) -> None:
    while not stop.wait(0.001):
        for proc in topo.spawned:
            if "slirp4netns" in str(proc.args) and proc.poll() is None:
                proc.kill()
                return


@pytest.mark.sabotage
def test_a_container_on_a_kernel_bridge_fails_naming_it() -> None:
    _need("slirp4netns")
    with build(load(reference_path("rootless.yaml"))) as topo:
        topo.run("host", ["ip", "link", "add", "br0", "type", "bridge"], check=True)
        ns = topo.namespace("container")
        assert ns is not None
        topo.run("host", ["ip", "link", "add", "vc", "type", "veth", "peer", "name", "eth0",
                          "netns", ns], check=True)  # fmt: skip
        topo.run("host", ["ip", "link", "set", "vc", "master", "br0"], check=True)
        result = run_check("rootless", topo, engines="slirp4netns")
    assert result.status is Status.FAIL, result.evidence()
    assert "the container is wired to a kernel bridge" in (result.diagnosis or "")
    assert "a port of bridge br0" in (result.diagnosis or "")


@pytest.mark.sabotage
@pytest.mark.parametrize("engine", ["slirp4netns", "pasta", "podman"])
def test_a_host_side_routing_to_the_neighbour_fails_naming_it(engine: str) -> None:
    """A veth from the host side to the neighbour namespace and a route to 10.89.0.2
    through it: the container reaches the neighbour through its user-mode network, and
    the negative step, able to fail, fails with the host side's route as the reason."""
    if engine == "podman":
        _need_podman()
    else:
        _need(engine)
    with build(load(reference_path("rootless.yaml"))) as topo:
        ns = topo.namespace("neighbour")
        assert ns is not None
        topo.run("host", ["ip", "link", "add", "nb0", "type", "veth", "peer", "name", "nb1",
                          "netns", ns], check=True)  # fmt: skip
        topo.run("host", ["ip", "addr", "add", "10.89.9.1/24", "dev", "nb0"], check=True)
        topo.run("host", ["ip", "link", "set", "nb0", "up"], check=True)
        topo.run("neighbour", ["ip", "addr", "add", "10.89.9.2/24", "dev", "nb1"], check=True)
        topo.run("neighbour", ["ip", "link", "set", "nb1", "up"], check=True)
        topo.run("host", ["ip", "route", "add", "10.89.0.2/32", "via", "10.89.9.2"], check=True)
        result = run_check("rootless", topo, engines=engine)
    assert result.status is Status.FAIL, result.evidence()
    assert failed_steps(result) == [
        f"{engine}: container ✗ neighbour 10.89.0.2:80 (another namespace)"
    ], result.evidence()
    assert (
        f"the host side routes to 10.89.0.2: the container reaches it through {engine}"
        in (result.diagnosis or "")
    ), result.evidence()
    bad = next(s for s in result.steps if s.status is Status.FAIL)
    assert "via 10.89.9.2 dev nb0" in bad.detail and "accepted 1 connection(s) from 10.89.9.1" \
        in bad.detail, bad.detail  # fmt: skip


def test_the_neighbour_step_proves_nothing_when_the_engine_carries_nothing() -> None:
    """With the host's loopback out of reach the failed connect to the neighbour is no
    evidence: INCONCLUSIVE, saying why, never a PASS."""
    _need("slirp4netns")
    result = run_check("rootless", engines="slirp4netns", host_loopback=False)
    step = next(s for s in result.steps if "neighbour" in s.name)
    assert step.status is Status.INCONCLUSIVE, result.evidence()
    assert "carried nothing to the host's loopback service before the attempt" in step.detail
    assert "host side: ip route get 10.89.0.2: 10.89.0.2 via 192.0.2.254 dev up0" \
        in step.detail, step.detail  # fmt: skip


def test_the_podman_directory_is_in_the_runs_own() -> None:
    """Podman's state lives in the run's private directory, which `netprobe clean` finds
    (and removes) after a kill, reachable by uid 65534, and is gone after."""
    with build(load(reference_path("rootless.yaml"))) as topo:
        top = owner.private_dir(topo.runid)
        with pm.private(topo.runid) as private:
            assert os.path.dirname(private) == top
            assert os.stat(top).st_mode & 0o777 == 0o711
            assert f"directory {top}" in cleanup.leftovers(), cleanup.leftovers()
        assert not os.path.exists(private)
    assert not os.path.exists(top)


@pytest.fixture(scope="module")
def nobody_python() -> Iterator[Path]:
    """A Python user nobody can run, seeing this venv's packages (netprobe included)."""
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux)")
    base = Path("/usr/bin/python3")
    if not base.exists():
        pytest.skip("needs /usr/bin/python3 to make a venv user nobody can run")
    where = Path(tempfile.mkdtemp(prefix="netprobe-nobody-venv-"))  # pytest's is root's only
    try:
        yield _venv(base, where)
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _venv(base: Path, where: Path) -> Path:
    venv = where / "venv"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = sysconfig.get_paths()["purelib"]
    inner = next(venv.glob("lib/python3*/site-packages"))
    (inner / "netprobe-venv.pth").write_text(f"import site; site.addsitedir({site!r})\n")
    for path in (where, *where.rglob("*")):
        path.chmod(path.stat().st_mode | 0o555 if path.is_dir() else path.stat().st_mode | 0o444)
    done = subprocess.run([*NOBODY, str(venv / "bin/python"), "-c", "import netprobe.cli"],
                          cwd="/", capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"user nobody cannot read this checkout: {done.stderr[-200:]}")
    return venv / "bin/python"


def _as_nobody(python: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"}
    return subprocess.run([*NOBODY, str(python), *argv], cwd="/", env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


def _nobody_opens_tun(python: Path) -> bool:
    """Whether uid 65534, in a user namespace of its own as netprobe makes it, can open
    /dev/net/tun (its mode for others decides: 0666 where udev made it, 0600 without)."""
    code = ("from netprobe import _userns\n_userns.enter()\nimport os\n"
            "os.close(os.open('/dev/net/tun', os.O_RDWR))\n")  # fmt: skip
    return _as_nobody(python, "-c", code).returncode == 0


def test_the_cli_runs_rootless_as_nobody(nobody_python: Path) -> None:
    _need("slirp4netns")
    done = _as_nobody(nobody_python, "-m", "netprobe.cli", "check", "rootless", "--no-bundle",
                      "-v")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[FAIL]" not in done.stdout, done.stdout
    for engine in ("slirp4netns", "pasta"):
        if _nobody_opens_tun(nobody_python):
            assert f"[PASS] {engine}: the container's network comes up" in done.stdout
        else:  # no TAP for it: skipped, saying why, after what it could prove without one
            assert f"[SKIP] {engine}: the container's network" in done.stdout, done.stdout
            assert f"[PASS] {engine}: the container has no kernel link" in done.stdout
    if not _nobody_opens_tun(nobody_python):
        assert "cannot open /dev/net/tun (Permission denied): chmod 0666" in done.stdout
    # Podman as another user cannot be started from netprobe's own user namespace
    assert "[SKIP] podman: a container started by rootless Podman" in done.stdout, done.stdout


def test_other_checks_as_nobody_need_root_in_one_line(nobody_python: Path) -> None:
    done = _as_nobody(nobody_python, "-m", "netprobe.cli", "check", "veth", "--no-bundle")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netprobe: error: netprobe needs root"), lines


def test_topologies_build_and_checks_pass_in_a_user_namespace(nobody_python: Path) -> None:
    """As uid 65534 in a user namespace it creates, netprobe builds the veth, bridge, nft
    and TAP (nat: a VM's TAP behind an nft NAT gateway) and AF_PACKET (every capture)
    topologies, and their checks pass."""
    code = (
        "from netprobe import _userns\n"
        "_userns.enter()\n"
        "from netprobe.check import run_check\n"
        "for name in ('veth', 'bridge', 'nat'):\n"
        "    r = run_check(name)\n"
        "    print(name, r.status.value, r.summary)\n"
    )
    done = _as_nobody(nobody_python, "-c", code)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    tap = _nobody_opens_tun(nobody_python)
    for name in ("veth", "bridge", "nat"):
        if name == "nat" and not tap:  # the VM's TAP cannot be made: skipped, saying so
            assert any(line.startswith("nat SKIP this machine lacks tap: EACCES") for line in lines)
            continue
        assert any(line.startswith(f"{name} PASS") for line in lines), done.stdout


def test_root_can_still_run_it_outside_any_user_namespace() -> None:
    done = subprocess.run([sys.executable, "-m", "netprobe.cli", "check", "rootless",
                           "--no-bundle", "--engines", "slirp4netns"],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    if shutil.which("slirp4netns") is None:
        pytest.skip("needs slirp4netns")
    assert done.returncode == 0, done.stdout + done.stderr
