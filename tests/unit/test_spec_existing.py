"""Interfaces with no type in a host netprobe does not own: used as they exist."""

from __future__ import annotations

import pytest

from netprobe import Host, Interface, Route, Spec, Veth
from netprobe.errors import SpecError
from netprobe.report._text import reverted_lines
from netprobe.topology import CleanReport, loads, validate
from netprobe.topology._kernel.preflight import existing_links, foreign_links
from netprobe.topology._kernel.undo import route_words
from netprobe.topology._model import picture
from netprobe.topology._model.dump import dump


def _adopting(*ifaces: Interface, routes: tuple[Route, ...] = ()) -> Spec:
    return Spec("x", hosts=[Host("a", adopt="ns1", interfaces=ifaces, routes=routes), Host("b")])


def test_an_untyped_interface_of_an_adopted_host_is_an_existing_one() -> None:
    spec = validate(_adopting(Interface("eth0", addresses=["10.9.0.5/24"]), Interface("e1")))
    assert spec.existing == {("a", "eth0"), ("a", "e1")}
    assert existing_links(spec, "abc123") == {"ns1": ["eth0", "e1"]}
    assert foreign_links(spec, "abc123") == {}  # nothing to create, nothing to remove


def test_a_veth_leading_to_it_keeps_the_far_end_meaning() -> None:
    spec = Spec(
        "x",
        hosts=[
            Host("a", adopt="ns1", interfaces=[Interface("v0", addresses=["10.0.0.1/24"])]),
            Host("b", interfaces=[Interface("v0", Veth("a:v0"))]),
        ],
    )
    assert validate(spec).existing == frozenset()
    assert foreign_links(spec, "abc123") == {"ns1": ["v0"]}


def test_in_an_owned_host_an_untyped_interface_with_no_veth_stays_an_error() -> None:
    spec = Spec("x", hosts=[Host("a", interfaces=[Interface("eth0")])])
    with pytest.raises(SpecError, match="no type and no veth leads to it"):
        validate(spec)


@pytest.mark.parametrize(
    ("iface", "word"),
    [
        (Interface("eth0", mac="02:00:00:00:00:09"), "mac"),
        (Interface("eth0", master="br0"), "master"),
    ],
)
def test_an_existing_interface_is_not_rewired(iface: Interface, word: str) -> None:
    from netprobe import Bridge

    spec = _adopting(iface, Interface("br0", Bridge()))
    with pytest.raises(SpecError, match=f"does not set its {word}"):
        validate(spec)


def test_in_the_root_namespace_an_existing_interface_is_used_as_it_is() -> None:
    long_name = "enp0s31f6abcdef"[:15]  # no np prefix: 15 characters are fine
    ok = Spec("x", hosts=[Host("m", root=True, interfaces=[Interface(long_name)])])
    assert validate(ok).existing == {("m", long_name)}
    for iface in (Interface("eth0", addresses=["10.0.0.1/24"]), Interface("eth0", mtu=1400)):
        bad = Spec("x", hosts=[Host("m", root=True, interfaces=[iface])])
        with pytest.raises(SpecError, match="machine's own"):
            validate(bad)


def test_a_route_must_name_a_listed_interface_and_says_how() -> None:
    spec = _adopting(Interface("eth0"), routes=(Route("10.1.0.0/16", dev="eth1"),))
    with pytest.raises(SpecError, match="list one that exists as `eth1:`"):
        validate(spec)
    validate(_adopting(Interface("eth1"), routes=(Route("10.1.0.0/16", dev="eth1"),)))


def test_yaml_round_trip_and_pictures() -> None:
    text = """
name: x
hosts:
  a:
    adopt: ns1
    interfaces:
      eth0: {addresses: [10.9.0.5/24]}
      e1:
"""
    spec = loads(text)
    assert loads(dump(spec)) == spec and spec.existing == {("a", "eth0"), ("a", "e1")}
    assert '"eth0 (existing)<br/>10.9.0.5/24"' in picture.mermaid(spec)
    assert 'label="e1 (existing)"' in picture.dot(spec)


def test_what_was_undone_reads_per_namespace() -> None:
    report = CleanReport(
        removed_additions={"ns1": ["address 10.9.0.5/24 on eth0", "link v0"]},
        restored={"ns1": ["mtu 1500 on eth0"], "": ["net.ipv4.ip_forward = 0"]},
    )
    assert reverted_lines(report) == [
        "removed from adopted namespace ns1: address 10.9.0.5/24 on eth0, link v0",
        "put back in adopted namespace ns1: mtu 1500 on eth0",
        "put back in the root namespace: net.ipv4.ip_forward = 0",
    ]
    assert route_words(Route("10.1.2.0/16", via="10.9.0.1", dev="eth0", metric=5)) == (
        "10.1.0.0/16 via 10.9.0.1 dev eth0 metric 5"
    )
