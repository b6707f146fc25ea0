"""Adopted namespaces made by hand with plain `ip`: netprobe uses the interfaces that are
there, adds only what the spec gives, and leaves every namespace as it found it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import netprobe
from netprobe import Host, Interface, Route, Spec
from netprobe.expect import at_exactly, expect
from netprobe.topology._kernel import owner
from netprobe.traffic import ethernet

pytestmark = pytest.mark.root

_CHILD = """
import sys, time, netprobe
topo = netprobe.build(netprobe.load(sys.argv[1]))
print("ready", topo.runid, flush=True)
time.sleep(120)
"""
_CLI = "from netprobe.cli import main; main()"


def ip(*argv: str, check: bool = True) -> str:
    """`ip ARGV…` as a person types it; its output."""
    proc = subprocess.run(["ip", *argv], capture_output=True, text=True, check=False)
    if check and proc.returncode:
        raise AssertionError(f"ip {' '.join(argv)}: {proc.stderr}")
    return proc.stdout


def state(ns: str) -> dict[str, str]:
    """The namespace's links, addresses and routes, exactly as `ip -j` prints them."""
    return {
        what: ip("-n", ns, "-j", *argv)
        for what, argv in (
            ("links", ["link"]),
            ("addresses", ["addr"]),
            ("routes", ["route"]),
            ("routes6", ["-6", "route"]),
        )
    }


@dataclass(frozen=True)
class Pair:
    """Two namespaces made by hand, joined by a veth named eth0 at both ends."""

    a: str
    b: str

    def both(self) -> dict[str, dict[str, str]]:
        return {self.a: state(self.a), self.b: state(self.b)}


@pytest.fixture
def pair() -> Iterator[Pair]:
    """adx-HEX-a and adx-HEX-b: eth0 up at both ends, a:eth0 holding 10.9.0.1/24 and a
    route of its own, a second pair (e1) down; removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    made = Pair(f"adx-{tag}-a", f"adx-{tag}-b")
    for ns in (made.a, made.b):
        ip("netns", "add", ns)
    try:
        ip("-n", made.a, "link", "add", "eth0", "type", "veth", "peer", "eth0", "netns", made.b)
        ip("-n", made.a, "link", "add", "e1", "type", "veth", "peer", "e1", "netns", made.b)
        # Up once, as a real link has been: the first up attaches the default qdisc, and
        # no way back to the never-up "noop" exists, so from a never-up link that stays.
        for updown in ("up", "down"):
            ip("-n", made.a, "link", "set", "e1", updown)
        for ns in (made.a, made.b):
            for key in ("accept_dad", "router_solicitations"):
                ip("netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.eth0.{key}=0")
            ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", made.a, "addr", "add", "10.9.0.1/24", "dev", "eth0")
        ip("-n", made.a, "route", "add", "10.78.0.0/16", "via", "10.9.0.2")
        _settle(made)
        yield made
    finally:
        for ns in (made.a, made.b):
            ip("netns", "del", ns, check=False)


def _settle(pair: Pair) -> None:
    """Until the kernel has finished what bringing eth0 up starts (operstate, the IPv6
    link-local address and its route), so that a snapshot taken now stays valid."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        views = [state(ns) for ns in (pair.a, pair.b)]
        if all(
            '"operstate":"UP"' in v["links"] and "fe80::/64" in v["routes6"] for v in views
        ):
            return
        time.sleep(0.02)
    raise AssertionError(f"hand-made eth0 never settled: {views}")


def _spec(pair: Pair, name: str = "adoptuse") -> Spec:
    return Spec(
        name,
        hosts=[
            Host(
                "a",
                adopt=pair.a,
                interfaces=[Interface("eth0", addresses=["10.9.0.1/24", "10.9.0.5/24"])],
                routes=[
                    Route("10.77.0.0/16", via="10.9.0.6"),
                    Route("10.78.0.0/16", via="10.9.0.2"),  # there already: left alone
                ],
            ),
            Host("b", adopt=pair.b, interfaces=[Interface("eth0", addresses=["10.9.0.6/24"])]),
        ],
    )


def test_an_existing_veth_is_a_port_and_teardown_removes_exactly_the_additions(
    pair: Pair,
) -> None:
    before = pair.both()
    with netprobe.build(_spec(pair)) as topo:
        assert topo.run("a", ["ping", "-c1", "-W2", "-I", "10.9.0.5", "10.9.0.6"]).ok
        frame = ethernet(topo.mac("a:eth0"), "ff:ff:ff:ff:ff:ff")
        outcome = expect(topo, frame, "a:eth0", at_exactly(["b:eth0"]), timeout=1)
        assert outcome.passed, outcome.evidence()
        routes = ip("-n", pair.a, "route")
        assert "10.77.0.0/16 via 10.9.0.6" in routes and "10.78.0.0/16 via 10.9.0.2" in routes
        kept = [e for e in topo.record.undo if "address" in e]
        assert [e["address"] for e in kept] == ["10.9.0.5/24", "10.9.0.6/24"]  # not .1
    assert pair.both() == before  # byte for byte: links, addresses, routes
    report = topo.teardown_report
    assert report is not None and report.removed_links == []
    assert report.removed_additions == {
        pair.a: ["route 10.77.0.0/16 via 10.9.0.6", "address 10.9.0.5/24 on eth0"],
        pair.b: ["address 10.9.0.6/24 on eth0"],
    }
    assert "10.9.0.1/24" in ip("-n", pair.a, "addr", "show", "eth0")  # was there: stays


