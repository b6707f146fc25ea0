"""Nothing netprobe starts outlives it: killed with SIGKILL at any moment, its workers,
listeners and daemons go with it, and `netprobe clean` leaves nothing of the run; a
SIGTERM tears everything down as Ctrl-C does.

Each run gets a session id of its own (NETPROBE_SESSION), which every process it starts
inherits in its environment and every run record carries: that is how these tests find
exactly what the run made, beside anything else running on the machine.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.paths import EXAMPLES

from netprobe import clean
from netprobe.topology import down, leftovers
from netprobe.topology._kernel import owner
from netprobe.traffic import _tracefs as tracefs

pytestmark = pytest.mark.root

NETPROBE = str(Path(sys.executable).with_name("netprobe"))


def start(args: list[str], session: str, **options: object) -> subprocess.Popen[bytes]:
    env = {**os.environ, owner.SESSION_ENV: session}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [NETPROBE, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **options
    )


def session_pids(session: str) -> set[int]:
    """Processes whose environment names the session (forks and execs alike)."""
    mark = f"{owner.SESSION_ENV}={session}".encode()
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as src:
                    if mark in src.read().split(b"\0"):
                        found.add(int(entry))
            except OSError:
                continue
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (zombies count as gone)."""
    out = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as src:
                if src.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X"):
                    out.add(pid)
        except OSError:
            continue
    return out


