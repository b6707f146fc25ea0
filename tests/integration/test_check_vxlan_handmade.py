"""The vxlan check on an overlay made by hand: two hypervisor namespaces joined by a veth
underlay, tenant bridges with `ip link add … type vxlan` ports and guests on them, then
adopted. Healthy it passes; each sabotage of test_check_vxlan.py, made by hand too, fails
with the same diagnosis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.handmade_net import HandMade
from support.results import diagnosis_of

import netprobe
from netprobe.check import Result, Status, run_check

pytestmark = [pytest.mark.root, pytest.mark.netprobe_requires("vxlan")]


@pytest.fixture
def hand() -> Iterator[HandMade]:
    with HandMade() as net:  # its namespaces are removed on the way out, pass or fail
        yield net


def _overlay(net: HandMade, *, far_vni: int = 100, remote: str = "192.168.100.2",
             underlay_mtu: int = 1500) -> None:
    """hv1 and hv2, each with VNIs 100 and 200 on bridges br100/br200, guests g1, g2 (VNI
    100) and b1, b2 (VNI 200) of MTU 1450. `far_vni`: hv2's id for tenant 100; `remote`:
    hv1's remote for it; `underlay_mtu`: both underlay ends (the tunnels keep 1450)."""
    for host in ("hv1", "hv2", "g1", "g2", "b1", "b2"):
        net.ns(host)
    net.veth("hv1", "ul0", "hv2", "ul0")
    for side, guest, other in ((1, "g1", "b1"), (2, "g2", "b2")):
        hv, far = f"hv{side}", f"192.168.100.{3 - side}"
        net.ip(hv, "link", "set", "ul0", "mtu", str(underlay_mtu))
        net.addr(hv, "ul0", f"192.168.100.{side}/24")
        for vni, who in ((100, guest), (200, other)):
            vid = far_vni if (side, vni) == (2, 100) else vni
            to = remote if (side, vni) == (1, 100) else far
            net.ip(hv, "link", "add", f"vx{vni}", "mtu", "1450", "type", "vxlan", "id",
                   str(vid), "remote", to, "local", f"192.168.100.{side}", "dstport",
                   "4789", "dev", "ul0", "nolearning")
            net.veth(hv, f"p{who}", who, "eth0")
            net.bridge(hv, f"br{vni}", f"vx{vni}", f"p{who}")
            net.ip(hv, "link", "set", f"vx{vni}", "up")
            net.ip(who, "link", "set", "eth0", "mtu", "1450")
            net.addr(who, "eth0", f"10.10.0.{side}/24")


def _run(net: HandMade, **params: object) -> Result:
    with netprobe.build(net.spec("vxlan-by-hand")) as topo:
        return run_check("vxlan", topo, **params)


def test_a_hand_made_overlay_passes(hand: HandMade) -> None:
    _overlay(hand)
    result = _run(hand)
    assert result.status is Status.PASS, result.evidence()
    assert result.steps[0].detail == ("seen on hv1:ul0: 192.168.100.1 → 192.168.100.2, "
                                      "UDP 4789, VNI 100")


def test_a_vni_mismatch_made_by_hand_is_named(hand: HandMade) -> None:
    _overlay(hand, far_vni=101)
    assert ("VNI mismatch: hv1 sends VNI 100 (192.168.100.1 → 192.168.100.2, UDP 4789, "
            "VNI 100), but hv2:vx100 has id 101") in diagnosis_of(_run(hand))


def test_a_wrong_remote_made_by_hand_is_named(hand: HandMade) -> None:
    _overlay(hand, remote="192.168.100.3")
    assert ("wrong remote: hv1:vx100 tunnels to 192.168.100.3 (ARP requests for it "
            "unanswered on hv1:ul0), but hv2's underlay address is 192.168.100.2"
            ) in diagnosis_of(_run(hand))


def test_an_underlay_mtu_too_small_made_by_hand_is_named(hand: HandMade) -> None:
    _overlay(hand, underlay_mtu=1400)
    assert ("the largest IPv4 packet that crosses from g1:eth0 to g2:eth0 is 1350 bytes, "
            "below the 1450 expected; the underlay's MTU is 1400 (hv1:ul0 1400, hv2:ul0 "
            "1400)") in diagnosis_of(_run(hand))
