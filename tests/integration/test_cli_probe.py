"""`netprobe probe` on the command line: exit codes, JSON, bad input, and a process start
that stays free of scapy."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.site import Site, build_site

pytestmark = pytest.mark.root

WATCHED = """
import atexit, sys
atexit.register(lambda: print("SCAPY" if any(m.startswith("scapy") for m in sys.modules)
                              else "NO-SCAPY", file=sys.stderr))
sys.argv = ["netprobe", *sys.argv[1:]]
from netprobe.cli import main
main()
"""


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    made = build_site()
    try:
        yield made
    finally:
        made.remove()


def _netprobe(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WATCHED, *argv], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_a_delivered_probe_exits_0_without_loading_scapy(site: Site) -> None:
    done = _netprobe("probe", site.ns["a"], "10.70.3.2", "tcp/22")
    assert done.returncode == 0, done.stderr
    assert "DELIVERED AND ANSWERED" in done.stdout
    assert done.stderr.strip().endswith("NO-SCAPY")


def test_a_failed_probe_exits_1_with_its_json(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    done = _netprobe("probe", site.ns["a"], "10.70.3.2", "udp/5353", "--json", str(out))
    assert done.returncode == 1, done.stderr
    document = json.loads(out.read_text())
    assert document["ok"] is False and document["probe"]["ending"] == "REFUSED"
    assert document["explanation"]["causes"], document


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["10.70.3.2"], "usage: netprobe probe"),
        (["NS_A", "10.70.3.2", "sctp/9"], "expected icmp, tcp/PORT or udp/PORT"),
        (["NS_A", "10.70.3.2", "tcp/0"], "needs a port 1..65535"),
        (["NS_A", "not-an-ip"], "is not an IP address"),
        (["np-no-such-namespace", "10.70.3.2"], "no namespace named"),
        (["NS_A", "192.0.2.1"], "held by no namespace"),
        (["NS_A", "10.70.3.2", "--json", "/proc/no/such/dir/x.json"], "--json"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(site: Site, argv: list[str], words: str) -> None:
    done = _netprobe("probe", *[site.ns["a"] if a == "NS_A" else a for a in argv])
    assert done.returncode == 2, done.stdout + done.stderr
    message = [line for line in done.stderr.splitlines() if line != "NO-SCAPY"]
    assert len(message) == 1 and words in message[0], done.stderr
    assert "Traceback" not in done.stderr
