"""A failing expectation explains itself in the pytest report: the selftest's NAT
network (tests/peer/conftest.py) sabotaged three ways, each test FAILs, and its report's
"netprobe explanation" names the real cause first, though the test's own `with` block
undid the sabotage before pytest made the report. A passing test explains nothing, an
error while explaining is one note, and the option turns it all off."""

from __future__ import annotations

import re

import pytest
from peer.conftest import SPEC

pytestmark = pytest.mark.root

USER = f'''
import contextlib
import pytest
import netprobe
import netprobe.explain
from netprobe.errors import CheckFailed
from netprobe.expect import ROUTED, Match, at, expect, expect_from_host, prepare
from netprobe.traffic import udp

SPEC = {SPEC!r}
MASQUERADE = """table ip nat {{
  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; %s }}
}}"""
DNAT = """table ip nat {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 10.0.2.1 udp dport 2000 dnat to 10.0.1.99:%d
  }}
}}"""


@pytest.fixture(scope="module")
def nat():
    with netprobe.build(netprobe.loads(SPEC)) as topo:
        prepare(topo)
        yield topo


@contextlib.contextmanager
def sysctl(topo, key, value):
    before = topo.sysctl("ns0", key)
    topo.run("ns0", ["sysctl", "-q", f"{{key}}={{value}}"], check=True)
    try:
        yield
    finally:
        topo.run("ns0", ["sysctl", "-q", f"{{key}}={{before}}"], check=True)


@contextlib.contextmanager
def ruleset(topo, rules):
    topo.run("ns0", ["nft", "-f", "-"], input=rules, check=True)
    try:
        yield
    finally:
        topo.run("ns0", ["nft", "delete", "table", "ip", "nat"])
        topo.run("ns0", ["conntrack", "-F"])


def mac(topo, host, ifname):
    return topo.live(host).interface(ifname).mac


def from_ns2(topo, dst, dport=9, sport=40000):
    return udp(mac(topo, "ns2", "eth0"), mac(topo, "ns0", "veth1"), "10.0.2.99", dst,
               sport=sport, dport=dport)


def rewritten(**fields):
    return Match(ROUTED.mask, fields)


def test_forwarding_off(nat):
    with sysctl(nat, "net.ipv4.conf.veth1.forwarding", "0"):
        expect_from_host(nat, "ns2", "icmp", "10.0.1.99", where=at("ns1:eth0"),
                         reply="echo-reply").assert_passed()


def test_masquerade_missing(nat):
    frame = from_ns2(nat, "10.0.1.99")
    with ruleset(nat, MASQUERADE % ""):
        expect(nat, frame, "ns2:eth0", at("ns1:eth0"),
               match=rewritten(**{{"ip.src": "10.0.1.1"}})).assert_passed()


def test_dnat_port_changed(nat):
    frame = from_ns2(nat, "10.0.2.1", 2000, sport=40001)
    with ruleset(nat, DNAT % 2001):
        expect(nat, frame, "ns2:eth0", at("ns1:eth0"),
               match=rewritten(**{{"ip.dst": "10.0.1.99", "l4.dport": 2000}})).assert_passed()


def test_passing_pays_nothing(nat, monkeypatch):
    called = []
    monkeypatch.setattr(netprobe.explain, "explain", lambda *a, **k: called.append(a))
    monkeypatch.setattr(netprobe.explain, "explain_probe", lambda *a, **k: called.append(a))
    outcome = expect(nat, from_ns2(nat, "10.0.1.99"), "ns2:eth0", at("ns1:eth0"), match=ROUTED)
    outcome.assert_passed()
    host = expect_from_host(nat, "ns2", "icmp", "10.0.1.99", where=at("ns1:eth0"),
                            reply="echo-reply")
    host.assert_passed()
    assert called == [] and outcome.explanation is None and host.explanation is None


def test_an_explanation_error_is_a_note(nat, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("the trace broke")

    monkeypatch.setattr(netprobe.explain, "explain", boom)
    with sysctl(nat, "net.ipv4.conf.veth1.forwarding", "0"):
        expect(nat, from_ns2(nat, "10.0.1.99"), "ns2:eth0", at("ns1:eth0"),
               match=ROUTED).assert_passed()


def test_a_few_explained_a_test(nat):
    frame = from_ns2(nat, "10.0.1.99")
    with sysctl(nat, "net.ipv4.conf.veth1.forwarding", "0"):
        for _ in range(3):
            with pytest.raises(CheckFailed) as failed:
                expect(nat, frame, "ns2:eth0", at("ns1:eth0"), match=ROUTED).assert_passed()
            assert failed.value.result.explanation.top is not None
        expect(nat, frame, "ns2:eth0", at("ns1:eth0"), match=ROUTED).assert_passed()
'''

FORWARDING = (
    "forwarding disabled on ns0 for what arrives on veth1 (net.ipv4.conf.veth1.forwarding = 0)"
)
TOP = {
    "test_forwarding_off": FORWARDING,
    "test_masquerade_missing": (
        "the probe was delivered, not dropped: it reached ns1:eth0 with ip.src: expected "
        "10.0.1.1, seen 10.0.2.99 (ns0 has no masquerade/SNAT rule)"
    ),
    "test_dnat_port_changed": (
        "the probe was delivered, not dropped: it reached ns1:eth0 with l4.dport: expected "
        "2000, seen 2001 (ns0's DNAT rule for dport 2000 is `ip daddr 10.0.2.1 udp dport "
        "2000 dnat to 10.0.1.99:2001`)"
    ),
}


def sections(output: str) -> dict[str, str]:
    """Each failed test's "netprobe explanation" section, by test name."""
    found = {}
    parts = re.split(r"\n_{3,} (\w+) _{3,}\n", output)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        head = re.search(r"-{3,} netprobe explanation -{3,}\n(.*?)(?=\n[-=_]{3,}|\Z)", body, re.S)
        if head:
            found[name] = head.group(1)
    return found


def causes(section: str) -> list[str]:
    """The causes of a section, in their order."""
    return re.findall(r"^\[\d\.\d\d\] (.*)$", section, re.M)


def test_each_sabotage_fails_with_its_real_cause_first(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=5)
    out = result.stdout.str()
    found = sections(out)
    for test, top in TOP.items():
        assert test in found, out
        assert causes(found[test])[:1] == [top], found[test]
    # the failure itself is there too, evidence and all, before the explanation
    result.stdout.fnmatch_lines(["*test_forwarding_off*", "*FAIL: the probe never reached*"])
    assert "test_passing_pays_nothing" not in found
    assert found["test_an_explanation_error_is_a_note"].strip() == (
        "note: explaining failed: RuntimeError: the trace broke"
    )
    assert "FAIL: probe 1 never reached ns1:eth0" in out
    assert found["test_a_few_explained_a_test"].strip().startswith(
        "note: not explained: only the first 3 failures of a test are"
    )


@pytest.mark.parametrize("off", [["--netprobe-no-explain"], ["-o", "netprobe_explain=false"]])
def test_the_option_turns_it_off(pytester: pytest.Pytester, off: list[str]) -> None:
    pytester.makepyfile(test_user=USER)
    result = pytester.runpytest_subprocess(
        "-q", "-p", "no:cacheprovider", "-k", "forwarding_off or masquerade", *off
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*FAIL: the probe never reached ns1:eth0*"])
    assert "netprobe explanation" not in result.stdout.str()