def until(condition: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


_OWNERLESS_BEFORE: set[str] = set()


@pytest.fixture(autouse=True)
def _ownerless_before() -> None:
    """Objects no record owns, there before the test: not the test's (a session that
    has no runs yet sees only those)."""
    _OWNERLESS_BEFORE.clear()
    _OWNERLESS_BEFORE.update(leftovers(session=f"none-{secrets.token_hex(3)}"))


def topology_up(session: str) -> bool:
    """A run of the session has a topology (a record with namespaces) up."""
    return any(r.session == session and r.namespaces for r in owner.read_records())


def runids(session: str) -> set[str]:
    return {r.runid for r in owner.read_records() if r.session == session}


def nothing_left(session: str, pids: set[int], runs: set[str] = frozenset()) -> list[str]:
    """What of the session survived: processes, records and their objects, trace
    instances of its processes, namespace mounts of its runs."""
    left = [f"process {p}" for p in alive(session_pids(session) | pids)]
    left += [x for x in leftovers(session=session) if x not in _OWNERLESS_BEFORE]
    with open("/proc/self/mountinfo") as src:
        mounts = [line.split()[4] for line in src]
    left += [f"mount {m}" for m in mounts for r in runs if m.startswith(f"/run/netns/np-{r}-")]
    for name in tracefs.instance_names():
        parts = name.split("-")
        if len(parts) > 2 and parts[2].isdigit() and int(parts[2]) in pids:
            left.append(f"trace instance {name}")
    return left


def test_check_all_killed_takes_its_workers_with_it() -> None:
    """SIGKILL of `check all` (the issue's reproduction): the workers stop on their own,
    let go of the caller's stdout, and `clean` leaves nothing."""
    session = f"kill-{secrets.token_hex(3)}"
    proc = start(["check", "all", "--no-bundle"], session)
    assert until(lambda: topology_up(session), 30)  # a worker is in the middle of a check
    pids = session_pids(session)
    proc.kill()
    proc.wait()
    assert proc.stdout is not None
    assert until(lambda: not alive(pids), 15), f"still running: {alive(pids)}"
    proc.stdout.read()  # EOF: no worker holds it any more
    clean()
    assert until(lambda: not nothing_left(session, pids), 5), nothing_left(session, pids)


@pytest.mark.parametrize("group", [False, True], ids=["parent", "process-group"])
def test_sigterm_tears_check_all_down(group: bool) -> None:
    session = f"term-{secrets.token_hex(3)}"
    proc = start(["check", "all", "--no-bundle"], session, start_new_session=True)
    assert until(lambda: topology_up(session), 30)
    pids = session_pids(session)
    if group:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.terminate()
    assert proc.wait(30) == 128 + signal.SIGTERM
    assert until(lambda: not nothing_left(session, pids), 10), nothing_left(session, pids)


def test_the_exposure_listener_dies_with_its_check() -> None:
    session = f"listen-{secrets.token_hex(3)}"
    proc = start(["check", "exposure", "--no-bundle"], session)

    def listener() -> set[int]:
        return {p for p in session_pids(session) - {proc.pid} if _comm(p).startswith("python")}

    assert until(listener, 30)
    pids = session_pids(session)
    proc.kill()
    proc.wait()
    assert until(lambda: not alive(pids), 10), f"still running: {alive(pids)}"
    clean()
    assert not nothing_left(session, pids)


def test_forty_random_kills_leave_nothing(tmp_path: Path) -> None:
    """A soak: checks, `check all` and `topo up`, each SIGKILLed at a random moment, then
    `netprobe clean`; nothing of any of them is left. (The seed is in the message.)"""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    name = f"soak{secrets.token_hex(3)}"
    lab = tmp_path / f"{name}.yaml"
    text = (EXAMPLES / "redblue.yaml").read_text()
    lab.write_text(text.replace("name: redblue", f"name: {name}"))
    scenarios = [
        ["check", "nat", "--no-bundle"],
        ["check", "docker-bridge", "--no-bundle"],
        ["check", "ovs-flows", "--no-bundle"],
        ["check", "exposure", "--no-bundle"],
        ["check", "all", "--no-bundle"],
        ["topo", "up", str(lab)],
    ]
    for run in range(40):
        session = f"soak-{secrets.token_hex(3)}"
        args = scenarios[run % len(scenarios)]
        proc = start(args, session)
        time.sleep(rng.uniform(0.2, 1.2))  # the moment of the kill is the variable here
        pids, runs = session_pids(session), runids(session)
        proc.kill()
        proc.wait()
        clean()
        if any(r.runid == name and r.persistent for r in owner.read_records()):
            down(name)  # it had finished: a lab left up is what `topo up` is for
        def settled(s: str = session, p: set[int] = pids, r: set[str] = runs) -> bool:
            return not nothing_left(s, p, r)

        # A worker killed mid-check tears its topology down itself: under load, give it
        # time (the wait ends as soon as nothing is left).
        left = [] if until(settled, 15) else nothing_left(session, pids, runs)
        owners = [(r.runid, r.pid, owner.is_alive(r)) for r in owner.read_records()
                  if r.session == session]
        assert not left, f"run {run} ({' '.join(args)}), seed {seed}: {left}; owners {owners}"


_GROUP_OWNER = """
import sys, time
from netprobe.topology._kernel import process
process.popen_group(["sh", "-c", "sleep 300 & sleep 300; wait"], runid=sys.argv[1])
print("ready", flush=True)
time.sleep(300)
"""


def test_a_process_group_dies_with_its_owner() -> None:
    """What the VM's vng is started with: its children (qemu) die with netprobe too."""
    runid = f"group-{secrets.token_hex(3)}"  # no run's id: nothing else is touched
    owner_proc = subprocess.Popen(
        [sys.executable, "-c", _GROUP_OWNER, runid], stdout=subprocess.PIPE, text=True
    )
    assert owner_proc.stdout is not None and owner_proc.stdout.readline() == "ready\n"
    from netprobe.topology._kernel import process

    assert until(lambda: len(process.tagged(runid)) >= 4, 10)  # guard, shell, two sleeps
    members = set(process.tagged(runid))
    owner_proc.kill()
    owner_proc.wait()
    assert until(lambda: not alive(members), 10), f"still running: {alive(members)}"


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as src:
            return src.read().strip()
    except OSError:
        return ""


def test_clean_removes_half_written_records_of_dead_processes() -> None:
    """A run killed between writing its record and putting it in place leaves
    RUNID.json.PID.tmp: clean removes it once PID is gone, and not before."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    os.makedirs(owner.RUN_DIR, exist_ok=True)
    stale = Path(owner.RUN_DIR) / f"{secrets.token_hex(3)}.json.{gone.pid}.tmp"
    live = Path(owner.RUN_DIR) / f"{secrets.token_hex(3)}.json.{os.getpid()}.tmp"
    for path in (stale, live):
        path.write_text("{")
    try:
        assert f"half-written record {stale}" in leftovers(session="nobody")
        clean()
        assert not stale.exists() and live.exists()
    finally:
        for path in (stale, live):
            path.unlink(missing_ok=True)


# A star of ten hosts, built without `with`: its teardown at exit runs from the atexit
# hook, where the thread pool that unmounts many namespaces at once is not to be had.
_UNGUARDED = """
import os, sys, time
import netprobe
from netprobe import Bridge, Host, Interface, Spec, Veth
ports = [Interface(f"p{i}", master="br0") for i in range(10)]
leaves = [Host(f"h{i}", interfaces=[Interface("eth0", Veth(f"switch:p{i}"))]) for i in range(10)]
topo = netprobe.build(Spec("unguarded", [Host("switch", [Interface("br0", Bridge()), *ports]),
                                         *leaves]))
print(topo.runid, flush=True)
if sys.argv[1] == "raise":
    raise RuntimeError("the script's own failure")
time.sleep(60)
"""


@pytest.mark.parametrize("how", ["raise", "sigterm"])
def test_a_topology_built_without_with_goes_when_its_script_dies(how: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _UNGUARDED, how], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    runid = proc.stdout.readline().strip()
    assert runid, proc.communicate(timeout=30)
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    mine = [n for n in os.listdir("/run/netns") if n.startswith(owner.ns_prefix(runid))]
    assert mine == [], err
    assert runid not in {r.runid for r in owner.read_records()}, err
    assert "Exception ignored in atexit" not in err, err


def test_clean_removes_the_trace_instance_of_a_killed_process() -> None:
    """`netprobe.clean()` does what `netprobe clean` does: a drop-trace instance whose
    process was killed goes too."""
    code = ("from netprobe.traffic import _tracefs as t\nimport time\n"
            "i = t.Instance('killedtrace')\ni.open()\nprint(i.name, flush=True)\n"
            "time.sleep(60)\n")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    name = proc.stdout.readline().strip()
    proc.kill()
    _, err = proc.communicate(timeout=30)
    if not name:
        pytest.skip(f"no trace instance could be made here: {err.strip()[-200:]}")
    assert name in tracefs.instance_names()
    report = clean()
    assert name in report.removed_trace_instances, report
    assert name not in tracefs.instance_names()
