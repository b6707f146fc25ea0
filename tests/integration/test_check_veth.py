"""The veth check passes on a healthy pair and names the fault on sabotaged ones."""

from __future__ import annotations

import pytest
from support.handmade import Handmade
from support.networks import veth_pair

import netprobe
from netprobe import Host, Interface, Spec, Veth
from netprobe.check import Status, run_check

pytestmark = pytest.mark.root


def _pair(b_mtu: int | None = None) -> Spec:
    return Spec("vethpair", hosts=[
        Host("va", interfaces=[Interface("eth0", Veth("vb:eth0"), mac="02:00:00:00:0a:01")]),
        Host("vb", interfaces=[Interface("eth0", mac="02:00:00:00:0b:01", mtu=b_mtu)]),
    ])


def test_veth_passes_on_its_reference_topology() -> None:
    result = run_check("veth")
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 14
    assert result.not_run == []  # every planned step was taken, under the name planned


def test_veth_fails_on_an_mtu_mismatch_and_says_so() -> None:
    result = run_check("veth", _pair(b_mtu=1280), a="va:eth0", b="vb:eth0")
    assert result.status is Status.FAIL
    assert result.diagnosis is not None and "MTU mismatch: vb:eth0 has MTU 1280" in \
        result.diagnosis
    failed = [s.name for s in result.steps if s.status is Status.FAIL]
    assert failed == ["full-size (1514 bytes) va:eth0 → vb:eth0"]
    assert result.not_run == []  # each end's own MTU names its full-size step
    assert result.explanation, result.evidence()
    assert result.explanation[0]["text"].startswith("vb:eth0 has MTU 1280, smaller than the "
                                                    "probe's 1500-byte packet")


def test_veth_fails_when_the_far_end_is_down() -> None:
    with netprobe.build(_pair()) as topo:
        topo.run("vb", ["ip", "link", "set", "eth0", "down"], check=True)
        result = run_check("veth", topo, a="va:eth0", b="vb:eth0")
    assert result.status is Status.FAIL
    assert result.diagnosis is not None and "vb:eth0 is down" in result.diagnosis
    assert result.explanation and result.explanation[0]["text"] == "vb:eth0 is down"


def test_unknown_parameters_are_bad_input() -> None:
    with pytest.raises(netprobe.SpecError, match="takes parameters a, b"):
        run_check("veth", port="x")


# The same on a pair made by hand with plain `ip` and adopted: nothing from a spec.


def test_veth_passes_on_a_handmade_pair(handmade: Handmade) -> None:
    params = veth_pair(handmade)
    result = run_check("veth", handmade.spec("hand-pair"), **params)
    assert result.status is Status.PASS, result.evidence()
    assert len(result.steps) == 14


def test_a_handmade_mtu_mismatch_is_named(handmade: Handmade) -> None:
    params = veth_pair(handmade)
    handmade.run("ip -n {vb} link set e0 mtu 1280")
    result = run_check("veth", handmade.spec("hand-pair"), **params)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None and "MTU mismatch: vb:e0 has MTU 1280" in result.diagnosis
    failed = [s.name for s in result.steps if s.status is Status.FAIL]
    assert failed == ["full-size (1514 bytes) va:e0 → vb:e0"]


def test_a_handmade_far_end_down_is_named(handmade: Handmade) -> None:
    params = veth_pair(handmade)
    handmade.run("ip -n {vb} link set e0 down")
    result = run_check("veth", handmade.spec("hand-pair"), **params)
    assert result.status is Status.FAIL
    assert result.diagnosis is not None and "vb:e0 is down" in result.diagnosis
