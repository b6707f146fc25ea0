"""netem in the full-kernel VM tier (this machine's kernel has none): a link built with
`impair: {delay: 20ms}` adds 20 ms to ping's round trip, and one with `loss: 30%` loses
about that share of pings, measured in the guest against the same link unimpaired.

netem drops ARP as readily as ICMP, and a lost ARP request or reply stalls or drops
every packet queued behind it (a run lost 53% under loss 30%). The guest therefore pins
each end's address in the other's neighbour table first: no ARP at all, so only the echo
requests cross the lossy qdisc.

Skipped unless a kernel is given: `make vm-test`, or
`.venv/bin/python -m pytest tests/vm/test_vm_impair.py --netprobe-kernel auto`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from netprobe._privilege import is_root
from netprobe.vm import run_in_vm

# Run in the guest: each impairment built in turn, ping measured through it.
GUEST = r'''
import json, re, sys
import netprobe

LAB = """
name: vmimp
hosts:
  a:
    interfaces:
      eth0: {veth: {peer: "b:eth0"}, addresses: [10.80.0.1/24], %s}
  b:
    interfaces:
      eth0: {addresses: [10.80.0.2/24]}
"""
out = {}
for label, impair, argv in (
    ("plain", "", ["-c", "20", "-i", "0.05"]),
    ("delay", "impair: {delay: 20ms}", ["-c", "20", "-i", "0.05"]),
    ("loss", "impair: {loss: 30%}", ["-c", "300", "-i", "0.01", "-W", "1"]),
):
    with netprobe.build(netprobe.loads(LAB % impair)) as topo:
        for here, there, address in (("a", "b", "10.80.0.2"), ("b", "a", "10.80.0.1")):
            mac = topo.run(there, ["cat", "/sys/class/net/eth0/address"]).stdout.strip()
            topo.run(here, ["ip", "neigh", "replace", address, "lladdr", mac,
                            "nud", "permanent", "dev", "eth0"])
        got = topo.run("a", ["ping", "-q", "-n", *argv, "10.80.0.2"], timeout=120)
        sent, received = map(int, re.search(r"(\d+) packets transmitted, (\d+) received",
                                            got.stdout).groups())
        rtt = re.search(r"= [\d.]+/([\d.]+)/", got.stdout)
        qdisc = topo.run("a", ["tc", "-s", "qdisc", "show", "dev", "eth0"]).stdout.strip()
        dropped = re.search(r"dropped (\d+)", qdisc)
        out[label] = {"sent": sent, "received": received, "qdisc": qdisc,
                      "dropped": int(dropped.group(1)) if dropped else None,
                      "avg_ms": float(rtt.group(1)) if rtt else None}
json.dump(out, open(sys.argv[1], "w"))
'''


@pytest.fixture(scope="module")
def measured(netprobe_kernel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    if not is_root():
        pytest.skip("the VM tier needs root (the guest runs as the caller)")
    rwdir = tmp_path_factory.mktemp("vm-impair")
    (rwdir / "guest.py").write_text(GUEST)
    done = run_in_vm(netprobe_kernel, [sys.executable, str(rwdir / "guest.py"),
                                       str(rwdir / "out.json")], rwdir, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found: dict[str, dict] = json.loads((rwdir / "out.json").read_text())
    print(json.dumps(found, indent=1))
    return found


def test_netem_delay_adds_to_the_round_trip(measured: dict[str, dict]) -> None:
    plain, delayed = measured["plain"], measured["delay"]
    assert "netem" in delayed["qdisc"] and "delay 20" in delayed["qdisc"], delayed
    assert delayed["received"] == delayed["sent"] == 20
    added = delayed["avg_ms"] - plain["avg_ms"]
    assert 18 <= added <= 35, f"{added:.1f} ms added by a 20 ms delay ({measured})"


def test_netem_loss_loses_about_its_share(measured: dict[str, dict]) -> None:
    plain, lossy = measured["plain"], measured["loss"]
    assert plain["received"] == plain["sent"]  # unimpaired: nothing lost
    lost = 1 - lossy["received"] / lossy["sent"]
    # Every ping lost is one netem dropped (its count also holds any IPv6 ND it dropped).
    assert lossy["sent"] - lossy["received"] <= lossy["dropped"], lossy
    assert 0.18 <= lost <= 0.42, f"{lost:.0%} of {lossy['sent']} pings lost under loss 30%"