def test_mtu_and_up_are_set_only_when_asked_and_put_back(pair: Pair) -> None:
    before = pair.both()
    spec = Spec(
        "adoptmtu",
        hosts=[
            Host("a", adopt=pair.a, interfaces=[Interface("eth0", mtu=1400), Interface("e1")]),
            Host("b", adopt=pair.b, interfaces=[Interface("e1", up=False)]),  # down already
        ],
    )
    with netprobe.build(spec) as topo:
        links = {link["ifname"]: link for link in json.loads(ip("-n", pair.a, "-j", "link"))}
        assert links["eth0"]["mtu"] == 1400 and "UP" in links["e1"]["flags"]
        assert [e for e in topo.record.undo if e["ns"] == pair.b] == []  # nothing to change
    report = topo.teardown_report
    assert report is not None
    assert report.restored == {pair.a: ["e1 down", "mtu 1500 on eth0"]}
    assert pair.both() == before


def test_a_missing_interface_is_a_clean_error_leaving_nothing(
    pair: Pair, tmp_path: Path
) -> None:
    before = pair.both()
    spec = Spec(
        "adoptmiss",
        hosts=[Host("a", adopt=pair.a, interfaces=[Interface("eth9", addresses=["10.9.9.1/24"])])],
    )
    with pytest.raises(netprobe.TopologyError, match=r"eth9 .*does not exist in namespace"):
        netprobe.build(spec)
    path = tmp_path / "miss.yaml"
    path.write_text(
        f"hosts:\n  a:\n    adopt: {pair.a}\n    interfaces:\n      eth9:\n"
        f"  b:\n    interfaces:\n      v0: {{veth: a:v0}}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", _CLI, "topo", "up", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "eth9" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert pair.both() == before
    assert not [r for r in owner.read_records() if r.name in ("adoptmiss", "miss")]


def test_a_route_the_namespace_has_already_is_never_taken_over(pair: Pair) -> None:
    before = pair.both()
    spec = Spec(
        "adoptclash",
        hosts=[
            Host(
                "a",
                adopt=pair.a,
                interfaces=[Interface("eth0", addresses=["10.9.0.5/24"])],
                routes=[Route("10.78.0.0/16", via="10.9.0.6")],  # a:eth0 has one via .2
            )
        ],
    )
    with pytest.raises(netprobe.TopologyError, match="does not replace routes"):
        netprobe.build(spec)
    assert pair.both() == before  # the user's route is still there, the address gone


def test_an_existing_link_is_never_removed_even_tagged_like_netprobe_s(pair: Pair) -> None:
    # A persistent run's id is its name, so this alias is exactly what its own links carry.
    name = f"np_adopt_{uuid.uuid4().hex[:4]}"
    ip("-n", pair.a, "link", "add", "np9", "type", "veth", "peer", "np9b")
    ip("-n", pair.a, "link", "set", "np9", "alias", owner.link_tag(owner.persistent_runid(name)))
    for updown in ("up", "down"):  # up once, as e1 (see the fixture)
        ip("-n", pair.a, "link", "set", "np9", updown)
    before = pair.both()
    spec = Spec(
        name,
        hosts=[
            Host("a", adopt=pair.a, interfaces=[Interface("np9", addresses=["10.8.0.1/24"])]),
            Host("in", interfaces=[Interface("v0", netprobe.Veth("a:v1"))]),
        ],
    )
    netprobe.build(spec, persistent=True).keep()
    try:
        shown = subprocess.run(
            [sys.executable, "-c", _CLI, "topo", "show", name], capture_output=True, text=True
        ).stdout
        assert "adopted: + marks what netprobe added" in shown
        assert "+10.8.0.1/24" in shown and "+ v1" in shown and "  np9 " in shown
    finally:
        proc = subprocess.run(
            [sys.executable, "-c", _CLI, "topo", "down", name], capture_output=True, text=True
        )
    assert proc.returncode == 0, proc.stderr
    assert f"removed from adopted namespace {pair.a}: address 10.8.0.1/24 on np9, link v1" in (
        proc.stdout
    )
    assert pair.both() == before  # np9 and np9b, alias and all, are still there


def test_sigkill_while_up_then_clean_restores_the_adopted_namespaces(
    pair: Pair, tmp_path: Path
) -> None:
    before = pair.both()
    path = tmp_path / "adoptkill.yaml"
    path.write_text(f"""
name: adoptkill
hosts:
  a:
    adopt: {pair.a}
    interfaces:
      eth0: {{addresses: [10.9.0.1/24, 10.9.0.5/24, "fd09::5/64"], mtu: 1300}}
      e1:
      v0: {{veth: inner:eth0, addresses: [10.10.0.1/24]}}
    routes:
      - {{to: 10.77.0.0/16, via: 10.9.0.6}}
      - {{to: 10.79.0.0/16, dev: eth0}}
    sysctls: {{net.ipv4.ip_forward: 1}}
  b:
    adopt: {pair.b}
    interfaces:
      eth0: {{addresses: [10.9.0.6/24]}}
  inner:
""")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    ready = child.stdout.readline().split()
    assert ready and ready[0] == "ready"
    assert "10.9.0.5/24" in ip("-n", pair.a, "addr", "show", "eth0")
    child.kill()
    child.wait()
    assert pair.both() != before  # the kill left its additions behind
    report = netprobe.clean()
    assert ready[1] in report.removed_runs
    assert pair.both() == before
    removed = report.removed_additions[pair.a]
    assert "address 10.9.0.5/24 on eth0" in removed and "address fd09::5/64 on eth0" in removed
    assert "route 10.79.0.0/16 dev eth0" in removed and "link v0" in removed
    assert "address 10.9.0.1/24 on eth0" not in removed
    restored = {"net.ipv4.ip_forward = 0", "e1 down", "mtu 1500 on eth0"}
    assert set(report.restored[pair.a]) == restored

