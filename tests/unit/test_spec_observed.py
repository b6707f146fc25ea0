"""`observed:` blocks (what discovery saw): YAML round-trip, validation, pictures."""

from __future__ import annotations

import pytest

from netprobe.errors import SpecError
from netprobe.topology import Host, Interface, Observed, ObservedHost, Spec, loads, validate
from netprobe.topology._model import picture
from netprobe.topology._model.dump import dump

RULESET = (
    "table inet f {\n    chain c {\n        type filter hook forward priority filter;\n"
    "    }\n}\n"
)


def _spec() -> Spec:
    sw = Host("sw", (
        Interface("br0", observed=Observed("bridge", mac="02:00:00:00:00:01", mtu=1500)),
        Interface("pa", observed=Observed("veth", peer="a:eth0", master="br0",
                                          port_state="forwarding")),
        Interface("tap0", observed=Observed("tap", master="br0", up=False)),
    ), adopt="sw", observed=ObservedHost(origin="netns sw", ruleset=RULESET,
                                         sysctls={"net.ipv4.ip_forward": "1"}))
    a = Host("a", (
        Interface("eth0", observed=Observed("veth", peer="sw:pa", addresses=["10.0.0.1/24"])),
    ), adopt="pid:4242", observed=ObservedHost(
        origin="docker container web, pid 4242",
        routes=[{"to": "default", "via": "10.0.0.254", "dev": "eth0"},
                {"to": "10.0.0.0/24", "dev": "eth0", "proto": "kernel"}],
        neighbours=[{"ip": "10.0.0.254", "mac": "02:00:00:00:00:fe", "dev": "eth0"}],
    ))
    root = Host("root", (Interface("vethabc12345", observed=Observed("veth")),), root=True)
    return Spec("discovered", (sw, a, root))


def test_round_trip_through_load() -> None:
    spec = validate(_spec())
    text = dump(spec)
    assert loads(text) == spec
    assert "ruleset: |" in text  # a ruleset stays readable text
    assert "kind:" in text and "veth:" not in text and "bridge:" not in text  # nothing to make


def test_observed_interfaces_are_existing_ones() -> None:
    with pytest.raises(SpecError, match="belong to adopted or root hosts"):
        validate(Spec("t", (Host("h", (Interface("e0", observed=Observed("veth")),)),)))
    with pytest.raises(SpecError, match="takes no type"):
        loads("hosts:\n  h:\n    adopt: x\n    interfaces:\n      e0:\n        tap: true\n"
              "        observed: {kind: tap}\n")
    with pytest.raises(SpecError, match="give `adopt` or `root`"):
        validate(Spec("t", (Host("h", observed=ObservedHost()),)))


@pytest.mark.parametrize(("block", "message"), [
    ("{kind: veth, peer: nocolon}", "HOST:IFNAME"),
    ("{kind: veth, color: red}", "unknown key 'color'"),
    ("{peer: a:b}", "kind"),
    ("{kind: veth, addresses: [10.0.0.300/24]}", "observed addresses"),
])
def test_bad_observed_blocks_name_the_line(block: str, message: str) -> None:
    text = f"hosts:\n  h:\n    adopt: x\n    interfaces:\n      e0:\n        observed: {block}\n"
    with pytest.raises(SpecError, match=message) as info:
        loads(text, source="t.yaml")
    assert info.value.line == 6


def test_adopt_by_pid() -> None:
    assert validate(Spec("t", (Host("h", adopt="pid:17"),)))
    with pytest.raises(SpecError, match="pid:PID"):
        validate(Spec("t", (Host("h", adopt="pid:x"),)))


def test_pictures_draw_what_was_observed() -> None:
    text = picture.mermaid(_spec())
    assert text.count("a__eth0 --- sw__pa") + text.count("sw__pa --- a__eth0") == 1
    assert "sw__pa -.- sw__br0" in text and "sw__tap0 -.- sw__br0" in text
    assert "10.0.0.1/24" in text and "tap0 tap down" in text
    assert "sw__pa -- a__eth0" in picture.dot(_spec()) or "a__eth0 -- sw__pa" in picture.dot(
        _spec()
    )
