"""`topo capture`: a line per frame, pcapng to a file or a pipe, ended cleanly by
Ctrl-C (SIGINT) or by `topo down`, with the count and the kernel's drops.

Each test uses labs of its own, under unique names, always taken down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest
from click.testing import CliRunner
from support.lab import CLI, lab, read_until

from netprobe.cli import cli
from netprobe.topology._kernel import netns, owner
from netprobe.topology._kernel.named import find_persistent

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def name(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with lab(tmp_path_factory.mktemp("labcapture")) as made:
        yield made


def capture(name: str, *argv: str) -> subprocess.Popen[bytes]:
    """`topo capture NAME ARGV…`, started and listening (it said so on stderr)."""
    proc = subprocess.Popen([*CLI, "topo", "capture", name, *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    said = read_until(proc.stderr.fileno(), b"\n")
    if b"capturing on" not in said:
        proc.kill()
        pytest.fail(f"capture did not start: {said!r}")
    return proc


def ping(name: str, count: int = 3) -> None:
    ns = owner.ns_name(owner.persistent_runid(name), "a")
    subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", "0.2", "-W5",
                    "10.77.0.2"], check=True, capture_output=True, timeout=30)


def interrupted(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    """Ctrl-C: its exit code and what it said on stderr after starting."""
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    return proc.returncode, err.decode()


def pcapng(path: Path) -> list[bytes]:
    with path.open("rb") as src:
        return [bytes(data) for _ts, data in dpkt.pcapng.Reader(src)]


def icmp_types(frames: list[bytes]) -> list[int]:
    return [dpkt.ethernet.Ethernet(f).data.data.type for f in frames]


def test_a_line_per_frame_and_ctrl_c_says_the_count(name: str) -> None:
    proc = capture(name, "a:eth0", "icmp")
    assert proc.stdout is not None
    ping(name)
    seen = b""
    while seen.count(b"\n") < 6:  # 3 requests out, 3 replies in
        more = read_until(proc.stdout.fileno(), b"\n", timeout=10)
        assert more, f"only {seen!r}"
        seen += more
    code, said = interrupted(proc)
    assert code == 0 and said == "6 frames captured, 0 dropped by kernel\n", said
    lines = seen.decode().splitlines()
    assert len(lines) == 6
    assert all(" Out " in line and "ICMP type 8" in line for line in lines[0::2]), lines
    assert all(" In " in line and "ICMP type 0" in line for line in lines[1::2]), lines


def test_pcapng_file_whole_after_ctrl_c(name: str, tmp_path: Path) -> None:
    out = tmp_path / "a.pcapng"
    proc = capture(name, "a:eth0", "icmp", "-w", str(out))
    ping(name)
    deadline = time.monotonic() + 20
    while len(pcapng(out)) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)  # written and flushed frame by frame
    code, said = interrupted(proc)
    assert code == 0 and said == "6 frames captured, 0 dropped by kernel\n", said
    frames = pcapng(out)
    assert icmp_types(frames) == [8, 0, 8, 0, 8, 0]
    with out.open("rb") as src:
        reader = dpkt.pcapng.Reader(src)
        assert reader.idb.opts[0].data == b"a:eth0"  # the port names the interface


def test_the_filter_is_in_force(name: str, tmp_path: Path) -> None:
    """Sabotage: a filter no ping matches takes nothing, however long it runs."""
    out = tmp_path / "none.pcapng"
    watch = capture(name, "a:eth0", "icmp", "-w", str(tmp_path / "all.pcapng"))
    proc = capture(name, "a:eth0", "udp", "-w", str(out))
    ping(name)
    deadline = time.monotonic() + 20
    while len(pcapng(tmp_path / "all.pcapng")) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)  # the pings passed the interface: the other capture saw them
    code, said = interrupted(proc)
    assert code == 0 and said == "0 frames captured, 0 dropped by kernel\n"
    assert pcapng(out) == []
    assert interrupted(watch)[1] == "6 frames captured, 0 dropped by kernel\n"


def test_pcapng_to_a_pipe(name: str) -> None:
    proc = capture(name, "b:eth0", "icmp", "-w", "-", "-c", "4")
    ping(name, count=2)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and err == b"4 frames captured, 0 dropped by kernel\n"
    frames = [bytes(d) for _ts, d in dpkt.pcapng.Reader(__import__("io").BytesIO(out))]
    assert icmp_types(frames) == [8, 0, 8, 0]  # b receives the requests, sends replies


def test_topo_down_ends_a_capture_and_removes_the_lab(tmp_path: Path) -> None:
    with lab(tmp_path) as name:
        proc = capture(name, "a:eth0")
        listed = find_persistent(name).processes
        assert [p["pid"] for p in listed] == [proc.pid] and listed[0]["name"] == "capture"
        down = CliRunner().invoke(cli, ["topo", "down", name])
        assert down.exit_code == 0, down.output
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and b"frames captured" in err
        prefix = owner.ns_prefix(owner.persistent_runid(name))
        assert not [n for n in netns.list_names() if n.startswith(prefix)]


def test_bad_input_is_one_line_exit_2(name: str, tmp_path: Path) -> None:
    runner = CliRunner()
    cases = {
        ("no-such-lab-lx", "a:eth0"): "no topology named",
        (name, "nohost:eth0"): "has no host 'nohost'",
        (name, "a:eth9"): "host a of lab",
        (name, "a-eth0"): "say where to capture as HOST:IF",
        (name, "a:eth0", "tcp", "port", "((("): "bad capture filter",
        (name, "a:eth0", "-w", str(tmp_path / "missing" / "x.pcapng")): "cannot write it",
    }
    for argv, said in cases.items():
        result = runner.invoke(cli, ["topo", "capture", *argv])
        assert result.exit_code == 2, (argv, result.output)
        assert said in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "missing").exists()
    assert find_persistent(name).processes == []  # none left listed in the record
    assert os.listdir(tmp_path) == []
